"The artifact contract: hashes and golden replays checked at every load, batch predict, verify, promote, mlflow models serve."
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
from conftest import Server, free_port

from skewfree.artifact import ArtifactCheckError, _hashes
from skewfree.config import compose_config
from skewfree.data import load_ett
from skewfree.train import train

BIN = Path(sys.executable).parent


def cli(*args: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "skewfree"), *args], env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def local_copy(trained, tmp_path) -> Path:
    "A private copy of the champion's files, free to tamper with."
    target = tmp_path / "model"
    shutil.copytree(mlflow.artifacts.download_artifacts(trained.model_uri), target)
    return target


def part(model: Path, name: str) -> Path:
    return model / "artifacts" / "skewfree" / name


def test_one_number_changed_in_the_preprocessor_state_is_refused(local_copy):
    path = part(local_copy, "forecaster/preprocessor.json")
    state = json.loads(path.read_text())
    state["state"]["scale_"]["ETTh2"]["OT"][1] *= 1.0000001
    path.write_text(json.dumps(state, indent=1, sort_keys=True))
    with pytest.raises(ArtifactCheckError, match=r"'forecaster/preprocessor.json' failed its integrity check"):
        mlflow.pyfunc.load_model(str(local_copy))


@pytest.mark.parametrize("name", ["model.pt", "kernel.npz"])  # darts' files and the NumPy kernel that predicts
def test_a_truncated_model_file_is_refused(local_copy, name):
    path = part(local_copy, f"forecaster/model/{name}")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactCheckError, match=rf"'forecaster/model/{name}' failed its integrity check"):
        mlflow.pyfunc.load_model(str(local_copy))


