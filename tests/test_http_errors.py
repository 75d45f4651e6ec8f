"Bad requests to the real server get a 4xx JSON body that names the problem, never a 500."
from __future__ import annotations

import json

import httpx
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
    assert "horizon" in answer.json()["error"]["reason"]


def test_horizon_beyond_the_model_says_the_limit(server, history, trained):
    answer = post(server, exact_json_body(history, 1000))
    assert answer.status_code == 422
    assert f"between 1 and {trained.forecaster.max_horizon}" in answer.json()["error"]["reason"]


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
