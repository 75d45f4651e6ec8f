"Bad requests to the real server get a 4xx JSON body that names the problem, never a 500."
from __future__ import annotations

import json
import re

import httpx
import mlflow
import pytest
from conftest import exact_json_body

from skewfree.data import load_ett


@pytest.fixture(scope="module")
def history(trained):
    return load_ett(max_rows=930).groupby("series_id").tail(trained.forecaster.history_length).reset_index(drop=True)


def post(server, body: str) -> httpx.Response:
    return httpx.post(f"{server.url}/invocations", content=body, headers={"Content-Type": "application/json"}, timeout=60)


def test_good_request_in_records_format(server, history):
    body = json.dumps({"dataframe_records": history.astype({"date": str}).to_dict("records"), "params": {"horizon": 3}})
    answer = post(server, body)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 6


def test_missing_column_is_named(server, history):
    answer = post(server, exact_json_body(history.drop(columns="OT"), 3))
    assert 400 <= answer.status_code < 500
    assert "OT" in answer.json()["error"]["reason"]


def test_too_few_history_rows_says_how_many(server, history, trained):
    answer = post(server, exact_json_body(history.groupby("series_id").tail(10), 3))
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == "date" and error["series"] == "ETTh1"
    assert f"needs at least {trained.forecaster.history_length} rows of history, got 10" in error["reason"]


@pytest.mark.parametrize("horizon", ["soon", 2.5])
def test_non_integer_horizon(server, history, horizon):
    answer = post(server, exact_json_body(history, 3).replace('"horizon": 3', f'"horizon": {json.dumps(horizon)}'))
    assert 400 <= answer.status_code < 500
    error = answer.json()["error"]
    assert (error["field"], error["reason"]) == ("params.horizon", f"must be an integer, got {json.dumps(horizon)}"), answer.text


def test_horizon_beyond_the_model_says_the_limit(server, history, trained):
    answer = post(server, exact_json_body(history, 1000))
    assert answer.status_code == 422
    assert f"between 1 and {trained.forecaster.max_horizon}" in answer.json()["error"]["reason"]


def test_null_quantiles_mean_the_same_on_both_routes_as_on_mlflows(server, history):
    # left out: every level; null: refused, as MLflow's own pyfunc and scoring server refuse it — never "every level" on one
    # route and an error on another
    body = json.loads(exact_json_body(history, 3))
    body["params"]["quantiles"] = None
    split = post(server, json.dumps(body))
    assert split.status_code == 400 and split.json()["error"]["field"] == "params.quantiles", split.text
    assert split.json()["error"]["reason"] == "must be a list of numbers, got null"
    body["params"]["quantiles"] = [0.1, None]  # past MLflow's schema, refused by the model's check: quoted as it was sent, not as Python's None
    assert post(server, json.dumps(body)).json()["error"]["reason"] == "must be a list of numbers, got [0.1, null]"
    series = [{"id": sid, "timestamps": rows.date.astype(str).tolist(), "target": rows.OT.tolist()} for sid, rows in history.groupby("series_id")]
    typed = httpx.post(f"{server.url}/predict", json={"series": series, "horizon": 3, "quantiles": None}, timeout=60)
    assert typed.status_code == 422 and typed.json()["error"]["field"] == "quantiles", typed.text
    left_out = httpx.post(f"{server.url}/predict", json={"series": series, "horizon": 3}, timeout=60)
    assert left_out.status_code == 200 and set(left_out.json()["series"][0]["quantiles"]) == {"q0.05", "q0.1", "q0.9", "q0.95"}, left_out.text


def test_unparsable_timestamp(server, history):
    bad = history.astype({"date": str})
    bad.loc[5, "date"] = "not-a-date"
    answer = post(server, exact_json_body(bad, 3))
    assert 400 <= answer.status_code < 500
    assert "not-a-date" in answer.text


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", json.dumps({"rows": []})])
def test_malformed_bodies(server, body):
    answer = post(server, body)
    assert 400 <= answer.status_code < 500
    assert "error" in answer.json()


