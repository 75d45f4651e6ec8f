"""Serving throughput and latency: our FastAPI server, our Ray Serve app and `mlflow models serve`, on the
same artifact and machine, in one run; plus the in-process `predict` time as the floor.

    python bench/serving.py [--requests 200] [--trials 3] [--concurrency 1,8,32] [--model nlinear]

All three servers answer the same `POST /invocations` body (the artifact's own input example: 2 series x
history rows, horizon = the model's longest). Load: `concurrency` client threads, each with one keep-alive
HTTP/1.1 connection (the standard library's `http.client`, with Nagle's algorithm off as `requests` has it),
sending `requests` requests back to back. The client runs on the same 2 cores as the servers, so absolute
numbers are lower than on a dedicated client; the comparison is like for like. This shared VM's speed drifts
by tens of percent within minutes, so the servers compared are up together and loaded in turns: `trials`
rounds, each server and concurrency once per round, each round in another order; every figure is the median
over trials (each trial's throughput and p99 are kept beside it). `mlflow models serve` runs with its defaults
(1 worker) and, for reference, with `--workers 2` (one per core, as ours). Ours runs as `skewfree serve` does by
default (one model worker process per core) and, as `skewfree_fastapi_threads`, with `--workers 0` (predict in threads
of the server process: no pipe to a worker, one GIL for all); both are also timed by `paired_c1`.

Two floors, measured in this process on the same loaded artifact: `in_process_predict` = `PyFuncModel.predict` on
the artifact's input example (the request's rows as a DataFrame, the same object every call), and
`in_process_answer` = `skewfree.serving.pipeline.answer_invocation` on the very request bytes (parse + predict + JSON:
everything the server computes for the request). They are measured before the servers start, so the c1 load's p50
minus them would carry any change in the machine's speed between the two phases (this shared 2-core VM drifts by tens
of percent): HTTP overhead is measured by `paired_c1` instead, which times, in turn and round after round, one c1
request to our FastAPI server, `PyFuncModel.predict` and `answer_invocation`, and reports the differences of p50s
measured side by side (the targets' `paired_` figures), with the median of the per-round differences as a second
estimate.
Where the HTTP time beyond `in_process_answer` goes, in the same rounds: `http_raw_client` is the same request sent by a
minimal client (prebuilt request bytes on a socket, the answer read by its Content-Length), so `http` minus it is
what the choice of client costs; `transport_floor` is the same request and answer bytes through a bare ASGI app under
uvicorn (`bench/_transport_floor.py`: no framework, no model), what any Python server on this machine pays;
`transport_floor_with_work` is that app spinning the CPU in a thread, off its event loop, for as long as
`in_process_predict` takes (`floor_work_ms`) before it answers, so its time minus that work is the HTTP floor of a
server that never blocks its loop, here (both also sent by the minimal client: `_raw_client`).
Our server says in each answer's `Server-Timing` header how long its backend took (`backend`: hand-off to a
worker, parse, predict, JSON) and how long the work took in the worker itself (`work`: parse, predict, JSON):
`http_layer` is the raw-client request minus `backend`, request by request (what HTTP itself cost: transport,
uvicorn, FastAPI, the client); `handoff` is `backend` minus `work`, request by request (the pipe to the worker
process and back, and waking it); `work_minus_in_process_answer` is the worker's time beyond the same computation
in this process, in a tight loop (what running it in a process woken for each request costs).
Where the difference between the two floors goes: `parse_mlflow` (MLflow's parser, row by row), `parse_by_columns` (`split_by_columns`, what the
servers use when the artifact's check passed), `write_json` (`predictions_json` of the forecast), `screen_duplicate_keys` (the count of the body's keys that
decides whether it is read a second time to find a key named twice); `refuse_loose_rows` is what a request
that leaves the column-wise path pays before MLflow's parser (its check for ragged rows, missing cells and numbers written as text).
What waking a process costs on this machine, which every hand-off and every HTTP exchange pays: `pipe_round_trip` sends a
message of the request's size to another process that sends it straight back, back to back (`hot`) and after 2 ms idle
(`after_idle`, as between c1 requests: both processes asleep when it comes).
"""
from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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


def _answers_health(url: str) -> bool:
    return any(httpx.get(url + path, timeout=2).status_code == 200 for path in ("/health", "/ping"))


def start(cmd: list[str], url: str, env: dict, timeout: float = 300, probe=None) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (probe or (lambda: _answers_health(url)))(): return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{cmd[:3]} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try: proc.wait(timeout=60)
    except subprocess.TimeoutExpired: proc.kill()


