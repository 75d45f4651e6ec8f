"""Against a real `mlflow server` (#28), as a team runs it: train → register → serve → verify over HTTP; a server that
dies in the middle of a training run fails the run loudly, leaves no model version behind, and a rerun succeeds."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest
from conftest import ROOT, Server, free_port

BIN = Path(sys.executable).parent
# a client that gives up in seconds, not minutes (MLflow retries 7 times with growing waits by default)
IMPATIENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
TRAIN = ("import logging, sys; logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format='%(message)s');"
         "logging.getLogger('skewfree').setLevel(logging.INFO);"
         "from skewfree.config import compose_config; from skewfree.train import train;"
         "r = train(compose_config(sys.argv[1:])); print('MODEL_URI=' + r.model_uri, flush=True)")


class TrackingServer:
    "`mlflow server` on a loopback port: a sqlite backend, artifacts served through the server (`--serve-artifacts`)."
    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / f"server-{self.port}.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--serve-artifacts",
                                      "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
                                      "--workers", "1"], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder,
                                     # MLflow 3's GenAI job runner is three more processes importing mlflow, on 2 cores; nothing here uses it
                                     env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (folder / f"server-{self.port}.log").read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200: return
            except httpx.HTTPError:
                time.sleep(0.5)
        self.kill()
        pytest.fail("mlflow server did not start in 180 s")

    def kill(self):
        "Gone at once, workers and all, as a crashed or rebooted server is."
        try: os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        self.proc.wait(timeout=60)
        self.log.close()


def train_process(url: str, *overrides: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, MLFLOW_TRACKING_URI=url, **IMPATIENT)
    return subprocess.Popen([sys.executable, "-c", TRAIN, *overrides], cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115


def test_train_register_serve_and_verify_against_a_tracking_server(tmp_path):
    tracking = TrackingServer(tmp_path)
    try:
        done = train_process(tracking.url, "model=nlinear_ls", "profile=smoke", log=tmp_path / "train.log")
        assert done.wait(timeout=600) == 0, (tmp_path / "train.log").read_text()[-3000:]
        assert "MODEL_URI=models:/skewfree-ett-smoke/1" in (tmp_path / "train.log").read_text()
        # the artifacts went through the server, not to a local folder of the client's
        assert any((tmp_path / "artifacts").rglob("MLmodel"))
        server = Server("models:/skewfree-ett-smoke@champion", tracking.url, "--workers", "1")
        try:
            verify = subprocess.run([str(BIN / "skewfree"), "verify", "--model-uri", "models:/skewfree-ett-smoke@champion", "--url", server.url],
                                    env=dict(os.environ, MLFLOW_TRACKING_URI=tracking.url), capture_output=True, text=True, timeout=300, check=False)
            assert verify.returncode == 0, verify.stdout + verify.stderr[-3000:]
        finally:
            server.stop()
    finally:
        tracking.kill()


@pytest.mark.slow
def test_a_server_lost_mid_training_fails_the_run_registers_nothing_and_a_rerun_succeeds(tmp_path):
    tracking = TrackingServer(tmp_path)
    long_fit = ("profile=smoke", "trainer.torch.max_epochs=200", "trainer.torch.patience=200")  # long enough to be caught in the middle
    log = tmp_path / "lost.log"
    run = train_process(tracking.url, *long_fit, log=log)
    try:
        deadline = time.monotonic() + 300
        while "epoch 2/200" not in log.read_text():  # training has begun: the run exists on the server
            assert run.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "training did not reach its second epoch in 300 s"
            time.sleep(0.2)
        tracking.kill()
        assert run.wait(timeout=600) != 0  # loudly: the process fails, it does not hang or claim success
        said = log.read_text()
        assert "MODEL_URI=" not in said and f"127.0.0.1:{tracking.port}" in said, said[-3000:]
    finally:
        if run.poll() is None: run.kill()
    back = TrackingServer(tmp_path, tracking.port)  # the same store, after a restart
    try:
        client = mlflow.MlflowClient(tracking_uri=back.url)
        assert client.search_model_versions("name='skewfree-ett-smoke'") == []  # nothing half-registered
        lost = client.search_runs([client.get_experiment_by_name("skewfree-ett-smoke").experiment_id])
        assert len(lost) == 1 and lost[0].info.status != "FINISHED"
        rerun = train_process(back.url, "profile=smoke", log=tmp_path / "rerun.log")
        assert rerun.wait(timeout=600) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
        version = client.get_model_version("skewfree-ett-smoke", "1")
        assert version.tags["ranked_by"] == "test_mse_std" and "scored_on" in version.tags
        assert client.get_model_version_by_alias("skewfree-ett-smoke", "champion").version == "1"
    finally:
        back.kill()


def test_a_tracking_server_that_is_not_there_is_named_at_once(tmp_path):
    # MLflow's own retries took 8 min 19 s to say so (measured on `skewfree predict`); without IMPATIENT, the probe answers first
    nowhere, env = f"http://127.0.0.1:{free_port()}", {k: v for k, v in os.environ.items() if k not in IMPATIENT}
    says = f"MLFLOW_TRACKING_URI: cannot reach the tracking server at {nowhere}"
    predict = subprocess.run([str(BIN / "skewfree"), "predict", "--input", str(tmp_path / "h.csv"), "--horizon", "3", "--output", str(tmp_path / "f.csv")],
                             env=dict(env, MLFLOW_TRACKING_URI=nowhere), capture_output=True, text=True, timeout=120, check=False)
    assert predict.returncode == 2 and says in predict.stderr.strip().splitlines()[-1], predict.stderr[-2000:]
    training = subprocess.run([sys.executable, "-c", TRAIN, "profile=smoke"], cwd=ROOT, env=dict(env, MLFLOW_TRACKING_URI=nowhere),
                              capture_output=True, text=True, timeout=120, check=False)
    assert training.returncode != 0 and says in training.stdout + training.stderr, training.stderr[-2000:]
