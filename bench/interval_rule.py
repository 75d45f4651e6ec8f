"""Which conformal score reaches the nominal coverage on rows neither fitted nor calibrated on? (the rule of `evaluate.calibrate`)

    python bench/interval_rule.py [--models nlinear] [--datasets ETTh1,ETTh2] [--horizons 96,336]

On the selection slice of bench/accuracy.py, never the test rows: each cell's model (the S protocol's overrides) is fitted
on rows [0, 5760) with early stopping on [5760, 8640), calibrated on every window of [5760, 8640), and its intervals are
scored on every window of [8640, 11520) — the standard run's validation span. Three scores are compared, each a split-
conformal quantile per level and step:
- plain: the residual `actual - forecast` on the scaled (standardised) target — what the library ships;
- std: the residual divided by the standard deviation of the window's look-back (locally adaptive intervals);
- mad: the residual divided by the mean absolute first difference of the window's look-back.
The rule: the score whose coverage of the 80 % and 90 % intervals is nearest nominal, summed over the cells, is the one
the library uses. Measured before the library's intervals were scored on any test row of a new candidate.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402
from accuracy import load_frame, overrides_for  # noqa: E402

LEVELS = (0.05, 0.1, 0.9, 0.95)


def conformal_shifts(scores: np.ndarray) -> dict[float, np.ndarray]:
    "Split conformal's quantile of (windows, steps) scores per level and step: the library's own rule (a zero base, the scores as actuals)."
    from skewfree.forecaster import ConformalIntervals
    table = ConformalIntervals.calibrate({q: np.zeros_like(scores) for q in LEVELS}, scores)
    return dict(zip(table.levels, table.shifts))


def window_spreads(forecaster, rows, horizon: int) -> dict[str, np.ndarray]:
    "Each backtest window's look-back spread in scaled units, in the backtest's window order: its std, its mean |first difference|."
    pre = forecaster.preprocessor
    batch = pre.transform(rows, horizon=0 if pre.future_covariates else forecaster.future_steps(horizon))
    y, length, std, mad = batch.values[:, 0].astype(np.float64), forecaster.history_length, [], []
    for k in range(batch.n_series):
        yk = y[int(batch.indptr[k]):int(batch.indptr[k + 1])]
        looks = np.lib.stride_tricks.sliding_window_view(yk[:len(yk) - horizon], length)  # the look-back of every origin, oldest first
        std.append(looks.std(axis=1)); mad.append(np.abs(np.diff(looks, axis=1)).mean(axis=1))
    return {"std": np.concatenate(std), "mad": np.concatenate(mad)}


def run_cell(dataset: str, horizon: int, model: str) -> dict:
    from skewfree.config import compose_config
    from skewfree.evaluate import backtest, temporal_split
    from skewfree.forecaster import Forecaster
    cfg = compose_config([*overrides_for(dataset, "S", horizon, model, rows=(5760, 2880, 2880)), "intervals.quantiles=[]"])
    forecaster = Forecaster.from_config(cfg)
    fit_rows, calibration, scored = temporal_split(load_frame(dataset, None, max_rows=11520), cfg.cv, forecaster)
    forecaster.fit(fit_rows, calibration)
    parts = {}
    for name, rows in (("calibration", calibration), ("scored", scored)):
        table = backtest(forecaster, rows, stride=1)
        residual = (table.actual_std.to_numpy() - table.forecast_std.to_numpy()).reshape(-1, horizon)
        parts[name] = {"plain": np.ones(len(residual))} | window_spreads(forecaster, rows, horizon), residual
    out = {}
    for score in ("plain", "std", "mad"):
        (spread_c, residual_c), (spread_s, residual_s) = [(s[score][:, None], r) for s, r in parts.values()]
        band = {q: shift * spread_s for q, shift in conformal_shifts(residual_c / spread_c).items()}
        out[score] = {"coverage_80": float(np.nanmean((residual_s >= band[0.1]) & (residual_s <= band[0.9]))),
                      "coverage_90": float(np.nanmean((residual_s >= band[0.05]) & (residual_s <= band[0.95]))),
                      "width_80_std": float(np.mean(band[0.9] - band[0.1]))}
        out[score]["distance"] = abs(out[score]["coverage_80"] - 0.8) + abs(out[score]["coverage_90"] - 0.9)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="nlinear")
    ap.add_argument("--datasets", default="ETTh1,ETTh2")
    ap.add_argument("--horizons", default="96,336")
    args = ap.parse_args()
    cells, started = {}, time.perf_counter()
    for model in args.models.split(","):
        for dataset in args.datasets.split(","):
            for horizon in map(int, args.horizons.split(",")):
                cells[f"{dataset}|S|{horizon}|{model}"] = cell = run_cell(dataset, horizon, model)
                print(dataset, horizon, model, {k: {m: round(v, 3) for m, v in s.items()} for k, s in cell.items()}, flush=True)
    totals = {score: sum(c[score]["distance"] for c in cells.values()) for score in ("plain", "std", "mad")}
    print("summed distance from nominal:", {k: round(v, 3) for k, v in totals.items()}, "→ chosen:", min(totals, key=totals.get))
    write("interval_rule", "python bench/interval_rule.py " + " ".join(sys.argv[1:]),
          {"cells": cells, "summed_distance": totals, "chosen": min(totals, key=totals.get), "seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