def test_a_forecast_that_no_longer_matches_its_golden_example_is_refused_naming_example_and_column(local_copy):
    # the hashes are consistent (as after a library upgrade or a device change); only the replay can tell
    golden = part(local_copy, "golden/series-ETTh1.forecast.parquet")
    expected = pd.read_parquet(golden)
    expected.loc[3, "forecast"] += 1e-9
    expected.to_parquet(golden)
    manifest_path = part(local_copy, "manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["parts"] = _hashes(part(local_copy, ""))
    manifest_path.write_text(json.dumps(manifest))
    refusal = r"golden example 'series-ETTh1', column 'forecast': largest difference (9\.99\d*e-10|1\.0\d*e-09) exceeds the tolerance 0\.0"
    with pytest.raises(ArtifactCheckError, match=refusal):
        mlflow.pyfunc.load_model(str(local_copy))
    os.environ["SKEWFREE_GOLDEN_TOLERANCE"] = "1e-6"  # the CPU↔GPU switch: a stated tolerance instead of exactness
    try:
        assert mlflow.pyfunc.load_model(str(local_copy)).unwrap_python_model().golden_max_difference > 0
    finally:
        del os.environ["SKEWFREE_GOLDEN_TOLERANCE"]


def test_loads_in_an_environment_without_skewfree_installed(trained, store):
    # hide the installed package: the artifact must bring its own code (code_paths)
    script = f"""
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
try:
    import skewfree
    raise SystemExit("skewfree is still importable: the test cannot prove anything")
except ImportError:
    pass
import mlflow
model = mlflow.pyfunc.load_model({trained.model_uri!r})
import skewfree
print(skewfree.__file__)
print(len(model.predict(model.input_example, params={{"horizon": 3}})))
"""
    done = subprocess.run([sys.executable, "-c", script], env={"MLFLOW_TRACKING_URI": store, "PATH": ""}, cwd="/", capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    where, rows = done.stdout.strip().splitlines()[-2:]
    assert "/code/skewfree/" in where and rows == "6"


def test_an_nlinear_artifact_hydrates_and_forecasts_without_torch(trained, store):
    "NLinear's checked NumPy kernel predicts: a fresh process loads, replays the golden examples and forecasts without torch."
    script = f"""
import sys
import mlflow
model = mlflow.pyfunc.load_model({trained.model_uri!r})
rows = len(model.predict(model.input_example, params={{"horizon": 3}}))
heavy = sorted(m for m in ("torch", "pytorch_lightning", "lightning_fabric", "torchmetrics") if m in sys.modules)
print(rows, model.unwrap_python_model().forecaster.runtime, heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "6 numpy []"


def test_signature_and_input_example(trained):
    model = mlflow.pyfunc.load_model(trained.model_uri)
    assert model.metadata.get_params_schema().to_dict()[0]["name"] == "horizon"
    inputs = model.metadata.get_input_schema().input_names()
    assert inputs == trained.forecaster.preprocessor.columns == ["series_id", "date", "OT"]  # a univariate model asks for nothing it does not read
    example = model.input_example
    assert len(example) == 2 * trained.forecaster.history_length  # a real raw window per series


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_predict_cli_matches_the_pyfunc_path(trained, store, tmp_path, suffix):
    history = load_ett(max_rows=900).groupby("series_id").tail(trained.forecaster.history_length)
    source, target = tmp_path / f"history{suffix}", tmp_path / f"forecast{suffix}"
    history.to_csv(source, index=False) if suffix == ".csv" else history.to_parquet(source)
    done = cli("predict", "--model-uri", trained.model_uri, "--input", str(source), "--horizon", "5", "--output", str(target), store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    got = pd.read_csv(target, parse_dates=["date"]) if suffix == ".csv" else pd.read_parquet(target)
    expected = mlflow.pyfunc.load_model(trained.model_uri).predict(history, params={"horizon": 5})
    assert (got.forecast.to_numpy() == expected.forecast.to_numpy()).all()


def test_batch_predict_cli_bad_input_is_a_clear_message(trained, store, tmp_path):
    source = tmp_path / "history.csv"
    load_ett(max_rows=900).groupby("series_id").tail(5).to_csv(source, index=False)
    done = cli("predict", "--model-uri", trained.model_uri, "--input", str(source), "--horizon", "5", "--output", str(tmp_path / "f.csv"), store=store)
    assert done.returncode == 2
    assert "needs at least" in done.stderr and "Traceback" not in done.stderr


def test_verify_passes_against_our_server_and_fails_against_a_different_model(trained, server, store, tmp_path):
    ok = cli("verify", "--model-uri", trained.model_uri, "--url", server.url, store=store)
    assert ok.returncode == 0, ok.stdout + ok.stderr[-2000:]
    assert "largest difference" in ok.stdout and ": 0.0" in ok.stdout
    data = tmp_path / "raw.parquet"
    load_ett(max_rows=950).to_parquet(data)
    assert cli("verify", "--model-uri", trained.model_uri, "--url", server.url, "--data", str(data), store=store).returncode == 0
    other = train(compose_config(["profile=smoke", "seed=7", "mlflow.registered_model=other-seed"]))
    srv = Server(other.model_uri, store)
    try:
        differs = cli("verify", "--model-uri", trained.model_uri, "--url", srv.url, store=store)
    finally:
        srv.stop()
    assert differs.returncode == 1, differs.stdout + differs.stderr[-2000:]


def test_mlflow_models_serve_answers_with_the_same_numbers(trained, server, store):
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=store)
    proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/skewfree-ett@champion", "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200: break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve did not start in 180 s")
        champion = "models:/skewfree-ett@champion"
        theirs = cli("verify", "--model-uri", champion, "--url", f"http://127.0.0.1:{port}", store=store)
        ours = cli("verify", "--model-uri", champion, "--url", server.url, store=store)
        assert theirs.returncode == 0 and ours.returncode == 0, theirs.stdout + theirs.stderr[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_promote_cli_says_why(trained, store):
    done = cli("promote", "--name", "skewfree-ett", store=store)
    assert done.returncode == 0
    assert any(word in done.stdout for word in ("already champion", "kept champion", "promoted"))
