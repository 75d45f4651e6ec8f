"""What skipping refused series costs a batch run: `predict_file(skip_refused=)` on a panel with k series no run can forecast.

    python bench/skipping.py [--series 10000] [--refused 0,10,100,1000] [--chunk-rows 1000000]

A closed-form NLinear (48 -> 24) trained on a panel of `--series` series built from the embedded ETT data
(`ett_panel`, 320 rows each); the batch input is each series' last 60 rows, as a Parquet file grouped by series.
For each k of `--refused`, k series spread evenly through the file are cut to 10 rows (the model needs 48: each is
refused by name); the file is forecast with `skip_refused=k` (k = 0: the plain run, as strict). Recorded: seconds
(median of `--repeats` runs), the series forecast and refused, and the forecasts' equality, to the bit, with the
plain run's on the series both forecast. The checks stop at the first series they refuse, so each refusal costs
another pass over the rest of its block, in halves (`batch.leaving_out`): the cost grows with k·log2(n/k) calls.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--refused", default="0,10,100,1000")
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import os

    import mlflow

    from skewfree.batch import predict_file
    from skewfree.config import compose_config
    from skewfree.data import ett_panel
    from skewfree.train import train
    tmp = Path(tempfile.mkdtemp(prefix="skipping-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    panel = ett_panel(args.series, 320)
    cfg = compose_config(["model=nlinear_ls", "profile=smoke", "trainer.least_squares.ridges=[1.0]", "cv.train_rows=200", "cv.val_rows=60",
                          "cv.test_rows=60", "mlflow.registered_model=skipping-bench", "intervals.quantiles=[]"])
    model = mlflow.pyfunc.load_model(train(cfg, data=panel).model_uri)
    history = panel.groupby("series_id").tail(60).reset_index(drop=True)
    ids = history.series_id.unique()
    rows = []
    plain = None
    for k in [int(x) for x in args.refused.split(",")]:
        cut = set(ids[np.linspace(0, len(ids) - 1, k).astype(int)]) if k else set()
        short = history[history.series_id.isin(cut)].groupby("series_id").tail(10)
        frame = pd.concat([history[~history.series_id.isin(cut)], short]).sort_values(["series_id", "date"], kind="stable")
        source, output = tmp / f"in-{k}.parquet", tmp / f"out-{k}.parquet"
        frame.to_parquet(source, index=False)
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            done = predict_file(model, source, output, 24, rows=args.chunk_rows, progress=False, skip_refused=max(k, 0))
            seconds.append(time.perf_counter() - started)
        out = pd.read_parquet(output).sort_values(["series_id", "date"], ignore_index=True)
        if plain is None: plain = out
        same = plain[~plain.series_id.isin(cut)].reset_index(drop=True)
        rows.append({"refused_asked": k, "seconds": statistics.median(seconds), "runs": seconds, "series_forecast": done.series,
                     "series_refused": len(done.refused or []), "refused_ids_match": sorted(n["series"] for n in done.refused or []) == sorted(cut),
                     "equal_to_plain_run": bool(out.equals(same))})
        print(rows[-1])
    write("skipping", "python bench/skipping.py " + " ".join(sys.argv[1:]),
          {"series": args.series, "rows_per_series": 60, "chunk_rows": args.chunk_rows, "runs": rows})


if __name__ == "__main__":
    main()
