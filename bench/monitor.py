"""Monitor: what the live skew monitor costs a request, and what it says of spans replayed as requests, in one run.

    python bench/monitor.py                     # both sections (about 3 min on 2 cores)
    python bench/monitor.py --only overhead

Sections (`--only` picks some):
- `overhead`: the standard request (the artifact's input example: 2 series x 336 rows, NLinear in closed form, H = 96)
  through `PyFuncModel.predict`, p50 over many calls, with the monitor's work (each request binned against the profile in
  `Forecaster.observe`, then added to the server's window) and without it (`observing` off, as a batch job loads the
  artifact: nothing binned), interleaved rounds; beside them the server's part alone (the window's `add`), and a report (what
  `GET /monitor` and a Prometheus scrape make, not per request).
- `alarms`: per ETT series (ETTh1, ETTh2) and covariate setting (the target alone; with the six load columns), an NLinear
  (closed form) fitted on the paper's training rows, its forecasts profiled on the training and validation rows; then spans
  replayed as requests (336-row windows, one every 24 rows, in time order) through a monitor with the default window and
  thresholds (`MonitorConfig`): the training span (how many verdicts cross a threshold: false alarms), the validation span
  shifted up by one training SD (the first request flagged; target within 200), and the test spans (what it says).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import interleaved_medians, write  # noqa: E402

warnings.filterwarnings("ignore")
SECTIONS = ["overhead", "alarms"]
HORIZON = 96


def overhead(repeats: int, rounds: int = 9) -> dict:
    "p50 ms of the standard request with and without the monitor's work, and of the server's part alone."
    import mlflow

    from skewfree.config import compose_config
    from skewfree.monitor import Monitor
    from skewfree.train import train
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        result = train(compose_config(["model=nlinear_ls", "trainer.least_squares.ridges=[1.0]", "cv.eval_stride=96",
                                       "mlflow.registered_model=monitor-bench"]))
        model = mlflow.pyfunc.load_model(result.model_uri)
    forecaster = model.unwrap_python_model().forecaster
    request, params = model.input_example, {"horizon": HORIZON}
    monitor = Monitor(forecaster.monitored)
    forecaster.observing = True  # as a server's hydrated artifact does
    seen = model.predict(request, params=params).attrs["observed"]

    def on():  # what a request costs: binned where it is prepared, added to the window (a report is made when asked, not per request)
        forecaster.observing = True
        monitor.add(model.predict(request, params=params).attrs["observed"])

    def off():  # the same artifact, loaded by a batch job: nothing binned
        forecaster.observing = False
        model.predict(request, params=params)

    def server_part(): monitor.add(seen)

    batch, horizon, _ = forecaster.prepare(request, HORIZON)
    forecast = forecaster.preprocessor.scaled_forecast(forecaster.model_output(batch, horizon), batch)

    def binning(): forecaster.observe(batch, forecast)  # the request's part alone, on a prepared request

    def report(): monitor.report()

    out = interleaved_medians({"monitor_on": on, "monitor_off": off, "binning": binning, "server_part": server_part, "report": report},
                              rounds, repeats)
    result = {f"{k}_p50_ms": statistics.median(v) for k, v in out.items()}
    # the difference within each round (same minute, same machine state), then their median: steadier than a difference of medians
    result["overhead_p50_ms"] = statistics.median(a - b for a, b in zip(out["monitor_on"], out["monitor_off"]))
    result["rounds"] = rounds
    result["features"] = [f.name for f in forecaster.monitored]
    print(f"overhead: p50 {result['monitor_on_p50_ms']:.3f} ms on, {result['monitor_off_p50_ms']:.3f} ms off "
          f"(+{result['overhead_p50_ms']:.3f} ms); binning alone {result['binning_p50_ms']:.3f} ms; "
          f"the server's part {result['server_part_p50_ms']:.3f} ms; a report {result['report_p50_ms']:.3f} ms", flush=True)
    return result


def stream(model, frame) -> dict:
    "A span replayed as requests through a monitor with the default settings: verdicts, the first drift, the largest statistic."
    from skewfree.monitor import Monitor, replay
    replayed = replay(model, frame)
    counts, ends = replayed.counts, replayed.ends
    monitor = Monitor(model.monitored, clock=lambda: 0.0)
    verdicts, drifting, first, largest = 0, 0, None, {}
    for i, c in enumerate(counts):
        monitor.add(c)
        report = monitor.report()
        for name, f in report["features"].items():
            if f["state"] != "collecting": largest[name] = max(largest.get(name, 0.0), f["statistic"])
        if report["window"]["requests"] >= monitor.config.min_requests: verdicts += 1
        if report["drifting"]:
            drifting += 1
            if first is None: first = {"request": i + 1, "at": str(ends[i]), "features": report["drifting"]}
    return {"requests": len(counts), "verdicts": verdicts, "requests_drifting": drifting, "first_drift": first,
            "largest_statistic": {k: round(v, 4) for k, v in largest.items()},
            "last": {name: {"statistic": None if f["statistic"] is None else round(f["statistic"], 4), "state": f["state"]}
                     for name, f in report["features"].items()}}


def alarms() -> dict:
    "The default monitor on replayed spans of ETTh1 and ETTh2, target alone and with the load columns."
    from skewfree.config import compose_config
    from skewfree.data import load_ett
    from skewfree.evaluate import forecast_profile, refit_rows, temporal_split
    from skewfree.forecaster import Forecaster
    from skewfree.monitor import MonitorConfig
    out: dict = {"config": asdict(MonitorConfig())}
    for name in ("ETTh1", "ETTh2"):
        for covariates in ("[]", "[past]"):
            cfg = compose_config(["model=nlinear_ls", f"data.names=[{name}]", f"model.covariates={covariates}"])
            model = Forecaster.from_config(cfg)
            raw = load_ett(names=[name])
            train, val, test = temporal_split(raw, cfg.cv, model)
            model.fit(train, val)
            model.forecast_profile = forecast_profile(model, refit_rows(raw, cfg.cv, model))
            sd = float(model.preprocessor.scaling.stats_[0, 0, 1])
            mean = float(model.preprocessor.scaling.stats_[0, 0, 0])
            key = f"{name} {'target only' if covariates == '[]' else 'with load columns'}"
            out[key] = {"training_sd": sd,
                        "test_target_mean_in_training_sds": (float(test.OT.iloc[model.history_length:].mean()) - mean) / sd,
                        "train": stream(model, train), "val_shifted_1sd": stream(model, val.assign(OT=val.OT + sd)),
                        "val": stream(model, val), "test": stream(model, test)}
            r = out[key]
            print(f"{key}: train {r['train']['requests_drifting']} of {r['train']['verdicts']} verdicts drifting; val+1sd first drift at "
                  f"{(r['val_shifted_1sd']['first_drift'] or {}).get('request')}; test first drift {r['test']['first_drift']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    only = args.only.split(",")
    results: dict = {}
    if "overhead" in only: results["overhead"] = overhead(args.repeats)
    if "alarms" in only: results["alarms"] = alarms()
    write("monitor" if set(only) == set(SECTIONS) else f"monitor_{'_'.join(only)}", "python bench/monitor.py " + " ".join(sys.argv[1:]), results)


if __name__ == "__main__":
    main()
