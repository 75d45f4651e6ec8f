"""Schema-driven fuzzing of the HTTP contract (issue #27): Schemathesis forms requests from the server's own
`/openapi.json` and checks every answer against it.

    python bench/fuzz.py [--max-examples 2500] [--timeout 900]

Trains the smoke model into a throw-away sqlite MLflow store, starts `skewfree serve` (FastAPI, two model worker
processes) on a loopback port with an admin token it keeps to itself (so `POST /admin/reload` is in the OpenAPI,
and every request the fuzzer sends to it lacks the token: a 401), then runs `schemathesis run` over every operation:
its examples, coverage and fuzzing phases, positive and negative inputs, deterministic (`--generation-deterministic`:
the same cases every run), one client worker. `--max-examples` bounds the fuzzing phase per operation; an operation
with no inputs (the GETs) has few distinct cases, so the figure is reached through the two POST routes.

The schema fuzzed is the server's own, with `examples` added to the request bodies of `/predict` and `/invocations`
(real requests built from the training rows: whole series, one series, a gap, quantiles, a horizon past the model's):
requests formed from the schema alone are almost all refused with a 4xx (a body the schema allows is rarely a
forecastable series), so without them the 200 answers' schemas would never be checked. Nothing else is changed.

Checks (Schemathesis' own): `not_a_server_error` (no 5xx), `status_code_conformance` (the status is documented for
the operation), `content_type_conformance` (the Content-Type is documented), `response_schema_conformance` (the
body validates against the documented schema). Recorded: cases per operation and phase, answers by status, 5xx
answers, non-conforming answers (any of the three conformance checks failed), each distinct failure with a
reproducer (the request's method, path, Content-Type and body, and the answer's status and body), wall time.
The target is 0 5xx and 0 non-conforming answers over >= 5,000 cases.
"""
from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import smoke_model, write  # noqa: E402

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance")
CONFORMANCE = CHECKS[1:]
PHASES = "examples,coverage,fuzzing"  # stateful needs OpenAPI links, which this API has none of
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def _value(v):
    "A cell as JSON holds it: a missing number as null."
    return None if isinstance(v, float) and math.isnan(v) else v


def typed_body(frame, ids: list[str], names: tuple[str, str, str], horizon: int, **extra) -> dict:
    "A `/predict` body: the series `ids` of `frame`, each its timestamps and target (`names`: the id, time and target columns)."
    id_col, time_col, target = names
    series = [{"id": sid, "timestamps": rows[time_col].astype(str).tolist(), "target": [_value(v) for v in rows[target].tolist()]}
              for sid in ids for rows in [frame[frame[id_col] == sid]]]
    return {"series": series, "horizon": horizon, **extra}


def split_body(frame, columns: list[str], time_col: str, params: dict | None) -> dict:
    "An `/invocations` `dataframe_split` body of `frame`'s `columns`."
    rows = frame[columns].astype({time_col: str})
    data = [[_value(v) for v in row] for row in rows.itertuples(index=False)]
    return {"dataframe_split": {"columns": columns, "data": data}} | ({"params": params} if params is not None else {})


def request_examples(history, meta: dict, target: str) -> dict[str, dict[str, Any]]:
    """Real requests for the two POST routes, by operation and media type: each one a named OpenAPI example.

    `history` holds the look-back rows of each series (as `tests/conftest.py`'s fixture); `meta` is the server's
    `/metadata` (its id and time columns, longest horizon, input schema); `target` names the target column."""
    id_col, time_col, longest = meta["id_col"], meta["time_col"], int(meta["max_horizon"])
    names = (id_col, time_col, target)
    columns = [c["name"] for c in meta["input_schema"]]
    ids = [str(i) for i in history[id_col].unique()]
    gap = history.copy()
    gap.loc[gap.index[10], target] = float("nan")  # one missing target value in the first series: repaired or refused by policy
    typed = {"all_series": typed_body(history, ids, names, 3),
             "longest_horizon": typed_body(history, ids, names, longest),
             "one_series_one_step": typed_body(history, ids[:1], names, 1),
             "a_gap": typed_body(gap, ids, names, 3),
             "quantiles": typed_body(history, ids, names, 3, quantiles=[0.1, 0.5, 0.9]),
             "past_the_longest_horizon": typed_body(history, ids, names, longest + 1)}
    split = {"split": split_body(history, columns, time_col, {"horizon": 3}),
             "split_longest_horizon": split_body(history, columns, time_col, {"horizon": longest}),
             "split_no_params": split_body(history, columns, time_col, None),
             "split_a_gap": split_body(gap, columns, time_col, {"horizon": 3}),
             "records": {"dataframe_records": json.loads(history[columns].astype({time_col: str}).to_json(orient="records")),
                         "params": {"horizon": 2}},
             "split_past_the_longest_horizon": split_body(history, columns, time_col, {"horizon": longest + 1})}
    return {"/predict": {"application/json": typed},
            "/invocations": {"application/json": split, "text/csv": {"csv": history[columns].to_csv(index=False)}}}


