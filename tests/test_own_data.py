"A user's own long-format file trains and serves through config alone: data=file data.path=... data.time_col=... ."
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from skewfree.config import compose_config
from skewfree.core import InputError
from skewfree.train import train


def sales(n: int = 1100) -> pd.DataFrame:
    t = pd.date_range("2023-01-01", periods=n, freq="D")
    rng = np.random.default_rng(0)
    return pd.concat([pd.DataFrame({"store": s, "day": t.strftime("%Y-%m-%d"), "promo": rng.integers(0, 2, n),
                                    "units": 50 + 10 * np.sin(np.arange(n) * 2 * np.pi / 7) + rng.normal(0, 1, n) + k * 20})
                      for k, s in enumerate(["north", "south"])], ignore_index=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".utc.parquet"])
def test_own_file_trains_through_config_alone(store, tmp_path, suffix):
    path = tmp_path / f"sales{suffix}"
    frame = sales()
    if suffix == ".utc.parquet": frame["day"] = pd.to_datetime(frame.day).dt.tz_localize("UTC")  # zone-aware, as Spark and pandas write UTC
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    cfg = compose_config(["profile=smoke", "data=file", f"data.path={path}", "data.time_col=day", "data.target=units",
                          "data.id_col=store", "data.covariates.past=[promo]", "model.covariates=[past]",
                          "mlflow.registered_model=own-data"])
    result = train(cfg)
    pre = result.forecaster.preprocessor
    assert dict(zip(pre.series_, pre.spacing.freq_)) == {"north": "24h", "south": "24h"}
    history = frame.groupby("store").tail(result.forecaster.history_length)
    forecast = result.forecaster.predict(history, 7)
    # the point forecast and the calibrated intervals (params/config.yaml `intervals`), nested as quantiles are
    assert list(forecast.columns) == ["store", "day", "forecast", "q0.05", "q0.1", "q0.9", "q0.95"]
    assert forecast.groupby("store").forecast.mean().between(30, 90).all()  # original units, not standardised
    assert (forecast["q0.05"] <= forecast["q0.1"]).all() and (forecast["q0.9"] <= forecast["q0.95"]).all()
    assert 0 < result.metrics["width_80_std"] < result.metrics["width_90_std"] and 0 <= result.metrics["coverage_80"] <= 1


