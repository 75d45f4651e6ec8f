"""Cold start of a served artifact: load + self-check (hashes, hydration, golden replay) in a fresh process.

    python bench/cold_start.py [--runs 5]

Trains one artifact per model into a throw-away MLflow store — NLinear and XGBoost with their default
configs, NLinear again with `model.runtime=darts` (darts' predict instead of the NumPy kernel), TFT with its
default architecture but one short epoch (training length does not change what is loaded) — then starts `--runs`
fresh Python processes per artifact, each timing `import mlflow` and `mlflow.pyfunc.load_model(uri)` separately;
then the same load in a fresh process that imported torch, Lightning, darts and skewfree first, to show how much of
a cold start is importing those libraries. Target: NLinear load +
self-check (the cold figure, `load_and_check_s`) <= 2 s.

`mlflow_floor` is MLflow's own share: the same `load_model` of a pyfunc that holds nothing (its `load_context` and
`predict` do no work and import nothing), registered in the same store — what any artifact pays before its own code runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import mlflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

warnings.filterwarnings("ignore")

PROBE = """
import json, time
t0 = time.perf_counter()
import mlflow
t1 = time.perf_counter()
model = mlflow.pyfunc.load_model({uri!r})
t2 = time.perf_counter()
print(json.dumps({{"import_mlflow_s": t1 - t0, "load_and_check_s": t2 - t1,
                   "hydration_s": model.unwrap_python_model().hydration_seconds}}))
"""

# the same load in a fresh process whose libraries are imported first: what is left once torch / Lightning / darts are
# imported — MLflow's registry lookup and dependency check, unpickling, the hash checks and the golden replay
PROBE_LIBRARIES_FIRST = """
import json, time
t0 = time.perf_counter()
import mlflow, torch, pytorch_lightning, darts.models, skewfree.artifact, skewfree.forecaster
t1 = time.perf_counter()
model = mlflow.pyfunc.load_model({uri!r})
t2 = time.perf_counter()
print(json.dumps({{"libraries_import_s": t1 - t0, "load_and_check_libraries_imported_s": t2 - t1}}))
"""

PROBE_FLOOR = """
import json, time
t0 = time.perf_counter()
import mlflow
t1 = time.perf_counter()
mlflow.pyfunc.load_model({uri!r})
t2 = time.perf_counter()
print(json.dumps({{"import_mlflow_s": t1 - t0, "load_and_check_s": t2 - t1}}))
"""

# artifact → its config overrides; NLinear twice: forecasting with its NumPy kernel (its default, `runtime: numpy`) and
# with darts' own predict, to show what the kernel saves
MODELS = {"nlinear": ["model=nlinear"], "nlinear_darts_runtime": ["model=nlinear", "model.runtime=darts"], "xgboost": ["model=xgboost"],
          "tft": ["model=tft", "model.trainer.max_epochs=1", "model.trainer.max_samples_per_ts=200"]}


class Nothing(mlflow.pyfunc.PythonModel):
    "A pyfunc that holds nothing: loading it measures MLflow's own share of a cold start."
    def predict(self, context, model_input, params=None):
        return model_input


def probe(code: str, uri: str, store: str) -> dict:
    "One fresh Python process running `code` against `uri`: its JSON line."
    done = subprocess.run([sys.executable, "-c", code.format(uri=uri)], capture_output=True, text=True, check=True,
                          env=dict(os.environ, MLFLOW_TRACKING_URI=store))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    store = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = store
    from skewfree.config import compose_config
    from skewfree.train import train
    results = {}
    for name, overrides in MODELS.items():
        result = train(compose_config([*overrides, f"mlflow.registered_model=cold-{name.replace('_', '-')}"]))
        runs = [probe(PROBE, result.model_uri, store) | probe(PROBE_LIBRARIES_FIRST, result.model_uri, store) for _ in range(args.runs)]
        results[name] = {key: statistics.median(r[key] for r in runs) for key in runs[0]} | {"runs": args.runs, "overrides": overrides}
        print(name, results[name], flush=True)
    with mlflow.start_run(run_name="mlflow-floor"):
        mlflow.pyfunc.log_model(name="model", python_model=Nothing(), registered_model_name="cold-mlflow-floor")
    runs = [probe(PROBE_FLOOR, "models:/cold-mlflow-floor/1", store) for _ in range(args.runs)]
    results["mlflow_floor"] = {key: statistics.median(r[key] for r in runs) for key in runs[0]} | {"runs": args.runs}
    print("mlflow_floor", results["mlflow_floor"], flush=True)
    write("cold_start", f"python bench/cold_start.py --runs {args.runs}", results)


if __name__ == "__main__":
    main()