def with_examples(spec: dict, examples: dict[str, dict[str, Any]]) -> dict:
    "The OpenAPI `spec` with `examples` added to the POST request bodies, beside the server's own (its model's input example); nothing else changed."
    spec = copy.deepcopy(spec)
    for path, by_type in examples.items():
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        for media_type, named in by_type.items():
            content[media_type]["examples"] = content[media_type].get("examples", {}) | {name: {"value": value} for name, value in named.items()}
    return spec


def run_schemathesis(spec: dict, url: str, *, max_examples: int, workdir: Path, include_paths: tuple[str, ...] = (),
                     timeout: float = 600, seed: int | None = None) -> dict:
    """`schemathesis run` over `spec` (written to a file in `workdir`) against the server at `url`: its exit code, the
    command, its output's tail, and what `summarize` makes of its ndjson report. Deterministic (`--generation-deterministic`),
    or with `seed` other cases, as reproducible."""
    workdir.mkdir(parents=True, exist_ok=True)
    (spec_file := workdir / "openapi.json").write_text(json.dumps(spec))
    reports = workdir / "reports"
    command = [str(SCHEMATHESIS), "run", str(spec_file), "--url", url, "--checks", ",".join(CHECKS), "--phases", PHASES,
               "--mode", "all", "--max-examples", str(max_examples),
               *(["--generation-deterministic"] if seed is None else ["--seed", str(seed)]),
               "--continue-on-failure", "--suppress-health-check", "all", "--workers", "1", "--request-timeout", "60",
               "--report", "ndjson", "--report-ndjson-path", str(reports / "events.ndjson"), "--no-color",
               *[arg for path in include_paths for arg in ("--include-path", path)]]
    env = {k: v for k, v in os.environ.items() if k != "SKEWFREE_ADMIN_TOKEN"}  # the fuzzer never holds the admin token
    started = time.perf_counter()
    # in `workdir`: Schemathesis and Hypothesis write nothing into the repository
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - started
    (workdir / "output.txt").write_text(done.stdout + done.stderr)
    summary = summarize(reports / "events.ndjson") if (reports / "events.ndjson").exists() else {"error": "no report"}
    return {"exit_code": done.returncode, "command": shlex.join(command), "wall_s": round(wall, 1),
            "output_tail": (done.stdout + done.stderr)[-6000:], **summary}