def connect(host: str, port: int) -> http.client.HTTPConnection:
    "A keep-alive connection with Nagle's algorithm off, as `requests` (urllib3) opens its own."
    # http.client writes a request's headers and its body apart; off or on, Nagle made no difference measurable here
    conn = http.client.HTTPConnection(host, port, timeout=300)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def load(url: str, body: str, requests: int, concurrency: int) -> dict:
    "`requests` POSTs of `body` from `concurrency` threads, each on its own keep-alive connection."
    host, port = url.removeprefix("http://").split(":")
    payload, headers = body.encode(), {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    left = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        nonlocal errors
        conn = connect(host, int(port))
        conn.request("POST", "/invocations", payload, headers); conn.getresponse().read()  # warm the connection
        started.wait()
        while True:
            with lock:
                if next(left, None) is None: break
            t = time.perf_counter()
            conn.request("POST", "/invocations", payload, headers)
            response = conn.getresponse(); response.read()
            elapsed = time.perf_counter() - t
            with lock:
                latencies.append(elapsed); errors += response.status != 200
        conn.close()

    started = threading.Event()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads: t.start()
    time.sleep(0.5)
    begin = time.perf_counter(); started.set()
    for t in threads: t.join()
    wall = time.perf_counter() - begin
    ms = np.array(latencies) * 1000
    return {"requests": requests, "errors": errors, "throughput_rps": requests / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99))}


class RawClient:
    "A minimal HTTP/1.1 client on one keep-alive socket: the request's bytes built once, the answer read by its Content-Length."
    def __init__(self, url: str, body: bytes, path: str = "/invocations"):
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        self.backend_ms: list[float] = []  # each answer's `Server-Timing: backend;dur=`, where the server sends one
        self.work_ms: list[float] = []  # and its `work;dur=`: the same answer's time in the worker
        self.request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def post(self) -> bytes:
        self.sock.sendall(self.request)
        status, length = self.reader.readline(), 0
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"): length = int(line.split(b":", 1)[1])
            if line.lower().startswith(b"server-timing:"):
                timing = {name.strip(): float(ms) for name, ms in (part.split(b";dur=") for part in line.split(b":", 1)[1].split(b","))}
                self.backend_ms.append(timing[b"backend"])
                if b"work" in timing: self.work_ms.append(timing[b"work"])
        answer = self.reader.read(length)
        assert b" 200 " in status and answer.startswith(b'{"predictions"'), (status, answer[:200])
        return answer

    def close(self) -> None:
        self.reader.close(); self.sock.close()


def summary(trials: list[dict]) -> dict:
    "Trials of one server at one concurrency: each figure the median over trials, with every trial's throughput and p99 kept."
    return {"trials": len(trials), "requests": sum(t["requests"] for t in trials), "errors": sum(t["errors"] for t in trials),
            **{k: float(np.median([t[k] for t in trials])) for k in ("throughput_rps", "p50_ms", "p95_ms", "p99_ms")},
            "trials_throughput_rps": [t["throughput_rps"] for t in trials], "trials_p99_ms": [t["p99_ms"] for t in trials]}


