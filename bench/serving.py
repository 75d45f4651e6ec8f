"""Serving throughput and latency: our FastAPI server, our Ray Serve app and `mlflow models serve`, on the
same artifact and machine, in one run; plus the in-process `predict` time as the floor.

    python bench/serving.py [--requests 300] [--concurrency 1,8,32] [--model nlinear]

All three servers answer the same `POST /invocations` body (the artifact's own input example: 2 series x
history rows, horizon = the model's longest). The load generator runs on the same 2 cores as the servers,
so absolute numbers are lower than on a dedicated client; the comparison is like for like.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _common import write  # noqa: E402

warnings.filterwarnings("ignore")
BIN = Path(sys.executable).parent


def start(cmd: list[str], url: str, env: dict, timeout: float = 300) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in ("/health", "/ping"):
            try:
                if httpx.get(url + path, timeout=2).status_code == 200: return proc
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{cmd[:3]} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try: proc.wait(timeout=60)
    except subprocess.TimeoutExpired: proc.kill()


async def load(url: str, body: str, requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    for _ in range(requests): queue.put_nowait(None)

    async def worker(client: httpx.AsyncClient):
        nonlocal errors
        while not queue.empty():
            queue.get_nowait()
            t = time.perf_counter()
            r = await client.post(url + "/invocations", content=body, headers={"Content-Type": "application/json"})
            latencies.append(time.perf_counter() - t)
            errors += r.status_code != 200
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:
        for _ in range(min(3, requests)):  # warm-up
            await client.post(url + "/invocations", content=body, headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": requests, "errors": errors, "throughput_rps": requests / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--model", default="nlinear")
    args = ap.parse_args()
    store = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = store
    import mlflow

    from skewfree.cli import request_body
    from skewfree.config import compose_config
    from skewfree.train import train
    result = train(compose_config([f"model={args.model}", "mlflow.registered_model=bench-serving"]))
    uri = "models:/bench-serving@champion"
    model = mlflow.pyfunc.load_model(uri)
    example, horizon = model.input_example, result.forecaster.max_horizon
    body = request_body(example, {"horizon": horizon})
    floor = []
    for _ in range(200):
        t = time.perf_counter(); model.predict(example, params={"horizon": horizon}); floor.append((time.perf_counter() - t) * 1000)
    results: dict = {"model": args.model, "request_rows": len(example), "horizon": horizon,
                     "in_process_predict": {"p50_ms": statistics.median(floor), "p95_ms": float(np.percentile(floor, 95))}}
    env = dict(os.environ, MLFLOW_TRACKING_URI=store, RAY_AUTH_MODE="disabled")
    servers = {
        "skewfree_fastapi": [str(BIN / "skewfree"), "serve", "--model-uri", uri, "--port", "{port}"],
        "skewfree_ray": [str(BIN / "skewfree"), "serve", "--backend", "ray", "--model-uri", uri, "--port", "{port}"],
        "mlflow_models_serve": [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", "{port}"],
    }
    from conftest import free_port
    for name, cmd in servers.items():
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start([c.format(port=port) for c in cmd], url, env)
        try:
            results[name] = {f"c{c}": asyncio.run(load(url, body, args.requests, int(c))) for c in args.concurrency.split(",")}
        finally:
            stop(proc)
        print(name, results[name], flush=True)
    ours, theirs = results["skewfree_fastapi"].get("c8"), results["mlflow_models_serve"].get("c8")
    if ours and theirs:
        results["targets"] = {"fastapi_vs_mlflow_throughput_c8": ours["throughput_rps"] / theirs["throughput_rps"],
                              "fastapi_vs_mlflow_p99_c8": ours["p99_ms"] / theirs["p99_ms"],
                              "http_overhead_p50_ms_c1": results["skewfree_fastapi"]["c1"]["p50_ms"] - results["in_process_predict"]["p50_ms"]}
    print(results.get("targets"))
    write("serving", f"python bench/serving.py --requests {args.requests} --concurrency {args.concurrency} --model {args.model}", results)


if __name__ == "__main__":
    main()