def test_health(server):
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


LONE_SURROGATE_KEYS = {  # a key, not a value: the error names it, so the answer must be writable with it in (#27)
    "top level": ("/invocations", '{"\\ud800": 1}'),
    "in params": ("/invocations", '{"dataframe_split": {"columns": ["date"], "data": [["2020-01-01"]]}, "params": {"\\ud800": 1}}'),
    "in a records row": ("/invocations", '{"dataframe_records": [{"\\ud800": 1}]}'),
    "in a typed covariate map": ("/predict", '{"series": [{"id": "x", "timestamps": ["2020-01-01"], "target": [1], '
                                             '"past_covariates": {"\\ud800": [1]}}], "horizon": 2}'),
}


@pytest.mark.parametrize("case", sorted(LONE_SURROGATE_KEYS))
def test_a_lone_surrogate_key_is_a_4xx_that_names_it_on_both_backends(srv, case):
    route, body = LONE_SURROGATE_KEYS[case]
    answer = httpx.post(f"{srv.url}{route}", content=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()["error"]  # a JSON body, whatever it echoes
    assert "internal error" not in error["reason"]


def test_the_docs_page_needs_no_internet_on_both_backends(srv):
    page = httpx.get(f"{srv.url}/docs", timeout=60)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert scripts and not [s for s in scripts if s.startswith(("http://", "https://", "//"))], scripts  # nothing from a CDN
    for asset in scripts:
        got = httpx.get(f"{srv.url}{asset}", timeout=60)
        assert got.status_code == 200 and len(got.content) > 1000, asset
    assert httpx.get(f"{srv.url}/openapi.json", timeout=60).json()["info"]["title"] == "skewfree"


def test_the_docs_offer_the_models_own_request_which_it_answers_on_both_backends(srv, trained):
    # Swagger UI's "Try it out" sends the OpenAPI's example: the artifact's input example, on every forecast route and media type
    spec = httpx.get(f"{srv.url}/openapi.json", timeout=60).json()
    offered = {(path, media): spec["paths"][path]["post"]["requestBody"]["content"][media]["examples"]["input_example"]["value"]
               for path, media in [("/predict", "application/json"), ("/invocations", "application/json"), ("/invocations", "text/csv")]}
    answers = {key: httpx.post(f"{srv.url}{key[0]}", content=body if key[1] == "text/csv" else json.dumps(body), headers={"Content-Type": key[1]},
                               timeout=60) for key, body in offered.items()}
    assert all(a.status_code == 200 for a in answers.values()), {k: a.text[:300] for k, a in answers.items()}
    example = mlflow.pyfunc.load_model(trained.model_uri).input_example
    expected = trained.forecaster.predict(example, trained.forecaster.max_horizon).forecast.tolist()
    assert [p["forecast"] for p in answers["/invocations", "application/json"].json()["predictions"]] == expected
    assert [p["forecast"] for p in answers["/invocations", "text/csv"].json()["predictions"]] == expected
    assert [v for s in answers["/predict", "application/json"].json()["series"] for v in s["forecast"]] == expected
    assert "example_requests" not in httpx.get(f"{srv.url}/metadata", timeout=60).json()  # rows are the docs', not a status


def test_text_csv_is_taken_as_mlflow_takes_it_on_both_backends(srv, history, trained):
    # a header and rows, no params (MLflow's CSV carries none): the model's longest horizon, the same numbers as the JSON body
    as_csv = httpx.post(f"{srv.url}/invocations", content=history.to_csv(index=False), headers={"Content-Type": "text/csv"}, timeout=60)
    as_json = post(srv, exact_json_body(history, trained.forecaster.max_horizon))
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.json()["predictions"] == as_json.json()["predictions"]
    for broken in (b'"unterminated', b""):
        refused = httpx.post(f"{srv.url}/invocations", content=broken, headers={"Content-Type": "text/csv; charset=utf-8"}, timeout=60)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == "body", refused.text


def test_mlflows_instances_and_inputs_are_answered_as_the_split_on_both_backends(srv, history, trained):
    # MLflow's scoring server takes `instances` and `inputs` (records, or one list per column) for a model of named columns too
    records = history.astype({"date": str}).to_dict("records")
    columns = {c: [r[c] for r in records] for c in history.columns}
    as_split = post(srv, exact_json_body(history, 3)).json()["predictions"]
    for body in ({"instances": records}, {"inputs": records}, {"inputs": columns}, {"instances": columns}):
        answer = post(srv, json.dumps(body | {"params": {"horizon": 3}}))
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == as_split
    refused = post(srv, json.dumps({"inputs": [1, 2], "params": {"horizon": 3}}))
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "inputs.0", refused.text


def test_the_openapi_states_every_body_and_answer_on_both_backends(srv):
    spec = httpx.get(f"{srv.url}/openapi.json", timeout=60).json()
    invocations = spec["paths"]["/invocations"]["post"]
    assert set(invocations["requestBody"]["content"]) == {"application/json", "text/csv"}  # a fuzzer can form a valid request
    for path, statuses in (("/invocations", {"200", "400", "413", "422", "503"}), ("/predict", {"200", "400", "413", "422", "503"})):
        answers = spec["paths"][path]["post"]["responses"]
        assert statuses <= set(answers), (path, sorted(answers))
        for status in statuses - {"200"}:  # every error is the one body the server sends, not FastAPI's default validation shape
            assert answers[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


@pytest.mark.parametrize("frame", ["dataframe_split", "dataframe_records"])
def test_one_time_in_another_utc_offset_is_told_in_one_line_without_pandas_advice(server, history, frame):
    times = history.date.astype(str).str.replace(" ", "T").tolist()
    times[5] = times[5] + "+05:00"
    table = history.assign(date=times)
    body = json.loads(exact_json_body(table, 3)) if frame == "dataframe_split" else \
        {"dataframe_records": table.to_dict("records"), "params": {"horizon": 3}}
    error = post(server, json.dumps(body)).json()["error"]
    assert error["field"] == "date" and error["reason"].startswith("column date does not convert to datetime64[ns]: "), error
    assert "\n" not in error["reason"] and "You might want to try" not in error["reason"] and "\\'" not in error["reason"], error


@pytest.mark.parametrize("route", ["/invocations", "/predict"])
def test_a_query_string_is_refused_by_name_never_answered_as_if_unsent(server, history, route):
    answer = httpx.post(f"{server.url}{route}?horizon=7", content=exact_json_body(history, 3), headers={"Content-Type": "application/json"}, timeout=60)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "query.horizon", answer.text
    assert "reads no query parameters" in answer.json()["error"]["reason"]


@pytest.mark.parametrize("route", ["/invocations", "/predict"])
def test_a_compressed_body_is_refused_by_its_encoding_not_read_as_text_it_is_not(server, history, route):
    import gzip
    body = gzip.compress(exact_json_body(history, 3).encode())  # attack review: read as bytes, it was told it was "UTF-16 text"
    answer = httpx.post(f"{server.url}{route}", content=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, timeout=60)
    assert answer.status_code == 415 and answer.json()["error"]["reason"] == "Content-Encoding 'gzip' is not taken: send the body uncompressed", answer.text
    if route == "/invocations":  # told plainly that it is plain: answered
        plain = httpx.post(f"{server.url}{route}", content=exact_json_body(history, 3), headers={"Content-Type": "application/json",
                                                                                                "Content-Encoding": "identity"}, timeout=60)
        assert plain.status_code == 200, plain.text


@pytest.mark.parametrize("route", ["/invocations", "/predict"])
def test_a_body_that_is_not_json_is_a_400_on_both_routes(server, route):
    # /predict answered 422 "JSON decode error", where /invocations and the OpenAPI's 400 ("not JSON") say 400 (serving review)
    answer = httpx.post(f"{server.url}{route}", content=b'{"series": [', headers={"Content-Type": "application/json"}, timeout=60)
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["field"] == "body" and error["reason"].startswith("not valid JSON"), answer.text