def paired(url: str, body: str, floors: tuple, *, rounds: int, env: dict) -> dict:
    "The c1 request and the in-process floors timed in turn, round after round, so a drift of the machine's speed moves all alike."
    model, horizon, loaded, whole_rows = floors  # the loaded artifact, its horizon, and the same rows with every raw column
    from conftest import free_port

    from skewfree.serving.pipeline import answer_invocation
    host, port = url.removeprefix("http://").split(":")
    payload, headers, raw, example = body.encode(), {"Content-Type": "application/json"}, body.encode(), model.input_example
    conn = connect(host, int(port))

    def post(connection: http.client.HTTPConnection, content: bytes, path: str = "/invocations") -> bytes:
        connection.request("POST", path, content, headers)
        answer = connection.getresponse().read()
        assert answer.startswith(b'{"predictions"'), answer[:200]
        return answer
    answer_file = Path(tempfile.mkdtemp()) / "answer.json"
    answer_file.write_bytes(post(conn, payload))
    floor_url = f"http://127.0.0.1:{free_port()}"
    predict_ms = p50_p95(lambda: model.predict(example, params={"horizon": horizon}))["p50_ms"]  # the floor's work takes as long
    floor = start([sys.executable, str(Path(__file__).resolve().parent / "_transport_floor.py"), floor_url.rsplit(":", 1)[1], str(answer_file),
                   str(predict_ms)],
                  floor_url, env, probe=lambda: httpx.post(floor_url + "/invocations", content=payload, timeout=2).status_code == 200)
    floor_conn, raw_client = connect("127.0.0.1", int(floor_url.rsplit(":", 1)[1])), RawClient(url, payload)
    raw_floor, raw_floor_with_work = RawClient(floor_url, payload), RawClient(floor_url, payload, "/with_work")
    steps = {"http": lambda: post(conn, payload),
             "in_process_predict": lambda: model.predict(example, params={"horizon": horizon}),
             "in_process_answer": lambda: answer_invocation(loaded, raw),
             # the same rows with every raw column, as clients built before the signature named only what the model reads
             "http_whole_rows": lambda: post(conn, whole_rows.encode()),
             "http_raw_client": raw_client.post,
             "transport_floor": lambda: post(floor_conn, payload),
             "transport_floor_with_work": lambda: post(floor_conn, payload, "/with_work"),
             "transport_floor_raw_client": raw_floor.post,
             "transport_floor_with_work_raw_client": raw_floor_with_work.post}
    try:
        for _ in range(20):
            for step in steps.values(): step()  # warm: connection, worker, caches
        raw_client.backend_ms.clear(); raw_client.work_ms.clear()
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(rounds):
            for name, step in steps.items():
                t = time.perf_counter(); step(); times[name].append((time.perf_counter() - t) * 1000)
    finally:
        conn.close(); floor_conn.close(); raw_client.close(); raw_floor.close(); raw_floor_with_work.close(); stop(floor)
    ms = {name: np.array(v) for name, v in times.items()}
    backend, work = np.array(raw_client.backend_ms), np.array(raw_client.work_ms)
    assert len(backend) == len(work) == rounds, f"{len(backend)} Server-Timing headers ({len(work)} with work) for {rounds} requests"
    return {"rounds": rounds, **{f"{name}_p50_ms": float(np.median(v)) for name, v in ms.items()},
            "floor_work_ms": predict_ms,
            # what a bare server that hands work as long as a predict to a thread pays beyond the work: HTTP's floor here
            "transport_floor_with_work_overhead_p50_ms": float(np.median(ms["transport_floor_with_work"])) - predict_ms,
            "transport_floor_with_work_raw_client_overhead_p50_ms": float(np.median(ms["transport_floor_with_work_raw_client"])) - predict_ms,
            # the raw-client request split by its own Server-Timing header: what HTTP itself cost (transport, uvicorn, FastAPI,
            # the client) and what the backend took (hand-off to a worker, parse, predict, JSON) beside the same work in this process
            "backend_p50_ms": float(np.median(backend)),
            "http_layer_p50_ms": float(np.median(ms["http_raw_client"] - backend)),
            "backend_minus_in_process_answer_p50_ms": float(np.median(backend) - np.median(ms["in_process_answer"])),
            # the backend's time split by the worker's own clock: the hand-off there and back, and the work itself
            "work_p50_ms": float(np.median(work)), "handoff_p50_ms": float(np.median(backend - work)),
            "work_minus_in_process_answer_p50_ms": float(np.median(work) - np.median(ms["in_process_answer"])),
            "http_client_share_p50_ms": float(np.median(ms["http"]) - np.median(ms["http_raw_client"])),
            "raw_client_http_overhead_p50_ms_vs_predict": float(np.median(ms["http_raw_client"]) - np.median(ms["in_process_predict"])),
            "http_overhead_p50_ms_vs_predict": float(np.median(ms["http"]) - np.median(ms["in_process_predict"])),
            "http_overhead_p50_ms_vs_answer": float(np.median(ms["http"]) - np.median(ms["in_process_answer"])),
            "whole_rows_http_overhead_p50_ms_vs_predict": float(np.median(ms["http_whole_rows"]) - np.median(ms["in_process_predict"])),
            "whole_rows_request_bytes": len(whole_rows.encode()),
            # the same difference, round by round: a second estimate, robust to a slow stretch that hits one side only
            "median_round_difference_ms_vs_predict": float(np.median(ms["http"] - ms["in_process_predict"]))}


def whole_rows_body(example, horizon: int) -> str:
    "The request's rows with every raw column of the embedded data (the extra ones are left out by MLflow's schema)."
    from skewfree.data import load_ett
    from skewfree.serving.codec import request_body
    raw = load_ett()
    return request_body(example[["series_id", "date"]].merge(raw, on=["series_id", "date"], how="left")[list(raw.columns)], {"horizon": horizon})


def p50_p95(fn) -> dict:
    "p50 and p95 of 200 calls of `fn`, in ms."
    times = []
    for _ in range(200):
        t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95))}


def _echo(conn) -> None:
    "The far end of `pipe_round_trip`: every message straight back, until the pipe closes."
    while True:
        try: conn.send_bytes(conn.recv_bytes())
        except EOFError: return


