"""Fit time of every registered model on the ETTh1+ETTh2 training span, and the overhead of skewfree's
pipeline over calling darts directly on the same model, data and seed — both measured in this one run.

    python bench/fit_time.py [--models nlinear,tft,xgboost,seasonal_naive] [--repeats 1]

Pipeline: `Forecaster.from_config(cfg).fit(train, val)` — preprocessor fit + transform, model fit.
Raw darts: the same darts class built with the same parameters (`model_params`), fitted on series scaled
with darts' own `Scaler` (per series, fitted on the training rows), the same validation span and seed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

from skewfree.config import compose_config  # noqa: E402
from skewfree.data import load_ett  # noqa: E402
from skewfree.evaluate import temporal_split  # noqa: E402
from skewfree.forecaster import Forecaster, data_decided  # noqa: E402

warnings.filterwarnings("ignore")


def darts_inputs(frame: pd.DataFrame, forecaster: Forecaster, horizon: int, scalers=None):
    "Plain darts series built by hand from a raw frame: what a user calling darts directly would write."
    from darts import TimeSeries, concatenate
    from darts.dataprocessing.transformers import Scaler
    from darts.utils.timeseries_generation import datetime_attribute_timeseries
    pre = forecaster.preprocessor
    targets, pasts, futures = [], [], []
    for _, group in frame.groupby("series_id", sort=True):
        rows = group.sort_values("date")
        targets.append(TimeSeries.from_dataframe(rows, time_col="date", value_cols=[pre.target], freq="h").astype(np.float32))
        if pre.past_covariates:
            pasts.append(TimeSeries.from_dataframe(rows, time_col="date", value_cols=pre.past_covariates, freq="h").astype(np.float32))
        if pre.calendar:
            index = pd.date_range(rows.date.iloc[0], periods=len(rows) + horizon, freq="h")
            parts = [datetime_attribute_timeseries(index, attribute=a, cyclic=True, dtype=np.float32) for a in pre.calendar]
            futures.append(concatenate(parts, axis=1))
    if scalers is None:
        scalers = (Scaler(global_fit=False), Scaler(global_fit=False) if pasts else None)
        scalers[0].fit(targets)
        if pasts: scalers[1].fit(pasts)
    targets = scalers[0].transform(targets)
    pasts = scalers[1].transform(pasts) if pasts else None
    return targets, pasts, futures or None, scalers


def timed(fn) -> float:
    started = time.perf_counter(); fn(); return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="nlinear,tft,xgboost,seasonal_naive")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    raw = load_ett(max_rows=14400)
    results = {}
    for name in args.models.split(","):
        cfg = data_decided(compose_config([f"model={name}"]), raw)
        pipeline_times, raw_times = [], []
        for _ in range(args.repeats):
            forecaster = Forecaster.from_config(cfg)
            train, val, _test = temporal_split(raw, cfg.cv, forecaster)
            pipeline_times.append(timed(lambda: forecaster.fit(train, val)))  # noqa: B023
            model = Forecaster.from_config(cfg).model
            direct = type(model)(**model.model_params)
            extra = forecaster.future_steps(forecaster.max_horizon)

            def raw_fit():
                series, past, future, scalers = darts_inputs(train, forecaster, extra)
                vs, vp, vf, _ = darts_inputs(val, forecaster, extra, scalers)
                kwargs = {k: v for k, v in {"val_series": vs, "val_past_covariates": vp, "val_future_covariates": vf}.items() if v is not None}
                if name == "seasonal_naive": kwargs = {}
                direct.fit(series, past_covariates=past, future_covariates=future, **kwargs, **forecaster.training.fit_kwargs)  # noqa: B023
            raw_times.append(timed(raw_fit))
        pipeline, direct_s = statistics.median(pipeline_times), statistics.median(raw_times)
        results[name] = {"pipeline_fit_s": pipeline, "raw_darts_fit_s": direct_s, "overhead_ratio": pipeline / direct_s if direct_s > 0 else None,
                         "train_rows_per_series": int(cfg.cv.train_rows), "series": 2, "repeats": args.repeats}
        print(name, results[name], flush=True)
    write("fit_time", f"python bench/fit_time.py --models {args.models} --repeats {args.repeats}", results)


if __name__ == "__main__":
    main()
