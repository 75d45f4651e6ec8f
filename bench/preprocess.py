"""Preprocessor `transform` time: one request (1 series x 336 rows) and a batch (1,000 series x 336 rows).

    python bench/preprocess.py [--repeats 200]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

from skewfree.data import ETT_COVARIATES, load_ett  # noqa: E402
from skewfree.preprocess import Preprocessor  # noqa: E402


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95)), "repeats": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    raw = load_ett()
    results = {}
    for label, roles in [("target_only", []), ("past_and_calendar", ["past", "future"])]:
        pre = Preprocessor(target="OT", past_covariates=ETT_COVARIATES if "past" in roles else [],
                           calendar=["hour", "dayofweek", "month"] if "future" in roles else [],
                           missing="interpolate", gaps="reindex", history_length=336).fit(raw.groupby("series_id").head(8640))
        one = raw[raw.series_id == "ETTh1"].iloc[8640:8640 + 336]
        # 1,000 series: windows of ETTh1/ETTh2 under 1,000 ids, all seen at fit (the fitted state is copied per id)
        windows = [raw[raw.series_id == ("ETTh1", "ETTh2")[i % 2]].iloc[8640 + i:8640 + i + 336].assign(series_id=f"s{i}") for i in range(1000)]
        batch = pd.concat(windows, ignore_index=True)
        for i in range(1000):
            src = ("ETTh1", "ETTh2")[i % 2]
            pre.freq_[f"s{i}"], pre.scale_[f"s{i}"], pre.fallback_[f"s{i}"] = pre.freq_[src], pre.scale_[src], pre.fallback_[src]
        results[label] = {"one_series_336_rows": timed(lambda: pre.transform(one, horizon=24), args.repeats),
                          "batch_1000_series_336_rows": timed(lambda: pre.transform(batch, horizon=24), max(3, args.repeats // 40))}
        print(label, results[label])
    write("preprocess", "python bench/preprocess.py", results)


if __name__ == "__main__":
    main()