def pipe_round_trip(size: int, rounds: int = 300) -> dict:
    "p50 ms of a `size`-byte message to another process and back: back to back, and after 2 ms idle."
    import multiprocessing
    ours, theirs = multiprocessing.Pipe()
    echo = multiprocessing.get_context("spawn").Process(target=_echo, args=(theirs,), daemon=True)
    echo.start(); theirs.close()
    message, out = b"x" * size, {}
    try:
        for name, idle in (("hot", 0.0), ("after_idle", 0.002)):
            times = []
            for i in range(rounds + 30):
                if idle: time.sleep(idle)
                t = time.perf_counter(); ours.send_bytes(message); ours.recv_bytes()
                if i >= 30: times.append((time.perf_counter() - t) * 1000)
            out[f"{name}_p50_ms"] = statistics.median(times)
    finally:
        ours.close(); echo.join(timeout=10)
    return {"bytes": size, **out}


def floors(uri: str, model, body: str, horizon: int) -> dict:
    "The in-process floors and where the time between them goes, measured in this process on the served artifact."
    import orjson
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    from skewfree.serving.codec import may_repeat_a_key, predictions_json, refuse_loose_rows, split_by_columns
    from skewfree.serving.pipeline import Loaded, answer_invocation, registry_version
    loaded, example = Loaded(uri, model, registry_version(uri), model.metadata.run_id), model.input_example  # the model loaded once
    request, forecast = {"dataframe_split": orjson.loads(body)["dataframe_split"]}, model.predict(example, params={"horizon": horizon})
    whole = orjson.loads(body)
    keys = len(whole) + len(whole["dataframe_split"]) + len(whole.get("params", {}))  # the keys of the request's three objects
    return {"pipe_round_trip": pipe_round_trip(len(body.encode())),
            "in_process_predict": p50_p95(lambda: model.predict(example, params={"horizon": horizon})),
            "in_process_answer": p50_p95(lambda: answer_invocation(loaded, body.encode())),
            "columns_parse_agrees": loaded.columns_parse_agrees,
            "parts": {"parse_mlflow": p50_p95(lambda: infer_and_parse_data(request, loaded.input_schema)),
                      "parse_by_columns": p50_p95(lambda: split_by_columns(request, loaded.input_schema)),
                      # what a request that leaves the column-wise path (a null, an integer column) pays before MLflow's parser
                      "refuse_loose_rows": p50_p95(lambda: refuse_loose_rows(request, loaded.input_schema, loaded.artifact.columns.id_col)),
                      "write_json": p50_p95(lambda: predictions_json(forecast)),
                      # every column-wise request: its keys' colons counted, so that only a body that may name a key twice is read again
                      "screen_duplicate_keys": p50_p95(lambda: may_repeat_a_key(body.encode(), keys)),
                      "screen_says_read_again": may_repeat_a_key(body.encode(), keys)}}


def measure(servers: dict[str, list[str]], env: dict, body: str, args, paired_args: tuple) -> dict:
    "Start `servers` together, load each in turns for `args.trials` trials at each concurrency; our FastAPI server also paired."
    from conftest import free_port
    concurrencies, group, out = [int(c) for c in args.concurrency.split(",")], list(servers), {}
    procs, urls = {}, {}
    try:
        for name, cmd in servers.items():
            port = free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            procs[name] = start([c.format(port=port) for c in cmd], urls[name], env)
        trials: dict[str, dict[int, list[dict]]] = {name: {c: [] for c in concurrencies} for name in group}
        for trial in range(args.trials):
            for name in group[trial % len(group):] + group[:trial % len(group)]:
                for c in concurrencies: trials[name][c].append(load(urls[name], body, args.requests, c))
        for name in group:
            out[name] = {f"c{c}": summary(trials[name][c]) for c in concurrencies}
            if name.startswith("skewfree_fastapi"):
                out[name]["paired_c1"] = paired(urls[name], body, paired_args, rounds=2 * args.requests, env=env)
            print(name, out[name], flush=True)
    finally:
        for proc in procs.values(): stop(proc)
    return out


