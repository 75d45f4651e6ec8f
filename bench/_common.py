"Shared plumbing for benchmarks: where results go and what machine measured them."
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    "The machine a figure was measured on."
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "memory_gib": round(mem, 1), "cpu": cpu, "python": platform.python_version(), "platform": platform.platform()}


def git_commit() -> str:
    try: return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError): return "unknown"


def interleaved_medians(steps: dict, rounds: int, repeats: int) -> dict[str, list[float]]:
    "Per step, the median ms of `repeats` calls (after one warm call) in each of `rounds` rounds that take the steps in turn."
    import statistics
    out: dict[str, list[float]] = {}
    for _ in range(rounds):  # interleaved: a drift of the machine's speed touches every step alike
        for name, fn in steps.items():
            fn()
            times = []
            for _ in range(repeats):
                t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)
            out.setdefault(name, []).append(statistics.median(times))
    return out


def write(name: str, command: str, results: dict, commit: str | None = None) -> Path:
    "Write `results` with the command that reproduces them, its commit (given: the one the run started at) and the machine, to bench/results/<name>.json."
    RESULTS.mkdir(exist_ok=True)
    path, partial = RESULTS / f"{name}.json", RESULTS / f".{name}.json.partial"
    # written whole, then renamed over the old file: a run stopped while it writes leaves the old results, never half a file
    partial.write_text(json.dumps({"benchmark": name, "command": command, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                "commit": commit or git_commit(), "machine": machine(), "results": results}, indent=1) + "\n")
    partial.replace(path)
    print(f"wrote {path}")
    return path


def smoke_model(prefix: str):
    "The smoke model trained into a throw-away sqlite MLflow store (exported to subprocesses): (store URI, `TrainResult`, look-back rows)."
    import tempfile

    from skewfree.config import compose_config
    from skewfree.data import load_ett
    from skewfree.train import train
    store = f"sqlite:///{tempfile.mkdtemp(prefix=prefix)}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = store
    result = train(compose_config(["profile=smoke"]))
    history = load_ett(max_rows=930).groupby("series_id").tail(result.forecaster.history_length).reset_index(drop=True)
    return store, result, history
