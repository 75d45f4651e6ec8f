"""Scale: a panel of hundreds of series trains through the pipeline; batch forecasts in chunks of whole series, as Ray Data
actors and as one call are the same to the bit; a request of 150,000 unknown series is refused at once, over HTTP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import Server

from skewfree.config import compose_config
from skewfree.data import ett_panel
from skewfree.forecaster import Forecaster
from skewfree.train import train

BIN = Path(sys.executable).parent
SERIES = 300


@pytest.fixture(scope="module")
def panel_model(store):
    "A closed-form NLinear 48 -> 24 trained, evaluated and registered on a 300-series panel through `train`."
    cfg = compose_config(["model=nlinear_ls", "profile=smoke", "trainer.least_squares.ridges=[1.0]", "cv.train_rows=200", "cv.val_rows=60",
                          "cv.test_rows=60", "mlflow.registered_model=scale-panel"])
    return train(cfg, data=ett_panel(SERIES, 320))


@pytest.fixture(scope="module")
def history(panel_model, tmp_path_factory) -> Path:
    "The last 60 rows of every series of the panel, as a Parquet file grouped by series."
    path = tmp_path_factory.mktemp("scale") / "history.parquet"
    ett_panel(SERIES, 320).groupby("series_id").tail(60).reset_index(drop=True).to_parquet(path, index=False)
    return path


def cli(*args: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "skewfree"), *args], env=dict(os.environ, MLFLOW_TRACKING_URI=store, RAY_AUTH_MODE="disabled"),
                          capture_output=True, text=True, timeout=600, check=False)


def test_a_global_model_trains_on_a_panel_and_every_series_is_forecast(panel_model):
    assert len(panel_model.forecaster.preprocessor.series_) == SERIES
    assert panel_model.metrics["n_windows"] == SERIES * 2  # every series scored (60 test rows, stride 24 from the smoke profile)


def test_xgboost_trains_on_the_same_panel_through_the_same_pipeline(panel_model):
    cfg = compose_config(["model=xgboost", "profile=smoke", "model.covariates=[future]", "model.hyperparameters.lags_past_covariates=null"])
    raw = ett_panel(SERIES, 320)
    forecaster = Forecaster.from_config(cfg).fit(raw.groupby("series_id").head(200), raw.groupby("series_id").nth(slice(200 - 71, 260)))
    forecast = forecaster.predict(raw.groupby("series_id").tail(forecaster.history_length), 5)
    assert forecast.series_id.nunique() == SERIES and np.isfinite(forecast.forecast).all()


def test_batch_predict_in_chunks_equals_one_call_whatever_the_row_order(panel_model, history, store, tmp_path):
    model = mlflow.pyfunc.load_model(panel_model.model_uri)
    rows = pd.read_parquet(history)
    whole = model.predict(rows, params={"horizon": 24})
    done = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(history), "--horizon", "24", "--output", str(tmp_path / "f.parquet"),
               "--chunk-rows", "1000", store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    # 18 reads of 1,000 rows, each forecast up to its last whole series, and the series the last read left waiting
    assert f"of {SERIES} series" in done.stdout and "(19 chunks)" in done.stdout, done.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), whole, check_exact=True)
    # sorted by time, not by series: the rows are partitioned by series first, and the answer is the same
    rows.sort_values("date", kind="stable").to_csv(tmp_path / "by_time.csv", index=False)
    done = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(tmp_path / "by_time.csv"), "--horizon", "24",
               "--output", str(tmp_path / "by_time.csv.out.csv"), "--chunk-rows", "5000", store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    by_time = pd.read_csv(tmp_path / "by_time.csv.out.csv", parse_dates=["date"]).sort_values(["series_id", "date"], ignore_index=True)
    assert np.array_equal(by_time.forecast.to_numpy(), whole.forecast.to_numpy())


def untidy_panel(rows: pd.DataFrame) -> pd.DataFrame:
    "The history with three series no run can forecast: a value written as text (s007), ten rows where 48 are needed (s100), an unknown id."
    untidy = rows.astype({"OT": object})
    untidy.loc[untidy.index[untidy.series_id == "s007"][30], "OT"] = "12,5"
    untidy = untidy.drop(untidy.index[untidy.series_id == "s100"][:-10])
    return pd.concat([untidy, rows[rows.series_id == "s000"].assign(series_id="stranger")], ignore_index=True)


def test_skipping_forecasts_every_other_series_to_the_bit_and_lists_each_refused_one(panel_model, history, store, tmp_path):
    model = mlflow.pyfunc.load_model(panel_model.model_uri)
    rows = pd.read_parquet(history)
    whole = model.predict(rows, params={"horizon": 24})
    untidy_panel(rows).to_csv(tmp_path / "untidy.csv", index=False)
    def run(output: str, *options: str) -> subprocess.CompletedProcess:
        return cli("predict", "--model-uri", panel_model.model_uri, "--input", str(tmp_path / "untidy.csv"), "--horizon", "24",
                   "--output", str(tmp_path / output), "--chunk-rows", "1000", *options, store=store)
    strict = run("f.parquet")
    assert strict.returncode == 2 and "'12,5' is not a double" in strict.stderr, strict.stderr[-2000:]
    assert not (tmp_path / "f.parquet").exists()
    done = run("f.parquet", "--skip-refused", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"of {SERIES - 2} series" in done.stdout and "refused 3 series, left out and listed in" in done.stderr, (done.stdout, done.stderr)
    kept = whole[~whole.series_id.isin(["s007", "s100"])].sort_values(["series_id", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet").sort_values(["series_id", "date"], ignore_index=True), kept, check_exact=True)
    refused = pd.read_csv(tmp_path / "f.refused.csv").set_index("series")
    assert sorted(refused.index) == ["s007", "s100", "stranger"], refused
    assert "'12,5' is not a double" in refused.reason["s007"] and refused.field["s007"] == "--input: column OT"
    assert refused.reason["s100"].startswith("needs at least 48 rows of history, got 10")
    assert "series was not seen at fit time" in refused.reason["stranger"]
    everyone = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(history), "--horizon", "96", "--output", str(tmp_path / "e.csv"),
                   "--skip-refused", "1000", store=store)
    assert everyone.returncode == 2 and "--horizon" in everyone.stderr, everyone.stderr[-2000:]  # a refusal of no series stops the run
    over = run("over.parquet", "--skip-refused", "2")
    assert over.returncode == 2 and "--skip-refused: more than 2 series refused" in over.stderr, over.stderr[-2000:]
    assert not (tmp_path / "over.parquet").exists()


def test_ray_executor_equals_the_local_run_to_the_bit(panel_model, history, store, tmp_path, ray_cluster):
    local = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(history), "--horizon", "24", "--output", str(tmp_path / "local.parquet"),
                store=store)
    assert local.returncode == 0, local.stderr[-2000:]
    done = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(history), "--horizon", "24", "--output", str(tmp_path / "ray"),
               "--executor", "ray", "--chunk-rows", "4000", f"executor.address={ray_cluster}", "executor.workers=2", store=store)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {SERIES * 24} forecast rows" in done.stdout, done.stdout
    ours = pd.read_parquet(tmp_path / "local.parquet").sort_values(["series_id", "date"], ignore_index=True)
    theirs = pd.read_parquet(tmp_path / "ray").sort_values(["series_id", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(theirs, ours, check_exact=True)
    # an actor's refusal of bad rows reaches the command as one line naming the series, not as Ray's traceback around it
    stranger = pd.read_parquet(history).assign(series_id=lambda f: f.series_id.where(f.series_id != f.series_id.iloc[0], "stranger"))
    stranger.to_parquet(tmp_path / "stranger.parquet", index=False)
    refused = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(tmp_path / "stranger.parquet"), "--horizon", "24",
                  "--output", str(tmp_path / "refused"), "--executor", "ray", f"executor.address={ray_cluster}", store=store)
    assert refused.returncode == 2 and "series was not seen at fit time" in refused.stderr and "'stranger'" in refused.stderr, refused.stderr[-3000:]
    assert not (tmp_path / "refused").exists()  # no half-written output
    # skipping, each actor leaves out the series it refuses, and the run lists them all
    untidy_panel(pd.read_parquet(history)).query("series_id != 's007'").astype({"OT": float}).to_parquet(tmp_path / "untidy.parquet")
    skipped = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(tmp_path / "untidy.parquet"), "--horizon", "24",
                  "--output", str(tmp_path / "skipped"), "--executor", "ray", "--chunk-rows", "4000", f"executor.address={ray_cluster}",
                  "executor.workers=2", "--skip-refused", "5", store=store)
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    theirs = pd.read_parquet(tmp_path / "skipped").sort_values(["series_id", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(theirs, ours[~ours.series_id.isin(["s007", "s100"])].reset_index(drop=True), check_exact=True)
    assert sorted(pd.read_csv(tmp_path / "skipped" / "_refused.csv").series) == ["s100", "stranger"]
    # every series refused: said, where Ray's sink once deleted the folder it made, and the actors' notes with it
    pd.read_parquet(history).assign(series_id=lambda f: "x" + f.series_id).to_parquet(tmp_path / "strangers.parquet", index=False)
    nobody = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(tmp_path / "strangers.parquet"), "--horizon", "24",
                 "--output", str(tmp_path / "nobody"), "--executor", "ray", f"executor.address={ray_cluster}", "--skip-refused", "1000", store=store)
    assert nobody.returncode == 2 and "--input: every series was refused" in nobody.stderr, nobody.stderr[-3000:]
    # a header that names a column twice (read as `OT` and `OT.1`) or a file that is no Parquet: refused before any actor starts
    pd.read_parquet(history).to_csv(tmp_path / "twice.csv", index=False, header=["series_id", "OT", "OT"])
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file")
    for bad, reason in [("twice.csv", "column 'OT' is named more than once"), ("broken.parquet", "cannot read")]:
        refused = cli("predict", "--model-uri", panel_model.model_uri, "--input", str(tmp_path / bad), "--horizon", "24",
                      "--output", str(tmp_path / f"{bad}.out"), "--executor", "ray", f"executor.address={ray_cluster}", store=store)
        assert refused.returncode == 2 and f"--input: {reason}" in refused.stderr, refused.stderr[-3000:]


def unknown_ids_body(n: int) -> bytes:
    "An MLflow request of n series no model has seen, one row each."
    return json.dumps({"dataframe_split": {"columns": ["series_id", "date", "OT"],
                                           "data": [[f"unknown-{i}", "2017-01-01 00:00:00", 1.0] for i in range(n)]}}).encode()


def test_a_request_of_150000_unknown_series_is_refused_at_once(server, trained, store):
    body = unknown_ids_body(150_000)
    started = time.perf_counter()
    answer = httpx.post(f"{server.url}/invocations", content=body, headers={"Content-Type": "application/json"}, timeout=120)
    assert answer.status_code == 413, answer.text[:500]  # over the default limit: told by name
    assert answer.json()["error"]["reason"] == "the request holds 150000 series; this server takes at most 100000 (serve.max_series)"
    # a server that takes that many series refuses them for what they are, naming the first few (bounded: it once took minutes)
    wide = Server("models:/skewfree-ett-smoke@champion", store, "serve.max_series=200000")
    try:
        answer = httpx.post(f"{wide.url}/invocations", content=body, headers={"Content-Type": "application/json"}, timeout=120)
        error = answer.json()["error"]
        assert answer.status_code == 422 and error["series"] == "unknown-0", answer.text[:500]
        assert "150000 of this request's series are not: ['unknown-0', 'unknown-1', 'unknown-10', … (149997 more)]" in error["reason"], error
        assert "data.unknown_series=own_history" in error["reason"]
        assert httpx.get(f"{wide.url}/health", timeout=10).status_code == 200
    finally:
        wide.stop()
    assert time.perf_counter() - started < 120
    # typed, within the body limit: counted before the request is sent to a worker (it was unpickled there first; attack review)
    typed = json.dumps({"series": [{"id": f"u{i}", "timestamps": ["2017-01-01 00:00:00"], "target": [1.0]} for i in range(110_000)],
                        "horizon": 1}).encode()
    assert len(typed) < 10_000_000
    answer = httpx.post(f"{server.url}/predict", content=typed, headers={"Content-Type": "application/json"}, timeout=120)
    assert answer.status_code == 413 and answer.json()["error"]["field"] == "series", answer.text[:500]
    assert answer.json()["error"]["reason"] == "the request holds 110000 series; this server takes at most 100000 (serve.max_series)"


@pytest.fixture(scope="module")
def numbered(store):
    "A small model whose series ids look like numbers ('001', '002', '010'): what a CSV's type guessing gets wrong."
    frame = ett_panel(3, 320).assign(series_id=lambda f: f.series_id.map({"s0": "001", "s1": "002", "s2": "010"}))
    cfg = compose_config(["model=nlinear_ls", "profile=smoke", "trainer.least_squares.ridges=[1.0]", "cv.train_rows=200", "cv.val_rows=60",
                          "cv.test_rows=60", "mlflow.registered_model=scale-numbered"])
    return train(cfg, data=frame), frame.groupby("series_id").tail(60).reset_index(drop=True)


def test_a_csv_read_in_chunks_keeps_its_ids_and_types_whatever_each_chunk_holds(numbered, store, tmp_path):
    result, rows = numbered
    rows = rows.assign(OT=rows.OT.where(rows.index >= 100, rows.OT.round()))  # whole numbers first: a chunk of them reads as integers
    whole = mlflow.pyfunc.load_model(result.model_uri).predict(rows, params={"horizon": 24})
    for name, frame in (("grouped", rows), ("by_time", rows.sort_values("date", kind="stable"))):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        done = cli("predict", "--model-uri", result.model_uri, "--input", str(tmp_path / f"{name}.csv"), "--horizon", "24",
                   "--output", str(tmp_path / f"{name}.out.csv"), "--chunk-rows", "50", store=store)
        assert done.returncode == 0, done.stderr[-2000:]
        got = pd.read_csv(tmp_path / f"{name}.out.csv", dtype={"series_id": str}, parse_dates=["date"]).sort_values(["series_id", "date"], ignore_index=True)
        assert got.series_id.unique().tolist() == ["001", "002", "010"], name
        assert np.array_equal(got.forecast.to_numpy(), whole.forecast.to_numpy()), name


def test_an_empty_file_or_one_without_the_id_column_is_refused_by_name(numbered, store, tmp_path):
    result, rows = numbered
    rows.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    rows.drop(columns="series_id").to_csv(tmp_path / "no_ids.csv", index=False)
    for name, said in (("empty.csv", "--input: no rows"), ("no_ids.csv", "series_id: column is missing")):
        done = cli("predict", "--model-uri", result.model_uri, "--input", str(tmp_path / name), "--horizon", "24", "--output", str(tmp_path / "f.csv"),
                   store=store)
        assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not list(tmp_path.glob(".*partial")) and not (tmp_path / "f.csv").exists()
