"Nested CV end to end: papermill entry point, MLflow runs, executors that agree, a real Ray cluster, interrupted runs."
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from skewfree.config import compose_config
from skewfree.data import load_ett
from skewfree.nested_cv import nested_cv

from conftest import ROOT, free_port

SMOKE = ["cv=nested", "profile=smoke", "cv.progress=false"]


def papermill(out: Path, *args: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "nbs" / "train.ipynb"), str(out), *args],
                          cwd=ROOT, env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True, timeout=600, check=False)


def test_training_notebook_runs_nested_cv_and_logs_parent_children_trials_and_pictures(store, tmp_path):
    done = papermill(tmp_path / "nested.ipynb", "-p", "model", "xgboost", "-p", "overrides", '["cv=nested", "profile=smoke"]', store=store)
    assert done.returncode == 0, done.stderr[-3000:]
    uri = re.findall(r"MODEL_URI=(models:/[^\"\\\s]+)", (tmp_path / "nested.ipynb").read_text())[0]
    client = mlflow.MlflowClient()
    version = client.get_model_version("skewfree-ett-smoke", uri.rsplit("/", 1)[1])
    parent = mlflow.get_run(version.run_id)
    assert parent.data.tags["skewfree.cv"] == "nested" and parent.data.tags["git.commit"] and parent.data.tags["version.optuna"]
    assert parent.inputs.dataset_inputs and parent.inputs.dataset_inputs[0].dataset.digest
    summary = {k: v for k, v in parent.data.metrics.items() if k.startswith("cv_")}
    assert {"cv_mse_std", "cv_mse_std_sd", "cv_mae", "cv_rmse", "cv_mase", "cv_smape", "cv_quantile_loss_std"} <= set(summary)
    assert float(version.tags["score.cv_mse_std"]) == pytest.approx(summary["cv_mse_std"])
    parent_files = {f.path for folder in ("folds", "final_study") for f in client.list_artifacts(parent.info.run_id, folder)}
    assert {"folds/mse_std_per_fold.png", "folds/scores.csv", "final_study/trials.csv", "final_study/optimisation_history.png"} <= parent_files
    children = mlflow.search_runs(experiment_ids=[parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  output_format="list")
    assert sorted(c.info.run_name for c in children) == ["fold-0", "fold-1"]
    for child in children:
        files = {f.path for f in client.list_artifacts(child.info.run_id)} | {f.path for f in client.list_artifacts(child.info.run_id, "study")}
        assert {"forecast_vs_actual.png", "study/trials.csv", "study/optimisation_history.png", "study/param_importances.png"} <= files
        assert child.info.status == "FINISHED" and "test_mse_std" in child.data.metrics
    # the studies persisted in the default storage beside the MLflow store
    storage = f"sqlite:///{Path(store.removeprefix('sqlite:///')).parent / 'optuna.db'}"
    names = optuna.get_all_study_names(storage)
    assert {f"skewfree-ett-smoke-{parent.info.run_id}-fold0", f"skewfree-ett-smoke-{parent.info.run_id}-final"} <= set(names)
    served = mlflow.pyfunc.load_model(uri)
    assert len(served.predict(served.input_example, params={"horizon": 6})) == 12


@pytest.mark.slow
@pytest.mark.ray  # a local Ray instance of its own
def test_ray_executor_gives_the_same_outer_scores_as_local(tmp_path):
    import ray
    raw = load_ett(max_rows=1000)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    local = nested_cv(compose_config([*SMOKE, "executor=local"]), raw, storage=storage, study_prefix="local")
    on_ray = nested_cv(compose_config([*SMOKE, "executor=ray", "executor.workers=2"]), raw, storage=storage, study_prefix="ray")
    assert not ray.is_initialized()  # the local instance it started is gone
    assert [f.scores for f in on_ray.folds] == [f.scores for f in local.folds]
    assert [f.best_params for f in on_ray.folds] == [f.best_params for f in local.folds]
    assert on_ray.final.best_params == local.final.best_params
    # the workers' trials landed in the shared storage
    assert len(optuna.load_study(study_name="ray-fold1", storage=storage).trials) == 3


def test_ray_executor_joins_an_existing_cluster(ray_cluster):
    # the session's `ray start --head` cluster (conftest), which the Ray Serve tests also use
    import ray
    cfg = compose_config([*SMOKE, "model=seasonal_naive", "executor=ray", f"executor.address={ray_cluster}", "executor.connect_timeout=60"])
    deadline = time.monotonic() + 90
    while True:  # `ray start` returns before the head accepts drivers
        try:
            result = nested_cv(cfg, load_ett(max_rows=1000))
            break
        except Exception:
            if time.monotonic() > deadline: raise
            time.sleep(2)
    assert len(result.folds) == 2 and not ray.is_initialized()
    local = nested_cv(compose_config([*SMOKE, "model=seasonal_naive"]), load_ett(max_rows=1000))
    assert [f.scores for f in result.folds] == [f.scores for f in local.folds]


@pytest.mark.ray  # a Ray client of its own
def test_an_unreachable_ray_address_fails_fast_naming_it():
    from skewfree.core import InputError
    port = free_port()
    started = time.monotonic()
    with pytest.raises(InputError, match=f"127.0.0.1:{port}"):
        nested_cv(compose_config([*SMOKE, "model=seasonal_naive", "executor=ray", f"executor.address=127.0.0.1:{port}"]), load_ett(max_rows=1000))
    assert time.monotonic() - started < 30


def test_a_cv_that_does_not_fit_the_data_fails_before_training_saying_rows_needed_and_had(store):
    from skewfree.core import InputError
    from skewfree.train import train
    runs = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(InputError, match=r"needs \d+ rows per series .* has 1000"):
        train(compose_config([*SMOKE, "cv.n_folds=40"]))
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs


def test_nested_runs_whose_folds_learnt_their_scales_from_other_rows_are_refused_not_ranked(store):
    "With and without a refit, each fold's scaler learns from other rows: `cv_mse_std` is on other scales and refused; `cv_mae` compares."
    from skewfree.core import InputError
    from skewfree.registry import promote
    from skewfree.train import train
    data = load_ett(max_rows=400)
    for refit in ("false", "true"):
        train(compose_config([*SMOKE, "model=nlinear_ls", f"cv.refit={refit}", "mlflow.registered_model=nested-scales"]), data=data)
    with pytest.raises(InputError, match="learnt their series' scales from different rows"):
        promote("nested-scales", "cv_mse_std", 0.01)
    promoted, why = promote("nested-scales", "cv_mae", 0.01)  # in the data's own units: two ways of training, compared as such
    assert "cv_mae" in why, why


def running_runs(db: Path) -> int:
    "Runs marked RUNNING in a sqlite MLflow store that another process is writing; 0 until its tables exist."
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con: return con.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0]
    except sqlite3.Error: return 0


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_an_interrupted_run_leaves_no_running_run_and_registers_nothing(tmp_path, executor):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = ("from skewfree.config import compose_config\nfrom skewfree.train import train\n"
              f"train(compose_config({[*SMOKE, 'cv.inner.n_trials=50', f'executor={executor}']!r}))\n")
    env = dict(os.environ, MLFLOW_TRACKING_URI=store, RAY_AUTH_MODE="disabled")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and running_runs(tmp_path / "mlflow.db") == 0:
            time.sleep(1)  # wait until the parent run exists (read-only: the job owns the store's schema), then kill the job
        time.sleep(5)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0, output[-2000:]
        client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)  # no global state: later tests use the session store
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert runs and all(r.info.status in ("FAILED", "KILLED") for r in runs), [(r.info.run_name, r.info.status) for r in runs]
        assert client.search_model_versions() == []
    finally:
        if proc.poll() is None: proc.kill()