def targets(results: dict) -> dict:
    "The issue's targets, from the measured figures."
    ours, theirs, two = (results.get(n, {}) for n in ("skewfree_fastapi", "mlflow_models_serve", "mlflow_models_serve_2_workers"))
    out: dict = {}
    if "c8" in ours and "c8" in theirs:
        out["fastapi_vs_mlflow_throughput_c8"] = ours["c8"]["throughput_rps"] / theirs["c8"]["throughput_rps"]
        out["fastapi_vs_mlflow_p99_c8"] = ours["c8"]["p99_ms"] / theirs["c8"]["p99_ms"]
    if "c8" in ours and "c8" in two: out["fastapi_vs_mlflow_2_workers_throughput_c8"] = ours["c8"]["throughput_rps"] / two["c8"]["throughput_rps"]
    threads = results.get("skewfree_fastapi_threads", {})
    if "c8" in threads and "c8" in theirs:
        out["fastapi_threads_vs_mlflow_throughput_c8"] = threads["c8"]["throughput_rps"] / theirs["c8"]["throughput_rps"]
        out["fastapi_threads_vs_mlflow_p99_c8"] = threads["c8"]["p99_ms"] / theirs["c8"]["p99_ms"]
    for key in ("raw_client_http_overhead_p50_ms_vs_predict", "http_overhead_p50_ms_vs_predict", "handoff_p50_ms"):
        if key in threads.get("paired_c1", {}): out[f"threads_paired_{key}"] = threads["paired_c1"][key]
    pair = ours.get("paired_c1", {})
    for key in ("http_overhead_p50_ms_vs_predict", "http_overhead_p50_ms_vs_answer", "raw_client_http_overhead_p50_ms_vs_predict",
                "transport_floor_p50_ms", "transport_floor_with_work_overhead_p50_ms", "transport_floor_raw_client_p50_ms",
                "transport_floor_with_work_raw_client_overhead_p50_ms", "http_layer_p50_ms", "backend_minus_in_process_answer_p50_ms",
                "handoff_p50_ms", "work_minus_in_process_answer_p50_ms"):
        if key in pair: out[f"paired_{key}"] = pair[key]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="requests per server, concurrency and trial")
    ap.add_argument("--trials", type=int, default=3, help="load trials per server and concurrency, taken in turns across servers")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--model", default="nlinear")
    ap.add_argument("--servers", default="skewfree_fastapi,skewfree_fastapi_threads,skewfree_ray,mlflow_models_serve,mlflow_models_serve_2_workers",
                    help="which servers to measure")
    args = ap.parse_args()
    store = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = store
    import mlflow

    from skewfree.config import compose_config
    from skewfree.serving.codec import request_body
    from skewfree.train import train
    result = train(compose_config([f"model={args.model}", "mlflow.registered_model=bench-serving"]))
    uri = "models:/bench-serving@champion"
    model = mlflow.pyfunc.load_model(uri)
    example, horizon = model.input_example, result.forecaster.max_horizon
    body = request_body(example, {"horizon": horizon})
    whole_rows = whole_rows_body(example, horizon)
    from skewfree.serving.pipeline import Loaded, registry_version
    loaded = Loaded(uri, model, registry_version(uri), model.metadata.run_id)
    results: dict = {"model": args.model, "request_rows": len(example), "horizon": horizon, "request_bytes": len(body.encode()),
                     **floors(uri, model, body, horizon)}
    print(results, flush=True)
    env = dict(os.environ, MLFLOW_TRACKING_URI=store, RAY_AUTH_MODE="disabled")
    servers = {
        "skewfree_fastapi": [str(BIN / "skewfree"), "serve", "--model-uri", uri, "--port", "{port}"],
        # the same server predicting in threads of its own process (`--workers 0`): no pipe to a worker, one GIL for all
        "skewfree_fastapi_threads": [str(BIN / "skewfree"), "serve", "--model-uri", uri, "--port", "{port}", "--workers", "0"],
        "skewfree_ray": [str(BIN / "skewfree"), "serve", "--backend", "ray", "--model-uri", uri, "--port", "{port}"],
        "mlflow_models_serve": [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", "{port}"],
        "mlflow_models_serve_2_workers": [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
                                          "-p", "{port}", "--workers", "2"],
    }
    chosen = [name for name in servers if name in args.servers.split(",")]
    # the servers a run compares head to head are up together and measured in turns, trial after trial (each trial in
    # another order), so a stretch of this shared VM running slow falls on all of them alike; Ray's cluster, busy even
    # when idle, runs alone afterwards
    for group in ([n for n in chosen if n != "skewfree_ray"], [n for n in chosen if n == "skewfree_ray"]):
        if group: results |= measure({n: servers[n] for n in group}, env, body, args, paired_args=(model, horizon, loaded, whole_rows))
    results["targets"] = targets(results)
    print(results.get("targets"))
    command = (f"python bench/serving.py --requests {args.requests} --trials {args.trials} --concurrency {args.concurrency} "
               f"--model {args.model} --servers {args.servers}")
    write("serving", command, results)


if __name__ == "__main__":
    main()