def _text(payload: dict | None, limit: int) -> str | None:
    "A recorded body as text (its first `limit` characters)."
    if payload is None: return None
    raw = base64.b64decode(payload["$base64"]) if "$base64" in payload else str(payload.get("string", payload)).encode()
    text = raw.decode("utf-8", errors="backslashreplace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _header(headers: dict, name: str) -> str | None:
    for key, values in (headers or {}).items():
        if key.lower() == name: return values[0] if isinstance(values, list) else values
    return None


def summarize(ndjson: Path, body_limit: int = 2000) -> dict:
    """Every case in a `schemathesis run` ndjson report: cases by operation and phase, answers by status, 5xx answers,
    answers that failed a conformance check, and each distinct failure once, with a reproducer and how often it recurred."""
    operations: dict[str, dict[str, Any]] = {}
    failures: dict[tuple, dict[str, Any]] = {}
    cases = server_errors = nonconforming = no_answer = 0
    engine_errors: list[str] = []
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        if "NonFatalError" in event or "FatalError" in event:
            error = event.get("NonFatalError") or event.get("FatalError")
            engine_errors.append(json.dumps(error)[:1000])
            continue
        if "ScenarioFinished" not in event: continue
        scenario = event["ScenarioFinished"]
        recorder, phase = scenario["recorder"], scenario["phase"]
        label = recorder["label"]
        op = operations.setdefault(label, {"cases": 0, "by_phase": Counter(), "statuses": Counter()})
        for case_id, interaction in recorder.get("interactions", {}).items():
            cases += 1
            op["cases"] += 1
            op["by_phase"][phase] += 1
            request, response = interaction["request"], interaction.get("response")
            if response is None:
                no_answer += 1
                op["statuses"]["no answer"] += 1
                continue
            status = response["status_code"]
            op["statuses"][str(status)] += 1
            server_errors += status >= 500
            failed = [c for c in recorder.get("checks", {}).get(case_id, []) if c["status"] != "success"]
            if status >= 500 and not any(c["name"] == "not_a_server_error" for c in failed):  # a scenario whose 5xx Schemathesis lets pass
                failed.append({"name": "not_a_server_error", "failure_info": {"failure": {"title": "Server error (passed by the scenario's checks)",
                                                                                           "message": f"{status} answer"}}})
            nonconforming += any(c["name"] in CONFORMANCE for c in failed)
            for check in failed:
                failure = (check.get("failure_info") or {}).get("failure", {})
                key = (label, check["name"], failure.get("title"), status, failure.get("message", "").split("\n")[0][:200])
                if key in failures: failures[key]["count"] += 1; continue
                case = recorder["cases"][case_id]["value"]
                failures[key] = {"operation": label, "check": check["name"], "title": failure.get("title"), "message": failure.get("message"),
                                 "count": 1, "phase": phase, "scenario": ((case.get("meta") or {}).get("phase") or {}).get("data"),
                                 "request": {"method": request["method"], "uri": request["uri"],
                                             "content_type": _header(request.get("headers", {}), "content-type"),
                                             "body": _text(request.get("body"), body_limit)},
                                 "response": {"status": status, "content_type": _header(response.get("headers", {}), "content-type"),
                                              "body": _text(response.get("content"), body_limit)}}
    return {"cases": cases, "server_errors": server_errors, "nonconforming": nonconforming, "no_answer": no_answer,
            "operations": {label: {"cases": op["cases"], "by_phase": dict(op["by_phase"]), "statuses": dict(sorted(op["statuses"].items()))}
                           for label, op in sorted(operations.items())},
            "failures": list(failures.values()), "engine_errors": engine_errors}


def describe_failures(summary: dict) -> str:
    "The failures of a run, one paragraph each, for an assertion message."
    out = []
    for f in summary["failures"]:
        r, a = f["request"], f["response"]
        out.append(f"{f['operation']}: {f['check']} ({f['title']}) x{f['count']}: {f['message']}\n  request: {r['method']} {r['uri']} "
                   f"[{r['content_type']}] {r['body']!r}\n  answer: {a['status']} [{a['content_type']}] {a['body']!r}")
    return "\n".join(out) or "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-examples", type=int, default=2500, help="Schemathesis' fuzzing-phase bound per operation")
    ap.add_argument("--timeout", type=float, default=900, help="seconds the fuzzing run may take")
    ap.add_argument("--seed", type=int, default=None, help="other cases, as reproducible (default: Schemathesis' deterministic mode)")
    args = ap.parse_args()
    started = time.perf_counter()
    import httpx

    from conftest import Server
    import schemathesis
    store, result, history = smoke_model("skewfree-fuzz-")
    work = Path(store.removeprefix("sqlite:///")).parent
    os.environ["SKEWFREE_ADMIN_TOKEN"] = secrets.token_urlsafe(32)  # for the server's environment only: the fuzzer's is without it
    try: server = Server("models:/skewfree-ett-smoke@champion", store)
    finally: del os.environ["SKEWFREE_ADMIN_TOKEN"]
    try:
        spec, meta = (httpx.get(f"{server.url}{path}", timeout=60).json() for path in ("/openapi.json", "/metadata"))
        examples = request_examples(history, meta, result.forecaster.preprocessor.target)
        run = run_schemathesis(with_examples(spec, examples), server.url, max_examples=args.max_examples, workdir=work / "schemathesis",
                               timeout=args.timeout, seed=args.seed)
    finally:
        server.stop()
    print(run.pop("output_tail"))
    run["schemathesis_command"] = run.pop("command").replace(str(work), "$WORK").replace(server.url, "$URL").replace(str(SCHEMATHESIS), "schemathesis")
    run["fuzz_wall_s"], run["total_wall_s"] = run.pop("wall_s"), round(time.perf_counter() - started, 1)  # the run; with training and startup
    documented = sorted(f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops)
    results = {"schemathesis_version": schemathesis.__version__, "max_examples": args.max_examples, "seed": args.seed, "checks": list(CHECKS), "phases": PHASES,
               "operations_documented": documented, "operations_untested": sorted(set(documented) - set(run["operations"])),
               "examples_added": {path: {t: sorted(named) for t, named in by_type.items()} for path, by_type in examples.items()}, **run,
               "targets": {"cases_at_least_5000": run["cases"] >= 5000, "no_5xx": run["server_errors"] == 0,
                           "no_nonconforming_answer": run["nonconforming"] == 0}}
    print(json.dumps({k: v for k, v in results.items() if k != "failures"}, indent=1))
    print(describe_failures(run))
    print(f"every case sent and answered (Schemathesis' ndjson report): {work / 'schemathesis' / 'reports' / 'events.ndjson'}")
    write("fuzz", f"python bench/fuzz.py --max-examples {args.max_examples} --timeout {args.timeout:g}"
                  + (f" --seed {args.seed}" if args.seed is not None else ""), results)


if __name__ == "__main__":
    main()
