"Shared fixtures: one smoke model trained into a throw-away MLflow store, and a real server on a loopback port."
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run the tests marked slow (each a minute or more of its own processes)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a minute or more of its own processes; skipped unless --run-slow")
    config.addinivalue_line("markers", "ray: starts a Ray of its own (else set at collection: the session's cluster, a Ray case, a shared fixture)")


def _uses_ray(item) -> bool:
    "Whether the test runs Ray: the session's cluster, the Ray Serve app, a Ray case of a parametrised test, or one of its own (marked)."
    callspec = getattr(item, "callspec", None)
    return ("ray_cluster" in getattr(item, "fixturenames", ()) or item.get_closest_marker("ray") is not None
            or (callspec is not None and any(isinstance(value, str) and value == "ray" for value in callspec.params.values())))


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the marks set here, and before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    "Ray's tests marked `ray` and last; under pytest-xdist each group on one worker; slow ones skipped unless --run-slow."
    # an idle Ray cluster with its Serve app took about a third of a core; a test that shares a module-scoped fixture with a
    # Ray one moves with it, so that the fixture is built once
    shared = {(item.module.__name__, name) for item in items if _uses_ray(item)
              for name, defs in item._fixtureinfo.name2fixturedefs.items() if defs[-1].scope == "module"}
    def last(item) -> bool:
        return _uses_ray(item) or any((item.module.__name__, name) in shared for name in item.fixturenames)
    items[:] = [item for item in items if not last(item)] + [item for item in items if last(item)]
    # `--dist loadgroup` keeps a group on one worker: a module's fixtures are built once, and there is one Ray cluster
    for item in items:
        if last(item): item.add_marker(pytest.mark.ray)
        item.add_marker(pytest.mark.xdist_group("ray" if last(item) else item.module.__name__))
    if config.getoption("--run-slow"): return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords: item.add_marker(skip)


def free_port() -> int:
    "A free TCP port on 127.0.0.1."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exact_json_body(frame, horizon) -> str:
    "MLflow `dataframe_split` body with every float at full precision (json uses repr, which round-trips)."
    rows = frame.astype({"date": str}).to_dict(orient="split", index=False)
    return json.dumps({"dataframe_split": {"columns": rows["columns"], "data": rows["data"]}, "params": {"horizon": horizon}})


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> str:
    "A sqlite MLflow store for this test session, exported to subprocesses through the environment."
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return uri


@pytest.fixture(scope="session")
def trained(store):
    "A smoke NLinear trained, logged and registered through `skewfree.train`."
    from skewfree.config import compose_config
    from skewfree.train import train
    return train(compose_config(["profile=smoke"]))


class Server:
    "A `skewfree serve` process on a loopback port."
    def __init__(self, model_uri: str, store: str, *extra: str, backend: str = "fastapi", timeout: float = 120):
        self.port, self.backend = free_port(), backend
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(ROOT / "tests" / f".server-{self.port}.log", "w+")  # noqa: SIM115
        env = dict(os.environ, MLFLOW_TRACKING_URI=store, RAY_AUTH_MODE="disabled")
        if backend == "fastapi" and "--workers" not in extra: extra = ("--workers", "2", *extra)  # bounded whatever the CI machine's CPU count
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "skewfree"), "serve", "--backend", backend, "--model-uri", model_uri,
                                      "--port", str(self.port), *extra], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200: return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout} s")

    def stop(self):
        self.proc.terminate()
        try: self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired: self.proc.kill()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


MONITOR = ("serve.monitor.window_requests=5", "serve.monitor.min_requests=3")  # a window a test can fill, with a verdict from three requests


@pytest.fixture(scope="session")
def server(trained, store):
    "The registered champion served by `skewfree serve` in its own process."
    srv = Server("models:/skewfree-ett-smoke@champion", store, *MONITOR)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def ray_cluster():
    "One local Ray cluster for the whole test session (`ray start --head`): the Ray Serve app and the Ray Data executor join it."
    port, ray = free_port(), str(Path(sys.executable).parent / "ray")
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    # logical CPUs beyond the two cores, so the Serve replicas and a batch job's actors can be scheduled side by side
    subprocess.run([ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=4", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True, env=env, timeout=240)
    yield f"127.0.0.1:{port}"
    subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120, check=False)


@pytest.fixture(scope="session")
def ray_server(trained, store, ray_cluster):
    "The same champion served by the Ray Serve app, on the session's Ray cluster."
    srv = Server("models:/skewfree-ett-smoke@champion", store, "--ray-address", ray_cluster, *MONITOR, backend="ray", timeout=240)
    yield srv
    srv.stop()


@pytest.fixture(params=["fastapi", "ray"])
def srv(request):
    "Each server in turn: the FastAPI one, then the Ray Serve one."
    return request.getfixturevalue("server" if request.param == "fastapi" else "ray_server")


@pytest.fixture(scope="session")
def history(trained):
    "The look-back window of each series, from the rows the smoke model was trained on: a ready request."
    from skewfree.data import load_ett
    return load_ett(max_rows=930).groupby("series_id").tail(trained.forecaster.history_length).reset_index(drop=True)
