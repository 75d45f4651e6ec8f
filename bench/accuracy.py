"""Accuracy against the LTSF-Linear paper's table (Zeng et al., AAAI 2023), through skewfree's own pipeline.

    python bench/accuracy.py [--quick | --full] [--settings S,M] [--horizons 96,192,336,720] [--datasets ETTh1,ETTh2]
                             [--models nlinear] [--csv PATH --name NAME] [--cell-timeout SECONDS] [--refit]
                             [--selection-slice [--selection-stride N]] [--results NAME] [--jobs N]

Every cell goes through the library exactly as a training run does: `compose_config` (Hydra overrides) →
`Forecaster.from_config` (ModelFactory + TrainerFactory + Preprocessor) → `temporal_split` → `Forecaster.fit(train, val)`
→ `evaluate(forecaster, test, stride=1)`. Nothing is scaled, windowed or scored outside the library.

Protocol (bench/ltsf_linear_reference.md, a verbatim copy of the published table and protocol):
- look-back L = 336; train rows [0, 8640), validation [8640-L, 11520), test [11520-L, 14400) per series, i.e.
  `cv.train_rows=8640 cv.val_rows=2880 cv.test_rows=2880` (temporal_split adds the look-back context itself);
  rows from 14400 on are dropped before anything else sees the data. A `--csv` keeps the months, not the rows: 12 / 4 / 4
  months of 30 days at its own step (34,560 / 11,520 / 11,520 rows of 15-minute data), stated in the results' protocol;
  a file too short for them is refused before any cell (`--rows` sets other borders);
- per-series (= per-column) standard scaling fitted on the training rows only (the library's Preprocessor);
- scored on every stride-1 test window (2880-H+1 of them), MSE / MAE on the standardised scale (`mse_std`, `mae_std`);
- torch recipe from params/trainer/default.yaml (Adam lr 0.005, batch 32, 10 epochs, lr halved every epoch,
  early stopping patience 3 on the validation loss) = the paper's scripts. The paper's scripts train ETTh2 "M" with
  lr 0.05: that override is applied to that setting only and recorded in the cell.

Intervals: after the fit, every cell is calibrated as a training run is (`evaluate.calibrate` on the validation rows:
split-conformal shifts per quantile level and step, params/config.yaml `intervals`), and its `intervals` record the test
windows' coverage of the 80 % and 90 % intervals, their mean width and the pinball loss (all standardised); a model with
quantile heads (TFT) also records its own heads' figures (`heads_…`), as the model made them.

Settings:
- `--refit`: after the cell's fit (early stopping on the validation rows), `Forecaster.refitted` fits a fresh preprocessor
  and model on the training + validation rows for exactly as many epochs (boosting rounds) as early stopping kept, with
  nothing held out, and the test rows score that final model too (`refit_mse`, `refit_mae`), on the same training-rows
  scale (`evaluate(..., scale=<the first fit's preprocessor>)`). The choice between models never looks at it: the
  refit has trained on the validation rows, so its validation error means nothing.
- Per-cell choice (bench/report.py): among a cell's candidates (nlinear, nlinear_l512 / nlinear_l720 = NLinear with a
  512 / 720-row look-back, nlinear_ls / nlinear_ls_l512 / nlinear_ls_l720 = the same NLinear solved in closed form by
  the least_squares trainer, its ridge chosen on the validation rows, xgboost, tft, seasonal_naive) the one with the
  lowest MSE on the VALIDATION rows is "the best skewfree model" of that cell; its test MSE is what is compared with the
  paper. `nested_cv_selected` runs nested CV of nlinear, nlinear_ls, xgboost and seasonal_naive on the training +
  validation rows only (2 outer folds of H rows, an Optuna study of 4 trials in each), takes the model with the lowest
  mean outer MSE with its final tuned parameters, refits it on the training rows and scores it like every other cell.
  Its folds run as tasks of a local Ray instance (the library's `executor=ray`, one CPU and one thread per fold): the
  outer folds of all four candidates in one pool, then the final study (the whole span, which only tunes) of the
  winner alone, on every core, since the other candidates' final parameters are never used. Nested CV scores point
  forecasts, so its xgboost fits one (squared-error) booster, not the three of its quantile bands.
  The nlinear_ls candidates were committed (this file, the model and its trainer) before any of their test figures
  existed, and measured once; nothing about them was changed after. So was `nlinear_ls_blend` (later, after every other
  candidate's test figures were known): one NLinear that is the mean of nlinear_ls, nlinear_ls_l512 and nlinear_ls_l720,
  each member solved as it is alone (every window of its own look-back, its own ridge chosen on the validation rows;
  `trainer.least_squares.look_backs`). A forecast combination of candidates that differ only in look-back: its
  look-backs are the candidates' own, the rule that chooses among the candidates is unchanged, and neither was set from
  a test figure. Two earlier forms were scored on the selection slice only, never on test rows, and were worse than
  their best member in 15 of the 15 and 15 of the 16 cells they were scored in: 6341369 (one ridge for all three members, chosen on the
  blend's validation MSE; 15 cells, recorded in ff54408's results) and ff54408 (a ridge per member, but every member
  fitted on the longest look-back's windows only, which moved the shorter members' ridges; 16 cells, recorded in the
  commit after it). The third form is the mean of the three candidates exactly, which the docstring above had promised.
- "S" (univariate): the target OT only, one model per dataset, for every model: the six load columns are not handed to
  any model (`data.covariates.past=[]`), as the paper defines the setting. NLinear uses no covariates (its YAML's
  `covariates: []`); xgboost and tft add the calendar features their YAML asks for (future covariates made from the
  timestamps alone). Up to commit 04b1ab3 xgboost and tft also read the load columns as past covariates in S; the
  setting was made univariate for every model by this definition, before any test figure of it existed.
- "M" (multivariate, NLinear only, trained or solved): the paper forecasts all 7 columns with one channel-independent linear map shared
  by every channel. We RESHAPE the wide frame into long format with ONE SERIES PER CHANNEL:
  series_id = f"{dataset}:{column}", date, OT = that column's values (the data config's target is OT), and train one
  nlinear with `model.hyperparameters.shared_weights=true` over the 7 channel-series of the dataset. The library's
  per-series scaling is then per-column scaling fitted on the training rows, as in the paper. One difference remains:
  darts samples training windows from the 7 series independently, so a batch of 32 holds 32 channel-windows, where the
  paper's batch of 32 holds 32 time windows x 7 channels.

Choosing on a selection slice (`--selection-slice`), a protocol written down (and committed) before any of its runs:
- Why: the validation rows that the choice above looks at also tuned every candidate (early stopping, the ridge, boosting
  rounds), so the most tuned candidate looks best there (XGBoost's validation MSE, 0.22 in ETTh2 S H=336, became 0.54 on
  the test rows). A candidate should be chosen on rows that neither fitted nor tuned it.
- How: the same protocol one block earlier. Each candidate of a cell (the same candidates, with the same overrides) is
  fitted on the first `train - val` rows (5760: 8 months), tuned (early stopping, ridge, rounds) on the next `val` rows
  (months 9-12), and scored on the `val` rows after them (months 13-16: the standard run's validation span, which this run
  neither fits nor tunes on). `--rows` stays the standard split; the run uses (train - val, val, val) and reads no row
  beyond train + val, so the test rows are never loaded. The score is the MSE on the standard scale of that run (fitted on
  its own training rows), over every `--selection-stride`-th window of the slice (default 4: the windows overlap by all
  but 4 steps, so a stride of 4 barely moves an average over ~700 windows and quarters the time).
- The choice: per cell, the candidate with the lowest selection-slice MSE; it is then scored as the standard run scored
  it (trained on the 12 training months, tuned on the validation rows, tested on the test rows), with and without the
  refit. Stored as cells `dataset|setting|H|model|selection` (role "selection"); `bench/report.py` makes the choice and
  counts it against the paper, beside the validation-MSE choice, which stays as it was.

`--full` runs the whole table the benchmark's issue asks for, in one run: NLinear in every paper cell (S and M, four
horizons), and in S at H = 96 and 336 xgboost, tft, seasonal_naive and the nested-CV model. Its wall time, like every
run's, is recorded whole (`runs`), and bench/report.py reads the budgets (`--quick` < 10 min, the full table < 60 min)
from those records. `--results NAME` writes bench/results/NAME.json instead of accuracy.json: a re-run that checks the
recorded cells (bench/report.py compares them cell by cell) without replacing them.

`--jobs N` runs N cells at once on the machine's cores, each with cores // N threads (torch, xgboost's `n_jobs`, BLAS), the
longest first by the wall time a results file records for that cell, so that the run does not end on one long cell with the
other cores idle. A nested-CV cell runs its Ray folds on every core, so it runs alone, after the others. The default, 1,
runs the cells one after another in the plan's order with the library's own thread counts.

A cell that fails or exceeds `--cell-timeout` seconds (fit + evaluation, each cell runs in its own process, forked
from a server that imported the library once) is recorded
with status "skipped"/"failed" and the reason. Results merge into bench/results/accuracy.json cell by cell, each cell
keeping the command that produced it, so partial runs accumulate. `python bench/report.py` renders bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import RESULTS, git_commit, machine, write  # noqa: E402

REFERENCE = HERE / "ltsf_linear_reference.md"
LOOKBACK = 336
ROWS = (8640, 2880, 2880)  # train, val, test rows per series: the paper's ETTh borders
MONTHS = (12, 4, 4)  # the same borders in months of 30 days: at another frequency, the protocol keeps the months, not the rows
HORIZONS = (96, 192, 336, 720)
# TFT's training budget and width: candidates for params/model/tft.yaml, scored on the selection slice only (never the test
# rows). The rule, committed before any of their figures existed: the candidate with the lowest mean, over ETTh1 and ETTh2 S
# at H = 96, of its selection-slice MSE divided by seasonal naive's there becomes tft.yaml's recipe for every horizon; a tie
# (within 1 %) keeps the cheaper recipe. The recipe they were measured against (`tft` at 887256a) trained on the latest 2000
# windows only (darts' `max_samples_per_ts` keeps the most recent ones: the last ~12 weeks of the 12 training months).
# The second round (tft_all chosen by the first), under the same rule, before any of its figures existed: every window, and
# tft.yaml's own look-back of 168 hours (`_in168`), twice the epochs (`_e10`: early stopping still picks the best), or a
# threefold learning rate (`_lr3`). In order of cost, as the tie reads them.
# The rule, re-read with every candidate measured again once a torch fit kept its best epoch (28bf34b), chose tft_all_in168:
# `tft` is tft.yaml as it stands (its own look-back, not overridden here), on every window.
ALL_WINDOWS = "model.trainer.max_samples_per_ts=null"
TFT_VARIANTS = {"tft_all_in168": [ALL_WINDOWS], "tft_all": [ALL_WINDOWS], "tft_all_lr3": [ALL_WINDOWS, "model.trainer.learning_rate=0.003"],
                "tft_all_h32": [ALL_WINDOWS, "model.hyperparameters.hidden_size=32"], "tft_all_e10": [ALL_WINDOWS, "model.trainer.max_epochs=10"]}
MODELS = ("nlinear", "xgboost", "tft", "seasonal_naive", "nlinear_l512", "nlinear_l720", "nlinear_ls", "nlinear_ls_l512", "nlinear_ls_l720",
          "nlinear_ls_blend",
          "nested_cv_selected", *TFT_VARIANTS)
# name → (model, look-back, further overrides): NLinear (trained, or solved by least squares) with a longer look-back,
# candidates for the per-cell choice made on validation rows (bench/report.py), and the TFT candidates above
VARIANTS = {"nlinear_l512": ("nlinear", 512, []), "nlinear_l720": ("nlinear", 720, []), "nlinear_ls_l512": ("nlinear_ls", 512, []),
            "nlinear_ls_l720": ("nlinear_ls", 720, []),
            # the mean of the three look-backs above, one NLinear over 720 rows (trainer.least_squares.look_backs); a candidate
            # added (here, with the trainer option) before any of its figures existed, under the unchanged rule
            "nlinear_ls_blend": ("nlinear_ls", 720, ["trainer.least_squares.look_backs=[336,512,720]"]),
            **{name: ("tft", 168 if name.endswith("_in168") else LOOKBACK, extra) for name, extra in TFT_VARIANTS.items()}}
LINEAR = ("nlinear", "nlinear_ls")  # the paper's architecture: its look-back, its horizon, shared weights in the M setting
NESTED_CANDIDATES = ("nlinear", "nlinear_ls", "xgboost", "seasonal_naive")  # what nested CV chooses among (tft is too slow for 2 cores)
FULL_OTHERS = ("xgboost", "tft", "seasonal_naive", "nested_cv_selected")  # the item 2, in S at H 96 and 336
PRELOAD = ["torch", "darts.models", "skewfree.forecaster", "skewfree.evaluate", "skewfree.nested_cv", "optuna"]  # what the cells import
CHANNELS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
PAPER_LR = {("ETTh2", "M"): 0.05}  # the paper's scripts/EXP-LongForecasting/Linear/etth2.sh; every other cell: 0.005


def paper_table(path: Path = REFERENCE) -> dict[tuple[str, str, int], dict[str, float]]:
    "The published NLinear (and DLinear) figures, parsed from the reference copy: (dataset, setting, H) → figures."
    table, setting = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            m = re.search(r'\("([SM])"', line)
            setting = m.group(1) if m else None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if setting and len(cells) == 6 and cells[1].isdigit():
            nl_mse, nl_mae, dl_mse, dl_mae = map(float, cells[2:])
            table[(cells[0], setting, int(cells[1]))] = {"nlinear_mse": nl_mse, "nlinear_mae": nl_mae, "dlinear_mse": dl_mse, "dlinear_mae": dl_mae}
    if not table: raise SystemExit(f"no paper figures parsed from {path}")
    return table


def load_frame(dataset: str, csv: str | None, max_rows: int | None) -> pd.DataFrame:
    "One dataset as the library's long frame (series_id, date, numeric columns…, OT), first `max_rows` rows only."
    if csv is None:
        from skewfree.data import load_ett
        return load_ett([dataset], max_rows=max_rows)
    from skewfree.core import InputError
    from skewfree.data import read_table
    df = read_table(csv, "--csv").iloc[:max_rows]  # the rows the protocol reads: only they must be in the format
    for column in ("date", "OT"):
        if column not in df.columns: raise InputError(column, f"column is missing from {csv}: the ETT format is `date`, numeric channels…, `OT`")
    dates = pd.to_datetime(df["date"], errors="coerce")  # any format pandas reads (ISO, month-first, `1990/1/1 0:00`)
    if (bad := dates.isna()).any():
        raise InputError("date", f"{df['date'][bad].iloc[0]!r} is not a timestamp (row {int(bad.to_numpy().argmax())} of {csv})")
    df["date"] = dates.astype("datetime64[ns]")
    channels = [c for c in df.columns if c != "date"]
    for c in channels:  # every channel is a number: one that is not is refused by name, never left out of the "M" setting
        values = pd.to_numeric(df[c], errors="coerce")
        if (bad := values.isna() & df[c].notna()).any():
            raise InputError(c, f"{df[c][bad].iloc[0]!r} is not a number (row {int(bad.to_numpy().argmax())} of {csv})")
        df[c] = values.astype("float64")
    df = df[["date", *channels]].assign(series_id=dataset)
    return df[["series_id", "date", *[c for c in channels if c != "OT"], "OT"]]


def channels_long(wide: pd.DataFrame, dataset: str) -> pd.DataFrame:
    "The 'M' reshape: one series per channel, series_id=f'{dataset}:{column}', the channel's values under OT."
    cols = [c for c in wide.columns if c not in ("series_id", "date")]
    return pd.concat([pd.DataFrame({"series_id": f"{dataset}:{c}", "date": wide["date"].to_numpy(), "OT": wide[c].to_numpy()}) for c in cols],
                     ignore_index=True)


def level_shift(wide: pd.DataFrame, rows: tuple[int, int, int]) -> dict[str, dict[str, float]]:
    "Per channel: where the validation and test spans sit against the training rows, on the scale the metric uses."
    import numpy as np
    from skewfree.panel import parse_panel
    from skewfree.scale import Scaler  # the preprocessor's own standard scale of the training rows, not a copy of it
    tr, va, te = rows
    channels = [c for c in wide.columns if c not in ("series_id", "date")]
    stats = Scaler("standard").learn(parse_panel(wide.iloc[:tr], id_col=None, time_col="date", numeric=channels))[0]
    out = {}
    for c, (center, spread) in zip(channels, stats):
        values = wide[c].to_numpy(dtype="float64")
        spans = {"val": values[tr:tr + va], "test": values[tr + va:tr + va + te]}
        out[c] = {f"{name}_{stat}": float(v) for name, span in spans.items()
                  for stat, v in (("shift_sd", (np.nanmean(span) - center) / spread), ("spread_ratio", np.nanstd(span) / spread))}
    return out


def overrides_for(dataset: str, setting: str, horizon: int, model: str, *, rows: tuple[int, int, int]) -> list[str]:
    "The Hydra overrides of one cell: the split, the horizon (and the paper's look-back), the setting."
    tr, va, te = rows
    model, lookback, extra = VARIANTS.get(model, (model, None if model == "tft" else LOOKBACK, []))  # None: the model YAML's own
    o = [f"model={model}", f"data.names=[{dataset}]", f"cv.train_rows={tr}", f"cv.val_rows={va}", f"cv.test_rows={te}", "cv.eval_stride=1",
         "data.covariates.past=[]"]  # S and M alike: the target alone (M's channels are each a series of their own)
    if model in LINEAR:
        o += [f"model.hyperparameters.input_chunk_length={lookback}", f"model.hyperparameters.output_chunk_length={horizon}"]
        if setting == "M": o.append("model.hyperparameters.shared_weights=true")
        if model == "nlinear" and (dataset, setting) in PAPER_LR: o.append(f"trainer.torch.learning_rate={PAPER_LR[(dataset, setting)]}")
    elif model == "xgboost":  # the calendar lags its committed figures were measured with (the YAML's now reach the output window)
        o += [f"model.hyperparameters.output_chunk_length={horizon}", "model.hyperparameters.lags_future_covariates=[24,24]"]
    elif model == "tft":
        o += [f"model.hyperparameters.output_chunk_length={horizon}", *([f"model.hyperparameters.input_chunk_length={lookback}"] if lookback else [])]
    elif model == "seasonal_naive": o.append(f"model.hyperparameters.max_horizon={horizon}")
    return o + extra


def nested_choice(raw: pd.DataFrame, dataset: str, setting: str, horizon: int, *, rows: tuple[int, int, int]) -> tuple[list[str], dict]:
    "Nested CV of every candidate on the training + validation rows only; the winner's overrides with its final tuned parameters."
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance for this cell only: no token written to ~/.ray
    import ray
    from skewfree.config import compose_config
    from skewfree.evaluate import Positions
    from skewfree.forecaster import Forecaster, data_decided
    from skewfree.nested_cv import plan_folds, run_folds, summarise
    seen = raw[raw.groupby("series_id").cumcount() < rows[0] + rows[1]]  # the test rows are never handed over
    started, setups = time.perf_counter(), {}

    def nested_config(base: list[str], cpus: int):
        "The candidate's config under nested CV, each fold a Ray task with `cpus` CPUs and as many threads (torch and xgboost)."
        return compose_config([*base, "cv=nested", f"cv.horizon={horizon}", "cv.n_folds=2", f"cv.step={horizon}", "cv.val_rows=1440",
                               "cv.inner.n_folds=2", "cv.inner.n_trials=4", "cv.inner.pruner.n_startup_trials=2", "cv.progress=false",
                               "executor=ray", f"executor.cpus_per_fold={cpus}", f"executor.threads_per_fold={cpus}", f"trainer.boosted.n_jobs={cpus}"])

    for candidate in NESTED_CANDIDATES:
        base = [o for o in overrides_for(dataset, setting, horizon, candidate, rows=rows) if not o.startswith("cv.")]
        # nested CV scores point forecasts (cv_mse_std): a quantile model would fit three boosters to score one of them
        if candidate == "xgboost": base.append("model.hyperparameters.quantiles=[]")
        cfg = data_decided(nested_config(base, cpus=1), seen)  # one CPU per fold: two folds share the two cores
        setups[candidate] = (base, cfg, plan_folds(cfg, Positions(seen, Forecaster.from_config(cfg).preprocessor).lengths))
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        def outer_folds(candidate: str) -> list:
            _, cfg, plan = setups[candidate]
            return run_folds(cfg, seen, plan.outer, plan, study_names=[f"skewfree-fold{f.index}" for f in plan.outer])
        # the outer folds of all candidates in one pool of tasks: a core never waits for another candidate's slowest fold
        with ThreadPoolExecutor(len(NESTED_CANDIDATES)) as pool: folds = dict(zip(NESTED_CANDIDATES, pool.map(outer_folds, NESTED_CANDIDATES)))
        summaries = {c: summarise(f) for c, f in folds.items()}
        scores = {c: s["cv_mse_std"] for c, s in summaries.items()}
        for c in NESTED_CANDIDATES: print(f"    nested CV {c}: cv_mse_std {scores[c]:.4f} ± {summaries[c]['cv_mse_std_sd']:.4f}", flush=True)
        winner = min(scores, key=lambda m: scores[m])
        # only the winner's final study (over all the rows it may see) is needed: the others' would be computed and thrown away
        base, _, plan = setups[winner]
        # the one task left: all the cores for it
        final = run_folds(nested_config(base, cpus=os.cpu_count() or 1), seen, [plan.final], plan, study_names=["skewfree-final"])[0]
    finally:
        ray.shutdown()
    params = final.best_params
    fold_s = {c: [r.seconds for r in f] for c, f in folds.items()} | {f"{winner} final": [final.seconds]}  # where its time went
    return [*base, *[f"{k}={v}" for k, v in params.items()]], {"nested_cv_scores": scores, "chosen_model": winner, "chosen_params": params,
                                                                "nested_cv_s": time.perf_counter() - started, "nested_fold_s": fold_s}


def run_cell(dataset: str, setting: str, horizon: int, model: str, *, csv: str | None, rows: tuple[int, int, int], refit: bool = False,
             stride: int = 1, score_val: bool = True, boosted_jobs: int | None = None) -> dict:
    "Fit and score one cell through the library; returns its measurements."
    from skewfree.config import compose_config
    from skewfree.evaluate import calibrate, evaluate, refit_rows, temporal_split
    from skewfree.forecaster import Forecaster, data_decided
    wide = load_frame(dataset, csv, max_rows=sum(rows))
    raw = channels_long(wide, dataset) if setting == "M" else wide
    chosen: dict = {}
    if model == "nested_cv_selected":
        tr, va, te = rows
        overrides, chosen = nested_choice(raw, dataset, setting, horizon, rows=rows)
        overrides += [f"cv.train_rows={tr}", f"cv.val_rows={va}", f"cv.test_rows={te}", "cv.eval_stride=1"]
    else:
        overrides = overrides_for(dataset, setting, horizon, model, rows=rows)
        if boosted_jobs and model == "xgboost": overrides.append(f"trainer.boosted.n_jobs={boosted_jobs}")  # its share of the cores
    cfg = data_decided(compose_config(overrides), raw)  # seasonal naive's season: the data's own (24 on ETTh's hours)
    forecaster = Forecaster.from_config(cfg)
    train, val, test = temporal_split(raw, cfg.cv, forecaster)
    t = time.perf_counter(); forecaster.fit(train, val); fit_s = time.perf_counter() - t
    # torch models: the epochs the kept weights were trained for, which a refit repeats (up to the best validation epoch
    # since 7c115c8; before it, the last epoch's weights were kept: every epoch run), as `fit` recorded them
    epochs = forecaster.refit_overrides().get("model.trainer.max_epochs")
    # the intervals (params/config.yaml `intervals`), calibrated on the validation windows, as a training run does
    t = time.perf_counter(); calibrate(forecaster, val); calibrate_s = time.perf_counter() - t
    t = time.perf_counter(); m = evaluate(forecaster, test, stride=stride); eval_s = time.perf_counter() - t
    intervals = {k: m[k] for k in m if k.startswith(("coverage_", "width_", "quantile_loss"))}
    if forecaster.head_quantiles and forecaster.intervals is not None:  # the model's own quantile heads, as it made them, beside them
        calibrated, forecaster.intervals = forecaster.intervals, None
        own = evaluate(forecaster, test, stride=stride)
        intervals |= {f"heads_{k}": own[k] for k in own if k.startswith(("coverage_", "width_", "quantile_loss"))}
        forecaster.intervals = calibrated
    v = evaluate(forecaster, val, stride=1) if score_val else {}  # what a choice between models may look at: never the test rows
    out = {"mse": m["mse_std"], "mae": m["mae_std"], "val_mse": v.get("mse_std"), "val_mae": v.get("mae_std"), "stride": stride, **chosen,
           "mae_original_units": m["mae"], "rmse_original_units": m["rmse"],
           "n_windows": int(m["n_windows"]), "n_series": int(raw["series_id"].nunique()), "fit_s": fit_s, "eval_s": eval_s,
           "intervals": intervals, "calibrate_s": calibrate_s,
           "overrides": overrides, "covariates": list(cfg.model.get("covariates") or []), "history_length": forecaster.history_length,
           "train_rows_seen": int(len(train)), "val_rows_seen": int(len(val)), "test_rows_seen": int(len(test))}
    if epochs is not None: out["epochs_trained"] = int(epochs)
    if ridges := forecaster.refit_overrides().get("model.trainer.ridges"): out["ridge"] = float(ridges[0])  # least squares: chosen on validation
    if refit:
        # the final model: trained on training + validation rows for as long as early stopping chose above; the test rows
        # are never handed over, and its errors are quoted on the protocol's scale (the scaler fitted on the training rows)
        seen = refit_rows(raw, cfg.cv, forecaster)
        t = time.perf_counter(); final = forecaster.refitted(seen); refit_s = time.perf_counter() - t
        r = evaluate(final, test, stride=1, scale=forecaster.preprocessor)
        out |= {"refit_mse": r["mse_std"], "refit_mae": r["mae_std"], "refit_fit_s": refit_s, "refit_rows_seen": int(len(seen)),
                "refit_overrides": forecaster.refit_overrides()}
    return out


def limit_threads(threads: int) -> None:
    "Hold this process to `threads` threads: torch's intra-op pool and every BLAS / OpenMP pool (numpy's, xgboost's)."
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(threads)
    threadpool_limits(threads)


def _child(conn, cell: dict, threads: int | None) -> None:
    try:
        if threads: limit_threads(threads)
        conn.send({"status": "ok", **run_cell(**cell), **({"threads": threads} if threads else {})})
    except Exception as e:  # noqa: BLE001  (recorded in the cell, never silent)
        conn.send({"status": "failed", "reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5)})
    conn.close()


FORKSERVER = mp.get_context("forkserver")
# each cell still runs in a fresh process, forked from a server that imported the library once (measured: a univariate nlinear
# cell's time beyond its fit and scoring fell from ~10 s to ~6.5 s)
FORKSERVER.set_forkserver_preload(PRELOAD)
_STARTING = threading.Lock()  # cells start one at a time, also when `--jobs` runs several: one connection to the fork server at once
LIVE: set = set()  # the cells' processes now running: a run that is stopped ends them too (they are not its children but the server's)


def run_isolated(cell: dict, timeout: float, threads: int | None = None) -> dict:
    "`run_cell(**cell)` in its own process (held to `threads` threads), killed after `timeout` s (recorded as skipped, with the reason)."
    recv, send = FORKSERVER.Pipe(duplex=False)
    proc = FORKSERVER.Process(target=_child, args=(send, cell, threads))
    t = time.perf_counter()
    with _STARTING:
        proc.start()
        LIVE.add(proc)
    send.close()
    if recv.poll(timeout):
        try: result = recv.recv()
        except EOFError: result = {"status": "failed", "reason": "the cell's process died without a result (out of memory?)"}
    else: result = {"status": "skipped", "reason": f"exceeded the time budget of {timeout:.0f} s per cell (fit + evaluation) on this machine"}
    if proc.is_alive(): proc.kill()
    proc.join()
    LIVE.discard(proc)
    result["wall_s"] = time.perf_counter() - t
    return result


def working_tree_changes() -> str | None:
    "A short hash of the uncommitted changes to the library and its configs, or None when there are none."
    try:
        status = subprocess.run(["git", "status", "--porcelain", "skewfree", "params"], capture_output=True, text=True, check=True).stdout
        diff = subprocess.run(["git", "diff", "HEAD", "--", "skewfree", "params"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError): return None
    return hashlib.sha256((status + diff).encode()).hexdigest()[:12] if status.strip() else None


def new_cell(args: argparse.Namespace, dataset: str, setting: str, horizon: int, model: str, *, rows: tuple[int, ...], run_rows: tuple[int, ...],
             paper: dict, provenance: dict) -> tuple[str, dict]:
    "A cell's key and its record before it is measured: what it is, the paper's figures beside it, and what produced it."
    key = f"{dataset}|{setting}|{horizon}|{model}" + ("|selection" if args.selection_slice else "")
    # a --csv named ETTh1/ETTh2 is compared too; a selection run is compared with nothing: it scores validation rows
    ref = paper.get((dataset, setting, horizon)) if rows == ROWS and not args.selection_slice else None
    cell = {"dataset": dataset, "setting": setting, "horizon": horizon, "model": model, "rows": list(run_rows),
            "paper_model": "NLinear" if ref else None, "paper_mse": ref and ref["nlinear_mse"], "paper_mae": ref and ref["nlinear_mae"],
            **provenance,  # the command, the commit, and the hash of `git diff HEAD -- skewfree params` (or None)
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if args.csv: cell["csv"] = args.csv
    if args.selection_slice: cell |= {"role": "selection", "selection_for_rows": list(rows)}
    return key, cell


def schedule(cells: list[tuple[str, str]], jobs: int, hints: dict[str, float]) -> list[tuple[int, list[str]]]:
    "The (cells at once, keys in start order) batches of a run; `cells` are (key, model) in the plan's order."
    if jobs <= 1: return [(1, [key for key, _ in cells])]
    alone = [key for key, model in cells if model == "nested_cv_selected"]  # its Ray folds take every core
    # the longest first (as recorded before; unknown ones keep the plan's order after them), so the run does not end on one long cell
    shared = sorted((key for key, model in cells if model != "nested_cv_selected"), key=lambda key: -hints.get(key, 0.0))
    return [(width, keys) for width, keys in ((jobs, shared), (1, alone)) if keys]


def wall_hints(results: str) -> dict[str, float]:
    "Each cell's wall time as last recorded, in this run's results file or else the accuracy table: the order `--jobs` starts cells in."
    hints: dict[str, float] = {}
    for name in dict.fromkeys(["accuracy", results]):  # the run's own file last: its figures win
        if (path := RESULTS / f"{name}.json").exists():
            hints |= {k: c["wall_s"] for k, c in json.loads(path.read_text())["results"].get("cells", {}).items() if c.get("wall_s")}
    return hints


def fmt(x, spec=".4f") -> str:
    return "-" if x is None else format(x, spec)


def print_table(cells: list[dict]) -> None:
    head = ["dataset", "setting", "H", "model", "our MSE", "our MAE", "paper MSE", "paper MAE", "MSE ratio", "MAE ratio", "fit s", "status"]
    rows = [[c["dataset"], c["setting"], str(c["horizon"]), c["model"], fmt(c.get("mse")), fmt(c.get("mae")), fmt(c.get("paper_mse"), ".3f"),
             fmt(c.get("paper_mae"), ".3f"), fmt(c.get("ratio_mse"), ".3f"), fmt(c.get("ratio_mae"), ".3f"), fmt(c.get("fit_s"), ".1f"),
             c["status"] + (f" ({c['reason']})" if c.get("reason") else "")] for c in cells]
    width = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    for r in [head, *rows]: print("  ".join(v.rjust(w) for v, w in zip(r, width)) + "  " + r[-1])


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="H=96 only")
    ap.add_argument("--full", action="store_true", help="the whole table: nlinear in every paper cell, the other models and nested CV in S at H 96 and 336")
    ap.add_argument("--results", default="accuracy", help="results file bench/results/NAME.json (default accuracy; another name: a re-run kept apart)")
    ap.add_argument("--settings", default="S,M")
    ap.add_argument("--horizons", default=",".join(map(str, HORIZONS)))
    ap.add_argument("--datasets", default="ETTh1,ETTh2")
    ap.add_argument("--models", default="nlinear")
    ap.add_argument("--csv", help="a CSV in the ETT format (date, numeric columns, target OT) instead of the embedded data")
    ap.add_argument("--name", help="the dataset name of --csv")
    ap.add_argument("--rows", help="train,val,test rows per series (default: 12/4/4 months of 30 days at the data's own frequency, "
                                   "the paper's ETTh borders for hourly data)")
    ap.add_argument("--cell-timeout", type=float, default=1200, help="seconds per cell (fit + evaluation) before it is skipped")
    ap.add_argument("--refit", action="store_true",
                    help="also refit each cell's model on training + validation rows for as long as early stopping chose, and score that")
    ap.add_argument("--selection-slice", action="store_true",
                    help="score each candidate for the choice between models: fitted one block earlier, on the validation span (never the test rows)")
    ap.add_argument("--selection-stride", type=int, default=4, help="with --selection-slice: score every N-th window of the slice")
    ap.add_argument("--jobs", type=int, default=1,
                    help="cells at once, each with cores // N threads, longest first; nested-CV cells (Ray on every core) run alone")
    return ap


def protocol_rows(dates: pd.Series) -> tuple[tuple[int, int, int], str]:
    "The protocol's borders at the data's own step: 12 / 4 / 4 months of 30 days (8640 / 2880 / 2880 hourly rows, 34560 / 11520 / 11520 every 15 min)."
    from skewfree.core import InputError
    steps = pd.to_datetime(dates).diff().dropna()
    step = steps.mode().iloc[0] if len(steps) else pd.Timedelta(0)
    if step <= pd.Timedelta(0):
        raise InputError("date", "the timestamps have no regular step: the protocol's borders cannot be derived from the data; give --rows")
    rows = tuple(int(pd.Timedelta(days=30 * months) / step) for months in MONTHS)
    return rows, pd.tseries.frequencies.to_offset(step).freqstr  # type: ignore[return-value]


def check_csv(ap: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[tuple[int, int, int], str] | None:
    "Read `--csv` once, before any cell: a file not in the ETT format, or too short for the borders, is one message, not one failed cell per horizon."
    from skewfree.core import InputError
    if bool(args.csv) != bool(args.name): ap.error("--csv and --name go together")
    if not args.csv: return None
    try:
        frame = load_frame(args.name, args.csv, None)
        rows, freq = tuple(int(r) for r in args.rows.split(",")) if args.rows else protocol_rows(frame["date"])  # type: ignore[assignment]
    except InputError as e: ap.error(str(e))
    except ValueError: ap.error(f"--rows needs three whole numbers train,val,test, got {args.rows!r}")
    if len(frame) < sum(rows):
        ap.error(f"--csv: {args.csv} has {len(frame)} rows; the protocol's borders at its frequency {freq!r} need {sum(rows)} "
                 f"(train {rows[0]} + val {rows[1]} + test {rows[2]}{'' if args.rows else ': 12 / 4 / 4 months of 30 days'})")
    return rows, freq  # type: ignore[return-value]


def split_rows(ap: argparse.ArgumentParser, args: argparse.Namespace,
               derived: tuple[tuple[int, int, int], str] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    "The standard rows (given, derived from --csv's frequency, or the paper's) and this run's: a selection run's are one block earlier."
    rows = derived[0] if derived else tuple(int(r) for r in args.rows.split(",")) if args.rows else ROWS
    if len(rows) != 3: ap.error("--rows needs train,val,test")
    if not args.selection_slice: return rows, rows
    if args.refit or rows[0] <= rows[1] or args.selection_stride < 1:
        ap.error("--selection-slice needs more training than validation rows, a --selection-stride >= 1, and no --refit")
    return rows, (rows[0] - rows[1], rows[1], rows[1])  # its "test" rows: the standard validation span


def cell_plan(ap: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[tuple[str, str, int, str]], list[str]]:
    "The (setting, dataset, H, model) cells this run measures, in order, and its datasets."
    settings = [s.strip().upper() for s in args.settings.split(",") if s.strip()]
    horizons = [96] if args.quick else [int(h) for h in args.horizons.split(",")]
    datasets = [args.name] if args.csv else [d.strip() for d in args.datasets.split(",") if d.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.full and (args.quick or args.selection_slice): ap.error("--full is the standard table: not with --quick or --selection-slice")
    if not re.fullmatch(r"[A-Za-z0-9_]+", args.results): ap.error("--results is a file name: letters, digits and _")
    if args.jobs < 1: ap.error("--jobs is how many cells run at once: 1 or more")
    unknown = [m for m in models if m not in MODELS] + [s for s in settings if s not in ("S", "M")]
    if unknown: ap.error(f"unknown model/setting {unknown}; models: {list(MODELS)}, settings: S, M")
    if not args.full:
        return [(setting, dataset, horizon, model) for setting in settings for dataset in datasets for horizon in horizons for model in models], datasets
    plan = [(setting, dataset, horizon, "nlinear") for setting in ("S", "M") for dataset in datasets for horizon in HORIZONS]
    return plan + [("S", dataset, horizon, model) for dataset in datasets for horizon in (96, 336) for model in FULL_OTHERS], datasets


def main() -> None:
    ap = parser()
    args = ap.parse_args()
    derived = check_csv(ap, args)
    plan, datasets = cell_plan(ap, args)
    rows, run_rows = split_rows(ap, args, derived)
    protocol = PROTOCOL | {"split_rows": f"train [0, {rows[0]}), val [{rows[0]}-L, {rows[0] + rows[1]}), test [{rows[0] + rows[1]}-L, {sum(rows)}); "
                                         f"rows >= {sum(rows)} unused" + (f" ({derived[1]} data)" if derived else "")}
    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]).as_posix()), *sys.argv[1:]])
    paper = paper_table()
    commit, dirty = git_commit(), working_tree_changes()

    path = RESULTS / f"{args.results}.json"
    previous = json.loads(path.read_text())["results"] if path.exists() else {}
    cells, started = dict(previous.get("cells", {})), time.perf_counter()
    # the data's own drift, which no model choice on the training and validation rows can see coming (bench/report.py)
    levels = previous.get("levels", {}) | {d: level_shift(load_frame(d, args.csv, sum(rows)), rows) for d in datasets}
    # every run's wall time, whole: the budgets (--quick < 10 min, the full table < 60 min) are read from these
    run = {"command": command, "commit": commit, "library_uncommitted_changes": dirty, "started_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine_cpus": os.cpu_count(), "machine": machine(), "jobs": args.jobs, "cells": [], "wall_s": 0.0, "finished": False}
    runs = [*previous.get("runs", []), run]
    measured, specs, keyed = [], {}, {}

    def record(key: str, cell: dict) -> None:
        "A finished cell: its ratios, printed, and written with the run's record at once, so an interrupted run keeps what it measured."
        if cell.get("mse") is not None and cell.get("paper_mse"):
            cell |= {"ratio_mse": cell["mse"] / cell["paper_mse"], "ratio_mae": cell["mae"] / cell["paper_mae"]}
        cells[key] = cell
        measured.append(cell)
        print_table([cell])
        if cell.get("traceback"): print(cell["traceback"], file=sys.stderr)
        run["cells"].append(key); run["wall_s"] = time.perf_counter() - started
        write(args.results, command, {"protocol": protocol, "levels": levels, "runs": runs, "cells": cells}, commit)

    for setting, dataset, horizon, model in plan:
        key, cell = new_cell(args, dataset, setting, horizon, model, rows=rows, run_rows=run_rows, paper=paper,
                             provenance={"command": command, "commit": commit, "library_uncommitted_changes": dirty})
        if setting == "M" and not model.startswith("nlinear"):
            record(key, cell | {"status": "skipped", "reason": "the M setting is run for nlinear only (channel-independent, shared weights)"})
            continue
        keyed[key] = cell
        specs[key] = {"dataset": dataset, "setting": setting, "horizon": horizon, "model": model, "csv": args.csv, "rows": run_rows,
                      "refit": args.refit, "stride": args.selection_stride if args.selection_slice else 1, "score_val": not args.selection_slice}

    def measure(key: str, threads: int | None) -> dict:
        print(f"--- {key}\n", end="", flush=True)  # one write: lines of cells that start together stay whole
        keyed[key]["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        return run_isolated(specs[key] | {"boosted_jobs": threads}, args.cell_timeout, threads)

    for width, keys in schedule([(k, specs[k]["model"]) for k in specs], args.jobs, wall_hints(args.results)):
        threads = max(1, (os.cpu_count() or 1) // width) if width > 1 else None  # one cell at a time: the library's own thread counts
        with ThreadPoolExecutor(width) as pool:
            futures = {pool.submit(measure, key, threads): key for key in keys}
            for done in as_completed(futures): record(futures[done], keyed[futures[done]] | done.result())
    run["wall_s"], run["finished"] = time.perf_counter() - started, True
    write(args.results, command, {"protocol": protocol, "levels": levels, "runs": runs, "cells": cells}, commit)
    print(f"\nthis run: {len(measured)} cells in {time.perf_counter() - started:.0f} s wall\n")
    print_table(measured)
    if measured and all(c["status"] == "failed" for c in measured): sys.exit("every cell failed: see the reasons above")


PROTOCOL = {
    "source": "bench/ltsf_linear_reference.md (copy of the project's reference: LTSF-Linear, Zeng et al. AAAI 2023, cure-lab/LTSF-Linear)",
    "lookback": f"{LOOKBACK} (tft: tft.yaml's own input_chunk_length)",
    "split_rows": "train [0, 8640), val [8640-L, 11520), test [11520-L, 14400); rows >= 14400 unused",
    "metric": "MSE / MAE on the per-series standard scale fitted on training rows, every stride-1 test window (skewfree.evaluate.evaluate)",
    "M_setting": "one series per channel (series_id=dataset:column, values under OT), one nlinear (or nlinear_ls) with shared_weights=true over the 7 series",
    "pass_rule": "MSE <= paper MSE x 1.02",
}


def stop(signum: int, _frame) -> None:
    "A run that is stopped (Ctrl-C, kill) ends its cells first, so that the threads waiting on them return and the run exits at once."
    for proc in list(LIVE): proc.kill()
    sys.exit(128 + signum)


if __name__ == "__main__":
    for signum in (signal.SIGINT, signal.SIGTERM): signal.signal(signum, stop)
    main()
