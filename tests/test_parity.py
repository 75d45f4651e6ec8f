"One raw window, three paths: the training process, a fresh `mlflow.pyfunc.load_model`, and HTTP. Identical to the bit."
from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pandas as pd
from conftest import exact_json_body

from skewfree.data import load_ett


def window(forecaster, end: int) -> pd.DataFrame:
    "The `history_length` raw rows of each series ending at row `end`, straight from the loader."
    raw = load_ett(max_rows=end)
    return raw.groupby("series_id").tail(forecaster.history_length).reset_index(drop=True)


def test_training_process_fresh_process_and_http_agree(trained, server, store, tmp_path):
    forecaster, horizon = trained.forecaster, trained.forecaster.max_horizon
    history = window(forecaster, end=930)  # inside the smoke test span: never a training target
    in_process = forecaster.predict(history, horizon)

    history.to_parquet(tmp_path / "history.parquet")
    script = (f"import mlflow, pandas as pd; m = mlflow.pyfunc.load_model({trained.model_uri!r}); "
              f"m.predict(pd.read_parquet({str(tmp_path / 'history.parquet')!r}), params={{'horizon': {horizon}}})"
              f".to_parquet({str(tmp_path / 'fresh.parquet')!r})")
    subprocess.run([sys.executable, "-c", script], check=True, env={"MLFLOW_TRACKING_URI": store, "PATH": ""}, timeout=300)
    fresh = pd.read_parquet(tmp_path / "fresh.parquet")

    answer = httpx.post(f"{server.url}/invocations", content=exact_json_body(history, horizon),
                        headers={"Content-Type": "application/json"}, timeout=60)
    assert answer.status_code == 200, answer.text
    http = pd.DataFrame(answer.json()["predictions"]).assign(date=lambda d: pd.to_datetime(d.date).astype("datetime64[ns]"))

    assert len(in_process) == 2 * horizon
    for other in (fresh, http):
        assert other.series_id.tolist() == in_process.series_id.tolist()
        assert (other.date.to_numpy() == in_process.date.to_numpy()).all()
        assert np.max(np.abs(other.forecast.to_numpy() - in_process.forecast.to_numpy())) == 0.0


def test_forecast_starts_after_history_and_is_in_original_units(trained):
    forecaster = trained.forecaster
    history = window(forecaster, end=930)
    forecast = forecaster.predict(history, 5)
    last = history.groupby("series_id").date.max()
    first = forecast.groupby("series_id").date.min()
    assert (first == last + pd.Timedelta("1h")).all()
    # original units: oil temperature in °C, not standardised values near 0
    assert forecast.forecast.abs().mean() > 3
