"""Scale: the columnar preprocessor and the batched model side on panels of 100 to 100,000 series, measured in one run.

    python bench/scale.py                       # every section (about 25 min on 2 cores)
    python bench/scale.py --only request,transform --baseline 69a1c2d

Panels are built from the embedded ETT data, nothing else: each series is a segment of ETTh1's or ETTh2's oil
temperature (OT) at its own offset in time, times its own scale plus its own level, on the segment's own hourly dates.

Sections (`--only` picks some):
- `throughput`: an NLinear 336 -> 96 (weights in closed form, `nlinear_ls`: the same NumPy forward pass as `nlinear`)
  fitted on a 100,000-series panel, logged and loaded as the MLflow pyfunc artifact; `PyFuncModel.predict` on the last
  336 rows of 100 / 1,000 / 10,000 / 100,000 of its series, horizon 96, each size in a fresh process (series/s from the
  best of the timed calls, the process's peak resident memory over its baseline). Beside it, in the same run, the floor:
  the same arithmetic in bare NumPy, frames in and out (reshape, scale with the fitted statistics, the same float64 pass,
  back to original units, the answer frame), with no check of any kind.
- `request`: the standard request (the artifact's input example: 2 series x 336 rows, NLinear, H = 96) through
  `PyFuncModel.predict`, p50 over many calls, split into MLflow's schema check, parse (raw rows to arrays), the rest of
  the transform, the model and the inverse; the same for the code at `--baseline` (a git worktree of that commit, its own
  freshly trained model), in a child process on this machine in this run.
- `transform`: `Preprocessor.transform`, 1 x 336 and 1,000 x 336 rows (target only; six past covariates and three
  calendar features), beside the per-series preprocessor it replaced (tests/reference_preprocess.py, frozen) on the same
  rows and state.
- `fit`: a global NLinear (Adam, darts' training loop) on 10,000 series x 1,000 rows (the trainer recipe with batches
  of 1,024 windows, at most 100 windows a series an epoch, 5 epochs): wall time, and the share spent outside the training
  loop itself (timed by a Lightning callback from the first batch to the end of training); the preprocessor's fit and
  transform and the darts series, each also timed alone.
- `refusal`: 150,000 unknown series ids, one row each, through `PyFuncModel.predict`: CPU seconds to the 4xx-ready
  refusal.
- `ray`: `skewfree predict --executor ray` on 100,000 series from a Parquet file grouped by series, 1 actor and 2 actors,
  end to end (a local Ray instance started by the command) and the actors' forecasting stage alone (Ray Data's own
  statistics: first block to last, the actors' start-up not included); its output against the local run on the same
  file (largest difference).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import interleaved_medians, write  # noqa: E402

warnings.filterwarnings("ignore")
LOOKBACK, HORIZON = 336, 96
SECTIONS = ["request", "transform", "throughput", "refusal", "fit", "ray"]


def _status_mib(field: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def peak_during(fn) -> tuple[float, float]:
    "(resident MiB before `fn`, peak resident MiB while it ran): Linux's high-water mark, reset first (`/proc/self/clear_refs`)."
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mib("VmRSS")
    fn()
    return before, _status_mib("VmHWM")


def train_panel_model(n: int, store: Path) -> str:
    "An NLinear 336 -> 96 in closed form fitted on an n-series panel, logged as the pyfunc artifact; its model URI."
    import mlflow

    from skewfree.artifact import input_example, log_forecaster
    from skewfree.data import ett_panel
    from skewfree.config import compose_config
    from skewfree.forecaster import Forecaster
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    panel = ett_panel(n, LOOKBACK + HORIZON)  # one training window per series
    forecaster = Forecaster.from_config(compose_config(["model=nlinear_ls", "trainer.least_squares.ridges=[1.0]",
                                                        f"model.hyperparameters.input_chunk_length={LOOKBACK}",
                                                        f"model.hyperparameters.output_chunk_length={HORIZON}"])).fit(panel)
    if mlflow.get_experiment_by_name("scale-bench") is None: mlflow.create_experiment("scale-bench", artifact_location=(store/"artifacts").as_uri())
    mlflow.set_experiment("scale-bench")
    with mlflow.start_run():
        info = log_forecaster(forecaster, input_example(forecaster, panel))
    return info.model_uri


def best_of(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times), times


def child_throughput(uri: str, store: str, n: int, repeats: int, trained: int) -> dict:
    "In a fresh process: PyFuncModel.predict on n series of the panel, and the bare-NumPy floor on the same frame."
    import mlflow

    from skewfree.data import ett_panel  # before the artifact loads: its copy of the code (no data folder) then goes first on the path
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(uri)
    # the first n series of the panel the model was fitted on (ids and values as at fit), their last rows before the forecast
    panel = ett_panel(trained, LOOKBACK + HORIZON).iloc[:n * (LOOKBACK + HORIZON)]
    request = panel.groupby("series_id", sort=False).head(LOOKBACK).reset_index(drop=True)
    del panel
    model.predict(request, params={"horizon": HORIZON})  # warm: numba's compiled pass loaded, caches filled
    before, peak = peak_during(lambda: model.predict(request, params={"horizon": HORIZON}))
    best, times = best_of(lambda: model.predict(request, params={"horizon": HORIZON}), repeats)
    floor = bare_numpy(model.unwrap_python_model().forecaster)
    floor(request)
    floor_best, floor_times = best_of(lambda: floor(request), repeats)
    return {"series": n, "rows": len(request), "seconds": best, "series_per_s": n / best, "times_s": times, "rss_before_mib": before, "peak_rss_mib": peak,
            "peak_over_before_mib": peak - before, "request_frame_mib": request.memory_usage(deep=True).sum() / 2**20,
            "floor_seconds": floor_best, "floor_series_per_s": n / floor_best, "floor_times_s": floor_times}


def bare_numpy(forecaster):
    "The forecast's arithmetic and nothing else: frames in and out, no check, no repair, a BLAS product (not batch-invariant)."
    pre, kernel = forecaster.preprocessor, forecaster.kernel
    known = pd.Index(pre.series_)
    stats = pre.scaling.stats_[:, 0]
    weight, bias = kernel.weight.T.astype(np.float64), kernel.bias.astype(np.float64)

    def run(frame: pd.DataFrame) -> pd.DataFrame:
        ids = frame.series_id.iloc[::LOOKBACK].to_numpy()
        at = known.get_indexer(ids)
        center, scale = stats[at, 0][:, None], stats[at, 1][:, None]
        x = ((frame.OT.to_numpy().reshape(-1, LOOKBACK) - center) / scale).astype(np.float32)
        last = x[:, -1:]
        y = ((x - last).astype(np.float64) @ weight + bias).astype(np.float32) + last
        times = frame.date.to_numpy()[LOOKBACK - 1::LOOKBACK, None] + np.arange(1, HORIZON + 1) * np.timedelta64(1, "h")
        series = pd.Categorical.from_codes(np.repeat(np.arange(len(ids)), HORIZON), categories=pd.Index(ids))  # no text copied per row
        return pd.DataFrame({"series_id": series, "date": times.ravel(), "forecast": (y * scale + center).ravel()})
    return run


def throughput(sizes: list[int], repeats: int, work: Path) -> dict:
    started = time.perf_counter()
    uri = train_panel_model(max(sizes), work)
    trained = time.perf_counter() - started
    out = {"model": "nlinear_ls 336 -> 96, fitted on the largest panel", "training_seconds": trained, "by_size": []}
    for n in sizes:
        child = subprocess.run([sys.executable, __file__, "--child", "throughput", "--uri", uri, "--store", f"sqlite:///{work}/mlflow.db",
                                "--series", str(n), "--trained", str(max(sizes)), "--repeats", str(repeats if n < 100_000 else 2)],
                               capture_output=True, text=True, check=False)
        if child.returncode: raise RuntimeError(f"the {n}-series child failed:\n{child.stderr[-3000:]}")
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"throughput {n:>7} series: {row['series_per_s']:,.0f} series/s (floor {row['floor_series_per_s']:,.0f}), "
              f"peak +{row['peak_over_before_mib']:.0f} MiB over {row['rss_before_mib']:.0f}", flush=True)
        out["by_size"].append(row)
    by = {r["series"]: r for r in out["by_size"]}
    if 10_000 in by and 100_000 in by: out["linear_ratio_100k_over_10k"] = by[100_000]["series_per_s"] / by[10_000]["series_per_s"]
    return out


def staged_request(model, repeats: int) -> dict:
    "p50 ms of the standard request through PyFuncModel.predict, and of each stage done alone (works on both code versions)."
    from mlflow.pyfunc import _validate_prediction_input
    python_model = model.unwrap_python_model()
    forecaster, pre = python_model.forecaster, python_model.forecaster.preprocessor
    request, params = model.input_example, {"horizon": HORIZON}
    schema, params_schema = model.metadata.get_input_schema(), model.metadata.get_params_schema()
    batch, horizon, levels = forecaster.prepare(request, HORIZON)
    scaled = forecaster.model_output(batch, horizon)
    parse = (lambda: pre.panel(request)) if hasattr(pre, "panel") else (lambda: pre.frames(request))
    stages = {"total": lambda: model.predict(request, params=params),
              "schema_check": lambda: _validate_prediction_input(request, params, schema, params_schema),
              "parse": parse, "transform": lambda: forecaster.prepare(request, HORIZON),
              "model": lambda: forecaster.model_output(batch, horizon), "inverse": lambda: forecaster.original_units(scaled, batch, levels)}
    out = interleaved_medians(stages, 3, repeats)
    result = {f"{k}_p50_ms": statistics.median(v) for k, v in out.items()}
    result["transform_after_parse_p50_ms"] = result["transform_p50_ms"] - result["parse_p50_ms"]
    return result


def child_request(repeats: int) -> dict:
    "In this process, whichever skewfree it imports: train the standard NLinear (closed form) on ETT, log, load, time the request."
    import mlflow

    from skewfree.config import compose_config
    from skewfree.train import train
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        result = train(compose_config(["model=nlinear_ls", "trainer.least_squares.ridges=[1.0]", "cv.eval_stride=96",
                                       "mlflow.registered_model=scale-bench"]))
        model = mlflow.pyfunc.load_model(result.model_uri)
        import skewfree
        return {"skewfree_file": skewfree.__file__, **staged_request(model, repeats)}


def baseline_tree(commit: str) -> Path:
    "A git worktree of `commit` (made once, under /tmp), whose skewfree a child process imports instead of this one."
    tree = Path(tempfile.gettempdir()) / f"skewfree-baseline-{commit}"
    if not tree.exists(): subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True)
    return tree


def request(repeats: int, baseline: str | None) -> dict:
    out = {"now": child_request(repeats)}
    print(f"request now: p50 {out['now']['total_p50_ms']:.2f} ms", flush=True)
    if baseline:
        tree = baseline_tree(baseline)
        env = dict(os.environ, PYTHONPATH=str(tree))
        child = subprocess.run([sys.executable, __file__, "--child", "request", "--repeats", str(repeats)], env=env, cwd=tree,
                               capture_output=True, text=True, check=False)
        if child.returncode: raise RuntimeError(f"the baseline child failed:\n{child.stderr[-3000:]}")
        out["baseline"] = json.loads(child.stdout.strip().splitlines()[-1]) | {"commit": baseline}
        assert str(tree) in out["baseline"]["skewfree_file"], out["baseline"]["skewfree_file"]  # it measured the old code
        print(f"request at {baseline}: p50 {out['baseline']['total_p50_ms']:.2f} ms", flush=True)
    return out


def transform(repeats: int) -> dict:
    "The new transform against the frozen per-series one, on the same rows and the same fitted state."
    sys.path.insert(0, str(ROOT / "tests"))
    import reference_preprocess as reference

    from skewfree.data import ETT_COVARIATES, load_ett
    from skewfree.preprocess import Preprocessor, upgraded_state
    raw = load_ett()
    out = {}
    for label, past, calendar in [("target_only", [], []), ("past_and_calendar", ETT_COVARIATES, ["hour", "dayofweek", "month"])]:
        config = dict(target="OT", past_covariates=past, calendar=calendar, missing="interpolate", gaps="reindex", history_length=LOOKBACK)
        windows = [raw[raw.series_id == ("ETTh1", "ETTh2")[i % 2]].iloc[8640 + i:8640 + i + LOOKBACK].assign(series_id=f"s{i:04d}") for i in range(1000)]
        batch = pd.concat(windows, ignore_index=True)
        old = reference.Preprocessor(**config).fit(pd.concat([raw[raw.series_id == ("ETTh1", "ETTh2")[i % 2]].iloc[:8640].assign(series_id=f"s{i:04d}")
                                                              for i in range(1000)], ignore_index=True))
        new = Preprocessor.from_dict(upgraded_state(old.to_dict()))  # the very same state
        one = batch[batch.series_id == "s0000"]
        row = {}
        for case, frame, n in [("one_series_336_rows", one, repeats), ("batch_1000_series_336_rows", batch, max(3, repeats // 50))]:
            for who, pre in (("per_series", old), ("columnar", new)):
                pre.transform(frame, horizon=24)
                _, times = best_of(lambda pre=pre, frame=frame: pre.transform(frame, horizon=24), n)
                row[f"{case}.{who}_median_ms"] = statistics.median(times) * 1000
            row[f"{case}.speedup"] = row[f"{case}.per_series_median_ms"] / row[f"{case}.columnar_median_ms"]
            print(f"transform {label} {case}: {row[f'{case}.per_series_median_ms']:.1f} ms -> {row[f'{case}.columnar_median_ms']:.2f} ms "
                  f"(x{row[f'{case}.speedup']:.0f})", flush=True)
        out[label] = row
    return out


def refusal(work: Path) -> dict:
    "150,000 unknown ids through PyFuncModel.predict: CPU time to the refusal, and what it says."
    import mlflow
    mlflow.set_tracking_uri(f"sqlite:///{work}/mlflow.db")
    uri = train_panel_model(100, work)
    model = mlflow.pyfunc.load_model(uri)
    n = 150_000
    frame = pd.DataFrame({"series_id": [f"unknown-{i}" for i in range(n)], "date": pd.Timestamp("2017-01-01"), "OT": 1.0})
    cpu, wall = time.process_time(), time.perf_counter()
    try: model.predict(frame, params={"horizon": HORIZON}); said = None
    except Exception as e: said = f"{type(e).__name__}: {e}"
    out = {"unknown_ids": n, "cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall, "refused_with": (said or "")[:300]}
    print(f"refusal of {n:,} unknown ids: {out['cpu_seconds']:.3f} s CPU", flush=True)
    return out


class _TrainingLoop:
    "A Lightning callback that times darts' training loop: from the first batch to the end of training."
    def __init__(self):
        import pytorch_lightning as pl

        class Timer(pl.Callback):
            started = ended = None
            def on_train_batch_start(self, *a):
                if self.started is None: self.started = time.perf_counter()
            def on_train_end(self, *a): self.ended = time.perf_counter()
        self.callback = Timer()

    @property
    def seconds(self) -> float: return self.callback.ended - self.callback.started


def fit(series: int, rows: int, epochs: int, samples: int) -> dict:
    "A global NLinear (darts, Adam) on a large panel through Forecaster.fit; the share of the wall time outside the training loop."
    from skewfree.config import compose_config
    from skewfree.data import ett_panel
    from skewfree.forecaster import Forecaster
    panel = ett_panel(series, rows, seed=1)
    cfg = compose_config([f"model.hyperparameters.input_chunk_length={LOOKBACK}", f"model.hyperparameters.output_chunk_length={HORIZON}",
                          f"trainer.torch.max_epochs={epochs}", f"trainer.torch.max_samples_per_ts={samples}", "trainer.torch.batch_size=1024",
                          "trainer.torch.accelerator=cpu"])
    # where the time outside the loop goes, each part timed alone on a preprocessor of its own first
    parts, pre = {}, Forecaster.from_config(cfg).preprocessor
    t = time.perf_counter(); pre.fit(panel); parts["preprocessor_fit_s"] = time.perf_counter() - t
    t = time.perf_counter(); batch = pre.transform(panel); parts["preprocessor_transform_s"] = time.perf_counter() - t
    t = time.perf_counter(); batch.to_darts(); parts["darts_series_s"] = time.perf_counter() - t
    forecaster = Forecaster.from_config(cfg)
    loop = _TrainingLoop()
    forecaster.model.trainer_params.setdefault("callbacks", []).append(loop.callback)
    forecaster.model._model_params["pl_trainer_kwargs"]["callbacks"] = forecaster.model.trainer_params["callbacks"]
    started = time.perf_counter()
    forecaster.fit(panel)
    wall = time.perf_counter() - started
    inside = loop.seconds
    out = {"series": series, "rows_per_series": rows, "epochs": epochs, "max_samples_per_ts": samples, "batch_size": 1024, "wall_seconds": wall,
           "training_loop_seconds": inside, "outside_seconds": wall - inside, "outside_share": (wall - inside) / wall, "parts_alone": parts}
    print(f"fit {series} x {rows}: {wall:.1f} s, training loop {inside:.1f} s, outside {out['outside_share']:.1%} ({parts})", flush=True)
    return out


def ray_batch(series: int, work: Path) -> dict:
    "skewfree predict, local and --executor ray with 1 and 2 actors, on the same Parquet file; largest difference of the outputs."
    from skewfree.data import ett_panel
    uri = train_panel_model(series, work)
    source = work / "panel.parquet"
    ett_panel(series, LOOKBACK + HORIZON).groupby("series_id", sort=False).head(LOOKBACK).to_parquet(source, index=False)
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db", RAY_AUTH_MODE="disabled")
    skewfree = str(Path(sys.executable).parent / "skewfree")
    out: dict = {"series": series}

    def run(name, *extra):
        started = time.perf_counter()
        done = subprocess.run([skewfree, "predict", "--model-uri", uri, "--input", str(source), "--horizon", str(HORIZON), "--quiet", *extra],
                              env=env, check=True, capture_output=True, text=True)
        out[f"{name}_seconds"] = time.perf_counter() - started
        for part in ("ray start", "job", "forecasting stage"):  # what the command says of its Ray run, from Ray Data's own statistics
            if m := re.search(rf", {part} ([0-9.]+) s", done.stdout): out[f"{name}_{part.replace(' ', '_')}_seconds"] = float(m[1])
        print(f"ray section {name}: {out[f'{name}_seconds']:.1f} s ({done.stdout.strip()})", flush=True)

    run("local", "--output", str(work / "local.parquet"))
    for workers in (1, 2):
        run(f"ray_{workers}", "--output", str(work / f"ray{workers}"), "--executor", "ray", f"executor.workers={workers}")
    local = pd.read_parquet(work / "local.parquet").sort_values(["series_id", "date"], ignore_index=True)
    for workers in (1, 2):
        ray = pd.read_parquet(work / f"ray{workers}").sort_values(["series_id", "date"], ignore_index=True)
        same_rows = len(ray) == len(local) and (ray.series_id.to_numpy() == local.series_id.to_numpy()).all() and (ray.date == local.date).all()
        out[f"ray_{workers}_max_abs_diff"] = float(np.max(np.abs(ray.forecast.to_numpy() - local.forecast.to_numpy()))) if same_rows else float("inf")
    out["speedup_2_over_1"] = out["ray_1_seconds"] / out["ray_2_seconds"]
    if "ray_2_forecasting_stage_seconds" in out:
        out["stage_speedup_2_over_1"] = out["ray_1_forecasting_stage_seconds"] / out["ray_2_forecasting_stage_seconds"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline", default="69a1c2d", help="the commit to measure `request` against (the per-series preprocessor)")
    ap.add_argument("--child", choices=["throughput", "request"])
    ap.add_argument("--uri"); ap.add_argument("--store"); ap.add_argument("--series", type=int); ap.add_argument("--trained", type=int)
    args = ap.parse_args()
    if args.child == "throughput": print(json.dumps(child_throughput(args.uri, args.store, args.series, args.repeats, args.trained))); return
    if args.child == "request": print(json.dumps(child_request(200))); return
    only = args.only.split(",")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "request" in only: results["request"] = request(200, args.baseline)
        if "transform" in only: results["transform"] = transform(200)
        if "throughput" in only: (work / "t").mkdir(); results["throughput"] = throughput([int(s) for s in args.sizes.split(",")], args.repeats, work / "t")
        if "refusal" in only: (work / "r").mkdir(); results["refusal"] = refusal(work / "r")
        if "fit" in only: results["fit"] = fit(10_000, 1_000, epochs=5, samples=100)
        if "ray" in only: (work / "y").mkdir(); results["ray"] = ray_batch(100_000, work / "y")
    write("scale" if set(only) == set(SECTIONS) else f"scale_{'_'.join(only)}", "python bench/scale.py " + " ".join(sys.argv[1:]), results)


if __name__ == "__main__":
    main()