def test_skewfree_train_trains_a_csv_whose_store_is_called_NA_and_refuses_a_semicolon_file_in_one_line(store, tmp_path):
    # the command a terminal or a scheduler runs: the notebook's run, its bad input one line; 'NA' (Namibia) is a store, not a missing id
    path = tmp_path / "regions.csv"
    sales().assign(store=lambda f: f.store.map({"north": "NA", "south": "EU"})).to_csv(path, index=False)
    skewfree = [str(Path(sys.executable).parent / "skewfree"), "train", "--model", "seasonal_naive", "profile=smoke", "data=file",
                "data.time_col=day", "data.target=units", "data.id_col=store", "mlflow.registered_model=own-regions"]
    env = dict(os.environ, MLFLOW_TRACKING_URI=store)
    done = subprocess.run([*skewfree, f"data.path={path}"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    uri = done.stdout.strip().splitlines()[-1].removeprefix("MODEL_URI=")
    assert uri.startswith("models:/own-regions/")
    assert sorted(mlflow.pyfunc.load_model(uri).unwrap_python_model().forecaster.preprocessor.series_) == ["EU", "NA"]
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(path.read_text().replace(",", ";"))
    refused = subprocess.run([*skewfree, f"data.path={semicolons}"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].startswith("skewfree train: data.path: "), refused.stderr[-2000:]
    assert "separated by ';'" in refused.stderr and "Traceback" not in refused.stderr


def test_a_value_keyed_in_x1000_is_told_and_logged_or_refused_by_series_column_and_row(store, tmp_path, caplog):
    # one north value ×1000 among its training rows: learnt from as given (it is data), but told, logged; with data.suspect_values=error, refused
    frame = sales()
    typo = frame.index[(frame.store == "north") & (frame.day == "2024-06-01")][0]
    frame.loc[typo, "units"] *= 1000
    path = tmp_path / "typo.csv"
    frame.to_csv(path, index=False)
    overrides = ["profile=smoke", "data=file", "data.time_col=day", "data.target=units", "data.id_col=store", "mlflow.registered_model=own-typo"]
    result = train(compose_config(["model=seasonal_naive", *overrides, f"data.path={path}"]))
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["suspect_values"] == 1
    logged = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/suspect_values.csv")))
    assert logged[["series", "column", "row", "time"]].values.tolist() == [["north", "units", typo, "2024-06-01"]]
    assert "1 value more than data.suspect_ratio yardsticks from its series' median" in caplog.text and "'north' units" in caplog.text
    skewfree = [str(Path(sys.executable).parent / "skewfree"), "train", "--model", "seasonal_naive", *overrides, f"data.path={path}",
                "data.suspect_values=error"]
    refused = subprocess.run(skewfree, env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True, timeout=600, check=False)
    last = refused.stderr.strip().splitlines()[-1]
    assert refused.returncode == 2 and last.startswith("skewfree train: units: ") and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "at 2024-06-01 00:00:00 lies " in last and "yardsticks (" in last and "from this series' median (" in last, last
    assert f"series 'north', first bad row {typo}" in last, last
    assert len(mlflow.MlflowClient().search_model_versions("name='own-typo'")) == 1  # the refused run registered nothing


def test_a_stray_row_years_after_a_series_is_refused_before_any_fit_and_unused_rows_count_rows(store, tmp_path):
    # counted in steps of its grid, a series with one row in 2030 would be split among years of missing days: refused by name
    frame = sales()
    stray = frame[frame.store == "south"].tail(1).assign(day="2030-01-01")
    path = tmp_path / "stray.csv"
    pd.concat([frame, stray]).to_csv(path, index=False)
    overrides = ["model=seasonal_naive", "profile=smoke", "data=file", f"data.path={path}", "data.time_col=day", "data.target=units",
                 "data.id_col=store", "mlflow.registered_model=own-stray", "data.max_rows=null"]
    with pytest.raises(InputError, match=r"day: 999 of the 1000 steps of this series the run fits and scores have no row .*series 'south'"):
        train(compose_config(overrides))
    # counted from the start, the same file trains; the rows left out are counted as rows (one), not as the steps they span
    result = train(compose_config([*overrides, "data.rows_from=start"]))
    run = mlflow.get_run(result.run_id)
    assert mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/unused_rows.json") == {"north": 100, "south": 101}


def test_a_stop_once_registration_begins_waits_for_the_run_to_end(store, monkeypatch):
    # a SIGTERM as the version is registered: the version is whole and its run FINISHED, then the stop is taken, never a version of a
    # FAILED run that a scheduler's retry would register again beside
    import signal

    real = mlflow.register_model

    def interrupted(*args, **kwargs):  # past `register`'s last checkpoint: the stop arrives as the version is written
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)
    monkeypatch.setattr(mlflow, "register_model", interrupted)
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        train(compose_config(["model=seasonal_naive", "profile=smoke", "mlflow.registered_model=stopped-at-registration"]))
    [version] = mlflow.MlflowClient().search_model_versions("name='stopped-at-registration'")
    assert mlflow.get_run(version.run_id).info.status == "FINISHED"
    with pytest.raises(InputError, match="mlflow.registered_model: must name the registered model"):
        train(compose_config(["model=seasonal_naive", "profile=smoke", "mlflow.registered_model=''"]))


def test_own_file_missing_the_configured_target_names_it(store, tmp_path):
    path = tmp_path / "sales.csv"
    sales().to_csv(path, index=False)
    cfg = compose_config(["profile=smoke", "data=file", f"data.path={path}", "data.time_col=day", "data.target=revenue", "data.id_col=store"])
    with pytest.raises(InputError, match="revenue: column is missing"):
        train(cfg)


def test_missing_values_and_gaps_are_repaired_told_and_never_scored(store, tmp_path):
    frame = sales()
    north = frame.index[frame.store == "north"]
    frame.loc[north[900:905], "units"] = np.nan  # five missing values in north's test span (rows 800-999 of each series)
    frame = frame.drop(frame.index[frame.store == "south"][950])  # and one day missing from south's
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    overrides = ["model=seasonal_naive", "profile=smoke", "data=file", f"data.path={path}", "data.time_col=day", "data.target=units",
                 "data.id_col=store", "mlflow.registered_model=own-data-repaired"]
    result = train(compose_config([*overrides, "data.max_rows=null"]))
    # the forecasts were scored only where a value was given, never against the values the policy made up
    assert all(np.isfinite(v) for v in result.metrics.values()), result.metrics
    assert result.metrics["n_unscored_points"] > 0
    run = mlflow.get_run(result.run_id)
    assert mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/repairs.json") == {"north": {"filled_units": 5},
                                                                                    "south": {"reindexed_rows": 1, "filled_units": 1}}
    assert (run.data.metrics["repaired_values"], run.data.metrics["inserted_gap_rows"]) == (6, 1)
    # seasonal naive repeats the data's own season (`season_length: null`): a week of days, as MASE's, not 24 days
    assert (run.data.params["model.hyperparameters.season_length"], run.data.params["mase_season"]) == ("7", "7")
    assert result.forecaster.history_length == 7
    # the split takes each series' newest 1000 days (smoke: 600 + 200 + 200), a missing day counted as the step it is, so both
    # stores are cut on the same dates: the days before them are said, not dropped unseen
    assert mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/unused_rows.json") == {"north": 100, "south": 100}
    assert run.data.metrics["unused_rows"] == 200
    assert run.data.tags.get("skewfree.split_overlap") is None  # the stores end together: no overlap to warn of
    # the smoke profile's data.max_rows (1000) keeps each series' first 1000 rows in time, as it does of the embedded data
    capped = mlflow.get_run(train(compose_config(overrides)).run_id)
    assert capped.data.metrics["unused_rows"] == 0 and capped.data.params["split.train_rows"] == "600"
    with pytest.raises(InputError, match=r"data.max_rows: expected a whole number of at least 1 or null, got 'abc'"):
        train(compose_config([*overrides, "data.max_rows=abc"]))
    with pytest.raises(InputError, match=r"data.covariates.past: column 'weather' is not in the data; its columns are \['store', 'day', 'promo', 'units'\]"):
        train(compose_config([*overrides, "data.covariates.past=[weather]"]))  # seasonal_naive reads no covariate: named all the same


def test_a_series_mostly_made_up_by_repairs_is_refused_not_registered(store, tmp_path):
    frame = sales()
    north = frame.index[frame.store == "north"]
    frame.loc[north[-999:-400:2], "units"] = np.nan  # every other training value of north missing: half its training rows would be invented
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    overrides = ["model=seasonal_naive", "profile=smoke", "data=file", f"data.path={path}", "data.time_col=day", "data.target=units",
                 "data.id_col=store", "mlflow.registered_model=own-data-made-up"]
    runs = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(InputError, match=r"units: 300 of this series' 1000 values the run fits and scores would be made up .*30%.*series 'north'"):
        train(compose_config(overrides))
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs  # refused before any fit, so before any run
    assert mlflow.MlflowClient().search_model_versions("name='own-data-made-up'") == []
    assert train(compose_config([*overrides, "data.training_repair_share=0.5"])).metrics  # the share is the user's to raise, visibly


def test_a_file_config_without_its_file_says_so(store):
    for path in ([], ["data.path="], ["data.path=null"]):  # not named, empty or null: never a silent run on the embedded data
        with pytest.raises(InputError, match="data.path: required"):
            train(compose_config(["profile=smoke", "data=file", "data.time_col=day", "data.target=OT", "data.id_col=series_id", *path]))


def test_a_ranking_no_run_scores_is_refused_before_the_run(store):
    with pytest.raises(InputError, match=r"registry.metric: a holdout run scores test_\* \(as cv.score: test_mse_std\), got 'foo'"):
        train(compose_config(["profile=smoke", "registry.metric=foo"]))


def test_own_file_splits_by_its_own_length_and_scores_mase_by_its_own_frequency(store, tmp_path):
    # the README's promise, without a smoke profile: 6,000 hourly rows once asked for the ETT paper's 14,400
    from skewfree.data import load_ett
    hourly = load_ett(max_rows=6000).query("series_id == 'ETTh1'")[["date", "OT"]].rename(columns={"OT": "y"})
    hourly.to_csv(tmp_path / "hourly.csv", index=False)
    result = train(compose_config(["model=nlinear_ls", "data=file", f"data.path={tmp_path / 'hourly.csv'}", "data.id_col=null",
                                   "data.target=y", "mlflow.registered_model=own-hourly", "mlflow.experiment=own-hourly"]))
    params = mlflow.get_run(result.run_id).data.params
    assert (params["split.train_rows"], params["split.val_rows"], params["split.test_rows"], params["mase_season"]) == ("4200", "600", "1200", "24")
    daily = sales()
    daily.to_csv(tmp_path / "daily.csv", index=False)
    result = train(compose_config(["model=nlinear_ls", "data=file", f"data.path={tmp_path / 'daily.csv'}", "data.time_col=day", "data.target=units",
                                   "data.id_col=store", "mlflow.registered_model=own-daily", "mlflow.experiment=own-daily"]))
    params = mlflow.get_run(result.run_id).data.params
    assert (params["split.train_rows"], params["split.val_rows"], params["split.test_rows"], params["mase_season"]) == ("770", "110", "220", "7")


@pytest.mark.parametrize("model", ["nlinear", "nlinear_ls", "tft", "xgboost", "seasonal_naive"])
def test_every_model_trains_on_a_one_column_file_through_config_alone(store, tmp_path, model):
    # `data=file` gives no covariates and no calendar: each model drops the roles the data does not give (#29)
    from skewfree.data import load_ett
    one = load_ett(max_rows=1000).query("series_id == 'ETTh1'")[["date", "OT"]].rename(columns={"OT": "y"})
    one.to_csv(tmp_path / "one.csv", index=False)
    result = train(compose_config([f"model={model}", "profile=smoke", "data=file", f"data.path={tmp_path / 'one.csv'}", "data.id_col=null",
                                   "data.target=y", "mlflow.registered_model=one-column"]))
    assert result.forecaster.preprocessor.columns == ["date", "y"]  # nothing else is read
    forecast = result.forecaster.predict(one.tail(result.forecaster.history_length), 6)
    assert {"date", "forecast"} <= set(forecast.columns) and len(forecast) == 6 and forecast.forecast.notna().all()
    assert np.isfinite(result.metrics["mse_std"])


def test_a_model_of_one_series_answers_its_bands_on_both_routes(store, tmp_path):
    # a file without an id column: the answer's one series must come back with its bands, never its id among them
    import httpx
    from conftest import Server, exact_json_body
    from skewfree.data import load_ett
    one = load_ett(max_rows=1000).query("series_id == 'ETTh1'")[["date", "OT"]]
    one.to_csv(tmp_path / "one.csv", index=False)
    result = train(compose_config(["model=nlinear_ls", "profile=smoke", "data=file", f"data.path={tmp_path / 'one.csv'}", "data.id_col=null",
                                   "data.target=OT", "mlflow.registered_model=one-series"]))
    history = one.tail(result.forecaster.history_length)
    offline = result.forecaster.predict(history, 4, [0.1, 0.9])
    srv = Server(result.model_uri, store, "--workers", "0")
    try:
        typed = {"series": [{"id": "mine", "timestamps": history.date.astype(str).tolist(), "target": history.OT.tolist()}],
                 "horizon": 4, "quantiles": [0.1, 0.9]}
        answer = httpx.post(f"{srv.url}/predict", json=typed, timeout=60)
        assert answer.status_code == 200, answer.text
        (series,) = answer.json()["series"]
        assert series["id"] == "mine" and series["forecast"] == offline.forecast.tolist()
        assert series["quantiles"] == {"q0.1": offline["q0.1"].tolist(), "q0.9": offline["q0.9"].tolist()}
        body = json.loads(exact_json_body(history, 4))
        body["params"]["quantiles"] = [0.1, 0.9]
        split = httpx.post(f"{srv.url}/invocations", json=body, timeout=60)
        assert split.status_code == 200, split.text
        assert [row["q0.9"] for row in split.json()["predictions"]] == offline["q0.9"].tolist()
    finally:
        srv.stop()


def test_series_written_in_their_own_utc_offsets_train_as_the_panel_reads_them(store, tmp_path):
    frame = sales()  # pandas parses a column of several offsets only as instants: every step that orders rows reads them as the panel does
    frame["day"] = frame.day + np.where(frame.store == "north", "T00:00:00+01:00", "T00:00:00+05:30")
    path = tmp_path / "offsets.csv"
    frame.to_csv(path, index=False)
    result = train(compose_config(["model=seasonal_naive", "profile=smoke", "data=file", f"data.path={path}", "data.time_col=day",
                                   "data.target=units", "data.id_col=store", "mlflow.registered_model=own-data-offsets"]))
    assert list(result.forecaster.preprocessor.series_) == ["north", "south"] and np.isfinite(result.metrics["mse_std"])


def test_daily_times_written_in_a_daylight_saving_zones_own_offsets_train_with_that_zone_named(store, tmp_path):
    frame = sales()  # as pandas writes a Berlin column: +01:00 in winter, +02:00 in summer
    frame["day"] = pd.to_datetime(frame.day).dt.tz_localize("Europe/Berlin").astype(str)
    path = tmp_path / "berlin.csv"
    frame.to_csv(path, index=False)
    overrides = ["model=seasonal_naive", "profile=smoke", "data=file", f"data.path={path}", "data.time_col=day", "data.target=units",
                 "data.id_col=store", "mlflow.registered_model=own-data-berlin"]
    with pytest.raises(InputError, match=r"set data.timezone \(e.g. Europe/Berlin\)"):  # without the zone: read in one offset, and told how
        train(compose_config(overrides))
    result = train(compose_config([*overrides, "data.timezone=Europe/Berlin"]))
    forecast = result.forecaster.predict(frame.groupby("store").tail(result.forecaster.history_length), 7)
    assert (pd.to_datetime(forecast.day).dt.strftime("%H:%M") == "00:00").all()  # every day at its local midnight, summer and winter
    assert pd.to_datetime(forecast.day).max() == pd.Timestamp("2023-01-01") + pd.Timedelta(days=1100 + 6)
    # the same zone's times in a Parquet file (a datetime signature, which MLflow's cast reads in one offset only): a request in the
    # zone's own offsets, across a clock change, is answered on /invocations as the naive local times are (attack review: it was a 400)
    from skewfree.serving.codec import request_body
    from skewfree.serving.pipeline import answer_invocation, hydrate
    aware = frame.assign(day=pd.to_datetime(frame.day, utc=True).dt.tz_convert("Europe/Berlin"))
    aware.to_parquet(parquet := tmp_path / "berlin.parquet", index=False)
    typed = train(compose_config([*overrides, f"data.path={parquet}", "data.timezone=Europe/Berlin", "mlflow.registered_model=own-data-berlin-pq"]))
    loaded = hydrate(typed.model_uri)
    recent = aware[aware.day <= pd.Timestamp("2025-10-28", tz="Europe/Berlin")].groupby("store").tail(typed.forecaster.history_length)
    offsets = recent.assign(day=recent.day.map(pd.Timestamp.isoformat))
    assert offsets.day.str[-6:].nunique() == 2  # summer and winter
    local = recent.assign(day=recent.day.dt.tz_localize(None).astype(str))
    answers = [json.loads(answer_invocation(loaded, request_body(rows, {"horizon": 7}).encode())[0]) for rows in (offsets, local)]
    assert answers[0] == answers[1] and len(answers[0]["predictions"]) == 14


def test_business_days_with_holidays_train_on_business_days(store, tmp_path):
    # a holiday is a gap in business days, not a sign the data is daily with every weekend missing (28 % invented, refused)
    days = pd.bdate_range("2022-01-03", periods=1100)
    holidays = days[50::100]
    frame = sales().assign(day=lambda f: np.tile(days.strftime("%Y-%m-%d"), 2))
    frame = frame[~frame.day.isin(holidays.strftime("%Y-%m-%d"))]
    frame.to_csv(tmp_path / "business.csv", index=False)
    result = train(compose_config(["model=nlinear_ls", "profile=smoke", "data=file", f"data.path={tmp_path / 'business.csv'}", "data.time_col=day",
                                   "data.target=units", "data.id_col=store", "data.unknown_series=own_history",
                                   "mlflow.registered_model=own-business"]))
    assert list(result.forecaster.preprocessor.spacing.freq_) == ["B", "B"]
    run = mlflow.get_run(result.run_id)
    assert run.data.params["mase_season"] == "5" and run.data.metrics["inserted_gap_rows"] == 2 * 10  # the smoke's 1000 rows hold 10 holidays
    forecast = result.forecaster.predict(frame.groupby("store").tail(result.forecaster.history_length), 5)
    assert (forecast.day.dt.day_of_week < 5).all() and forecast.day.iloc[0] == pd.Timestamp("2026-03-23")  # the Monday after the last Friday
    # a store the model never saw brings a holiday too: held to business days, its gap counted, where it was refused as irregular
    newcomer = frame[frame.store == "north"].tail(result.forecaster.history_length + 60).assign(store="east")
    assert len(pd.bdate_range(newcomer.day.iloc[0], newcomer.day.iloc[-1])) > len(newcomer)  # a holiday among its rows
    batch = result.forecaster.preprocessor.transform(newcomer)
    assert batch.freqs.tolist() == ["B"] and batch.report["east"]["reindexed_rows"] >= 1
    assert (result.forecaster.predict(newcomer, 5).day.dt.day_of_week < 5).all()


def test_holidays_at_a_splits_start_train_and_a_weekly_closing_day_is_refused_before_any_model_is_logged(store, tmp_path):
    from pandas.tseries.holiday import USFederalHolidayCalendar
    # US federal holidays among business days, the smoke's validation span starting the day after New Year: its first windows'
    # pasts hold fewer rows than the look-back's steps. Training died in calibration ("needs at least 48 rows, got 44"; attack review)
    days = pd.bdate_range("2019-01-01", "2026-12-31")
    end = days[days.get_loc(pd.Timestamp("2023-01-03")) + 399]  # smoke: the newest 1000 steps, validation from step 600
    days = days[days <= end][-1150:]
    days = days[~days.isin(USFederalHolidayCalendar().holidays(days[0], days[-1]))]
    frame = sales(len(days)).assign(day=np.tile(days.strftime("%Y-%m-%d"), 2))
    frame.to_csv(path := tmp_path / "holidays.csv", index=False)
    base = ["model=nlinear_ls", "profile=smoke", "data=file", "data.time_col=day", "data.target=units", "data.id_col=store"]
    result = train(compose_config([*base, f"data.path={path}", "mlflow.registered_model=own-holidays"]))
    assert list(result.forecaster.preprocessor.spacing.freq_) == ["B", "B"] and result.forecaster.intervals is not None
    # a daily file closed every Sunday: 1 step in 7 made up, which training repairs (under 25 %) but serving never would (5 %).
    # It registered a model that refused every request, its own example too; now refused before any model is logged
    daily = sales(1200)
    daily[pd.to_datetime(daily.day).dt.day_of_week != 6].to_csv(closed := tmp_path / "closed.csv", index=False)
    client = mlflow.MlflowClient()
    for missing in ("interpolate", "ffill"):
        with pytest.raises(InputError, match="every one of the .* calibration windows holds more repaired values"):
            train(compose_config([*base, f"data.path={closed}", f"data.missing={missing}", "mlflow.registered_model=own-closed"]))
    assert not client.search_registered_models("name='own-closed'")


def test_a_constant_series_is_left_out_of_mase_and_counted(store, tmp_path, caplog):
    # its seasonal naive never errs in-sample: a MASE scale of 0 made test_mase infinite, with no word of why
    frame = sales()
    frame.loc[frame.store == "south", "units"] = 40.0
    frame.to_csv(tmp_path / "flat.csv", index=False)
    result = train(compose_config(["model=seasonal_naive", "profile=smoke", "data=file", f"data.path={tmp_path / 'flat.csv'}", "data.time_col=day",
                                   "data.target=units", "data.id_col=store", "mlflow.registered_model=own-flat"]))
    assert np.isfinite(result.metrics["mase"]) and result.metrics["mase_unscaled_series"] == 1
    assert "1 series have no MASE scale" in caplog.text and "test_mase is over the other series" in caplog.text
    caplog.clear()  # nested CV says it too, of its folds
    nested = train(compose_config(["model=seasonal_naive", "profile=smoke", "cv=nested", "cv.progress=false", "data=file", f"data.path={tmp_path / 'flat.csv'}",
                                   "data.time_col=day", "data.target=units", "data.id_col=store", "mlflow.registered_model=own-flat"]))
    assert np.isfinite(nested.metrics["cv_mase"]) and "cv_mase is over the other series (metric fold_mase_unscaled_series)" in caplog.text


def test_a_short_series_that_sets_the_share_split_is_named(store, tmp_path, caplog):
    # shares of a split are shares of the shortest series: every longer series loses its oldest rows to it, so it is named
    frame = sales(2200)
    frame = frame[(frame.store == "north") | (frame.groupby("store").cumcount() >= 200)]  # 'south' opened later
    frame.to_csv(tmp_path / "short.csv", index=False)
    result = train(compose_config(["model=seasonal_naive", "data=file", f"data.path={tmp_path / 'short.csv'}", "data.time_col=day",
                                   "data.target=units", "data.id_col=store", "mlflow.registered_model=own-short"]))
    run = mlflow.get_run(result.run_id)
    assert (run.data.params["split.train_rows"], run.data.metrics["unused_rows"]) == ("1400", 200)
    assert ("newest 2000 rows, as many as its shortest series, 'south', has (train it apart, or leave it out, to fit the others on all their "
            "rows); the rows before them") in caplog.text
    # counted from each series' end, both stores are tested on the same days, the latest (counted from the start, north's were 200 days older)
    scored = json.loads(mlflow.MlflowClient().get_model_version("own-short", result.version).tags["scored_on"])["span"]
    assert scored[1] == frame.day.max()[:10] + " 00:00:00" and "skewfree.split_overlap" not in run.data.tags
    # a store that closed earlier instead: north is learnt from days after south's test rows begin, which the run says and records
    closed = sales(2200)
    closed = closed[(closed.store == "north") | (closed.groupby("store").cumcount() < 2000)]
    closed.to_csv(tmp_path / "closed.csv", index=False)
    caplog.clear()
    result = train(compose_config(["model=seasonal_naive", "data=file", f"data.path={tmp_path / 'closed.csv'}", "data.time_col=day",
                                   "data.target=units", "data.id_col=store", "mlflow.registered_model=own-short"]))
    said = mlflow.get_run(result.run_id).data.tags["skewfree.split_overlap"]
    assert said.startswith("series 'north' is learnt from up to 2027-12-05 00:00:00, after series 'south' is scored from 2027-05-20"), said
    assert "the split's scores may be optimistic" in caplog.text and "the series do not end together" in said


def test_a_file_mixing_hourly_and_daily_series_is_refused_by_name(store, tmp_path):
    # one model, one MASE season: a daily series among hourly ones would train on two meanings of a step
    hourly = sales(1100).query("store == 'north'").assign(day=lambda f: pd.date_range("2023-01-01", periods=1100, freq="h").strftime("%Y-%m-%d %H:%M"))
    frame = pd.concat([hourly, hourly.assign(store="east"), sales(1100).query("store == 'south'")])
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(InputError, match=r"this series is on '24h', not the frequency 'h' that 2 of 3 series are on: one model learns .*series 'south'"):
        train(compose_config(["model=seasonal_naive", "profile=smoke", "data=file", f"data.path={tmp_path / 'mixed.csv'}", "data.time_col=day",
                              "data.target=units", "data.id_col=store", "mlflow.registered_model=own-mixed"]))
    assert mlflow.MlflowClient().search_model_versions("name='own-mixed'") == []


def test_the_seasonal_naive_season_is_read_from_the_rows_the_run_learns_from(store, tmp_path):
    # a gap before the smoke's newest 1000 rows is in no row the run reads: it must not decide the season, nor stop the run (review of #29)
    frame = sales()
    frame = frame.drop(frame.index[frame.store == "north"][50])
    frame.to_csv(tmp_path / "late_gap.csv", index=False)
    overrides = ["model=seasonal_naive", "profile=smoke", "data=file", f"data.path={tmp_path / 'late_gap.csv'}", "data.time_col=day",
                 "data.target=units", "data.id_col=store", "data.gaps=error", "mlflow.registered_model=own-late-gap"]
    assert train(compose_config(overrides)).forecaster.history_length == 7
    # nested CV tunes it between the data's own cycles, a week or a year of days, not between 24 and 168 days
    sales().to_csv(tmp_path / "whole.csv", index=False)
    nested = train(compose_config([*overrides, "cv=nested", "cv.progress=false", f"data.path={tmp_path / 'whole.csv'}"]))
    params = mlflow.get_run(nested.run_id).data.params
    assert params["search.model.hyperparameters.season_length.choices"] == "[7, 364]", {k: v for k, v in params.items() if "season" in k}
    assert nested.forecaster.history_length in (7, 364)


def test_a_file_of_whole_counts_and_numbered_stores_is_served_a_missing_count_a_numbered_store_and_a_semicolon_body(store, tmp_path):
    from fastapi.testclient import TestClient
    from skewfree.serving.app import create_app
    frame = sales().assign(store=lambda f: f.store.map({"north": 1, "south": 2}), units=lambda f: f.units.round().astype(int))
    frame.drop(columns="promo").to_csv(tmp_path / "counts.csv", index=False)
    result = train(compose_config(["model=nlinear_ls", "profile=smoke", "data=file", f"data.path={tmp_path / 'counts.csv'}", "data.time_col=day",
                                   "data.target=units", "data.id_col=store"]))
    assert result.model_uri.startswith("models:/skewfree-counts-smoke/")  # the file's own name, never the ETT model's
    signed = {s.name: s.type.name for s in mlflow.models.get_model_info(result.model_uri).signature.inputs.inputs}
    assert signed == {"store": "string", "day": "string", "units": "double"}, signed  # counts may be missing in a request
    history = frame.groupby("store").tail(result.forecaster.history_length)
    rows = [[int(s), d, None if k == 10 else int(u)] for k, (s, d, u) in enumerate(history[["store", "day", "units"]].itertuples(index=False))]
    client = TestClient(create_app(result.model_uri))
    answer = client.post("/invocations", json={"dataframe_split": {"columns": ["store", "day", "units"], "data": rows}, "params": {"horizon": 3}})
    assert answer.status_code == 200, answer.text  # a numbered store, a missing count: read and repaired as a file's are
    assert {p["store"] for p in answer.json()["predictions"]} == {"1", "2"} and "filled_units" in answer.headers["skewfree-repaired"]
    one = history[history.store == 1]
    typed = {"series": [{"id": 1, "timestamps": one.day.tolist(), "target": one.units.astype(float).tolist()}], "horizon": 3}
    answer = client.post("/predict", json=typed)
    assert answer.status_code == 200 and answer.json()["series"][0]["id"] == "1", answer.text  # the typed route reads it so too
    semicolons = history[["store", "day", "units"]].to_csv(index=False, sep=";").encode()
    refused = client.post("/invocations", content=semicolons, headers={"Content-Type": "text/csv"})
    assert refused.status_code == 400 and "the CSV body reads as one column, 'store;day;units': its fields are separated by ';'" in \
        refused.json()["error"]["reason"], refused.text


def test_a_daily_files_drift_sees_its_newest_rows_and_recalibrate_measures_the_windows_it_holds(store, tmp_path):
    bin_dir = Path(sys.executable).parent
    def cli(*args):
        return subprocess.run([str(bin_dir / "skewfree"), *args], env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True,
                              timeout=300, check=False)
    frame = sales().drop(columns="promo")
    frame.to_csv(tmp_path / "daily.csv", index=False)
    result = train(compose_config(["model=nlinear_ls", "profile=smoke", "data=file", f"data.path={tmp_path / 'daily.csv'}", "data.time_col=day",
                                   "data.target=units", "data.id_col=store"]))
    newest = frame.groupby("store").cumcount() >= frame.groupby("store").day.transform("size") - result.forecaster.max_horizon
    frame.assign(units=frame.units.where(~newest, frame.units * 3)).to_csv(tmp_path / "newest.csv", index=False)
    # one request a day of daily rows (not every 24th row), to each series' end: the newest rows are requests too
    same, moved = (cli("drift", "--model-uri", result.model_uri, "--data", str(tmp_path / name), "--json") for name in ("daily.csv", "newest.csv"))
    assert same.returncode == 0 and json.loads(same.stdout)["drifting"] == [], same.stdout + same.stderr
    same, moved = json.loads(same.stdout), json.loads(moved.stdout)
    assert same["requests_seen"] == 2 * (1100 - result.forecaster.history_length + 1)  # the last request ends at each series' last row
    # the whole file is judged, its newest rows a small share of it: they move the statistics, where they used to be unread
    assert all(moved["features"][f]["statistic"] > same["features"][f]["statistic"] for f in ("units", "level(units)")), (same, moved)
    # the default 1440 windows are two months of hours: a daily file holds fewer, and all it holds is measured, said so
    done = cli("recalibrate", "--model-uri", result.model_uri, "--data", str(tmp_path / "daily.csv"))
    assert done.returncode == 0 and "fewer than the default 1440: the bands are measured on its latest" in done.stderr, done.stdout + done.stderr


def test_a_whole_number_static_is_signed_as_a_number_so_a_row_may_leave_it_out(store, tmp_path):
    from fastapi.testclient import TestClient
    from skewfree.serving.app import create_app
    frame = sales().drop(columns="promo").assign(size=lambda f: f.store.map({"north": 100, "south": 250}))
    frame.to_csv(tmp_path / "sized.csv", index=False)
    result = train(compose_config(["model=xgboost", "profile=smoke", "data=file", f"data.path={tmp_path / 'sized.csv'}", "data.time_col=day",
                                   "data.target=units", "data.id_col=store", "data.covariates.static=[size]", "model.covariates=[static]"]))
    signed = {s.name: s.type.name for s in mlflow.models.get_model_info(result.model_uri).signature.inputs.inputs}
    assert signed["size"] == "double", signed  # as numbers are: 100 and 100.0 are one size
    history = frame.groupby("store").tail(result.forecaster.history_length)
    rows = history[["store", "day", "units", "size"]].astype(object).to_numpy().tolist()
    client = TestClient(create_app(result.model_uri))
    def post(data): return client.post("/invocations", json={"dataframe_split": {"columns": ["store", "day", "units", "size"], "data": data},
                                                             "params": {"horizon": 3}})
    answered = post(rows)
    assert answered.status_code == 200, answered.text
    assert [p["forecast"] for p in answered.json()["predictions"]] == result.forecaster.predict(history, 3).forecast.tolist()
    offered = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    example = offered["input_example"]["value"]  # /docs' typed example carries each series' size
    assert {s["id"]: s["static_covariates"] for s in example["series"]} == {"north": {"size": 100.0}, "south": {"size": 250.0}}, example
    assert client.post("/predict", json=example).status_code == 200
    rows[5][3] = None  # a static given on some of a series' rows is that series' value, as at training: answered the same
    assert post(rows).json()["predictions"] == answered.json()["predictions"]
    for row in rows:
        if row[0] == "north": row[3] = None
    refused = post(rows).json()["error"]  # none given: refused by the preprocessor, naming the series, not by a cast to int64
    assert (refused["field"], refused["series"]) == ("size", "north") and "exactly one value per series, got 0" in refused["reason"], refused
