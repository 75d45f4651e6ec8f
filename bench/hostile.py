"""What hostile requests cost a server: small bodies, well under the 10 MB limit, shaped to make work grow faster than their size.

    python bench/hostile.py [--scale 1.0]

Trains the smoke model into a throw-away sqlite MLflow store, starts `skewfree serve` (FastAPI, two model worker processes)
on a loopback port, and sends each body below once, alone. For each: the status and seconds to the answer, the answer's
size, and the slowest `GET /health` answered while it ran (polled every 0.1 s from another thread: the event loop every
request needs). An attacking review (2026-12-06) found each of these took seconds to minutes, held the event loop, or grew a
worker past gigabytes; the target is every one refused in a second or two, `/health` answered throughout, no 5xx.

- `typed_object_keys_repeated`: a `/predict` series whose `past_covariates` object names 60,000 keys, the last twice (1 MB);
- `records_each_a_key_of_its_own`: 20,000 `dataframe_records`, each with one key of its own beside the signature's (1.5 MB);
- `csv_header_wide`: a `text/csv` body of a header of 40,000 names and one row of as many values (0.5 MB);
- `split_wide_with_a_null`: a `dataframe_split` of 300,000 columns beside the signature's, 4 rows, one null (MLflow's parser reads it) (7 MB);
- `instances_wide`: a columnar `instances` object of 600,000 keys beside the signature's, each an empty list (9 MB);
- `typed_unknown_series`: 60,000 one-row series of ids the model never saw, on `/predict` (4 MB);
- `unknown_id_9mb`: one series whose id is 9 million characters, on `/invocations` (the answer's size is the figure).

`--scale` multiplies every count (0.1 for a quick look).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _common import smoke_model, write  # noqa: E402


def bodies(history, scale: float) -> dict[str, tuple[str, str, bytes]]:
    "Each hostile request: (route, content type, body)."
    n = lambda k: max(2, int(k * scale))  # noqa: E731
    h1 = history[history.series_id == "ETTh1"]
    times, target = h1.date.astype(str).tolist(), h1.OT.tolist()
    keys = n(60_000)
    covariates = ", ".join([*(f'"k{i}": [1.0]' for i in range(keys)), f'"k{keys - 1}": [1.0]'])
    typed_keys = (f'{{"series": [{{"id": "ETTh1", "timestamps": {json.dumps(times[:1])}, "target": {json.dumps(target[:1])}, '
                  f'"past_covariates": {{{covariates}}}}}], "horizon": 3}}')
    records = [{"series_id": "ETTh1", "date": times[i % len(times)], "OT": target[i % len(target)], f"k{i}": 0} for i in range(n(20_000))]
    header = ",".join(["series_id", "date", "OT", *(f"x{i}" for i in range(n(40_000)))])
    one_row = lambda sid: {"id": sid, "timestamps": times[:1], "target": target[:1]}  # noqa: E731
    return {
        "typed_object_keys_repeated": ("/predict", "application/json", typed_keys.encode()),
        "records_each_a_key_of_its_own": ("/invocations", "application/json", json.dumps({"dataframe_records": records, "params": {"horizon": 3}}).encode()),
        "csv_header_wide": ("/invocations", "text/csv", f"{header}\nETTh1,{times[0]},{target[0]}{',0' * n(40_000)}\n".encode()),
        "split_wide_with_a_null": ("/invocations", "application/json", json.dumps({"dataframe_split": {
            "columns": ["series_id", "date", "OT", *(f"x{i}" for i in range(n(300_000)))],
            "data": [["ETTh1", times[k], None if k == 0 else target[k], *[0] * n(300_000)] for k in range(4)]}, "params": {"horizon": 3}}).encode()),
        "instances_wide": ("/invocations", "application/json", json.dumps({"instances": {
            "series_id": ["ETTh1"], "date": times[:1], "OT": target[:1], **{f"x{i}": [] for i in range(n(600_000))}}, "params": {"horizon": 3}}).encode()),
        "typed_unknown_series": ("/predict", "application/json", json.dumps({"series": [one_row(f"s{i}") for i in range(n(60_000))], "horizon": 3}).encode()),
        "unknown_id_9mb": ("/invocations", "application/json", json.dumps({"dataframe_split": {"columns": ["series_id", "date", "OT"], "data": [
            ["x" * int(9_000_000 * min(scale, 1.0)), times[0], target[0]]]}, "params": {"horizon": 3}}).encode()),
    }


def measure(url: str, route: str, kind: str, body: bytes, timeout: float) -> dict:
    "One request alone: its status, seconds, answer size, and the slowest /health answered meanwhile."
    slowest, done = [0.0], threading.Event()
    def poll():
        with httpx.Client(timeout=timeout) as client:
            while not done.is_set():
                t = time.perf_counter()
                try: client.get(f"{url}/health")
                except httpx.HTTPError: pass
                slowest[0] = max(slowest[0], time.perf_counter() - t)
                time.sleep(0.1)
    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        answer = httpx.post(f"{url}{route}", content=body, headers={"Content-Type": kind}, timeout=timeout)
        status, size, reason = answer.status_code, len(answer.content), answer.text[:160]
    except httpx.HTTPError as e:
        status, size, reason = None, 0, f"no answer: {type(e).__name__}"
    seconds = time.perf_counter() - started
    done.set(); watcher.join()
    return {"body_mb": round(len(body) / 1e6, 2), "status": status, "seconds": round(seconds, 2), "answer_kb": round(size / 1e3, 1),
            "slowest_health_s": round(slowest[0], 2), "answer": reason}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every count (keys, records, columns, series)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds a client waits for one answer")
    args = ap.parse_args()
    from conftest import Server
    store, _, history = smoke_model("skewfree-hostile-")
    server = Server("models:/skewfree-ett-smoke@champion", store, "--workers", "2")
    try:
        results = {}
        for name, (route, kind, body) in bodies(history, args.scale).items():
            results[name] = measure(server.url, route, kind, body, args.timeout)
            print(name, json.dumps(results[name]), flush=True)
    finally:
        server.stop()
    write("hostile", f"python bench/hostile.py --scale {args.scale:g}", {"scale": args.scale, "cases": results})


if __name__ == "__main__":
    main()
