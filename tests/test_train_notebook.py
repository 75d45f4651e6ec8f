"The training notebook runs under papermill from the project root and prints a servable model URI."
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from skewfree.config import compose_config
from skewfree.core import InputError
from skewfree.data import load_ett
from skewfree.train import train

ROOT = Path(__file__).resolve().parent.parent


def papermill(out: Path, *args: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "nbs" / "train.ipynb"), str(out), *args],
                          cwd=ROOT, env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True, timeout=600, check=False)


# nlinear by default (the README's command); every model trains through the same code in test_own_data and test_models
@pytest.mark.parametrize("model", ["nlinear", *(pytest.param(m, marks=pytest.mark.slow) for m in ["nlinear_ls", "tft", "xgboost", "seasonal_naive"])])
def test_smoke_run_prints_a_model_uri_that_serves(store, tmp_path, model):
    overrides = "profile=smoke" if model == "seasonal_naive" else '["profile=smoke"]'  # one override may come bare, not as a list
    done = papermill(tmp_path / "smoke.ipynb", "-p", "model", model, "-p", "overrides", overrides, store=store)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (tmp_path / "smoke.ipynb").read_text()
    uris = re.findall(r"MODEL_URI=(models:/[^\"\\\s]+)", text)
    assert len(uris) == 1
    assert "IProgress" not in text and "Traceback" not in text  # no warning wall, no red box
    if model in ("nlinear", "tft"): assert re.search(r"epoch 1/\d+  train_loss [\d.e-]+  val_loss", text), text[-3000:]  # progress as it trains
    served = mlflow.pyfunc.load_model(uris[0])
    forecast = served.predict(served.input_example, params={"horizon": 4})
    assert list(forecast.columns)[:3] == ["series_id", "date", "forecast"] and len(forecast) == 8
    assert mlflow.get_run(mlflow.MlflowClient().get_model_version("skewfree-ett-smoke", uris[0].rsplit("/", 1)[1]).run_id).data.tags["skewfree.model"] == model


def test_unknown_model_fails_naming_the_registered_ones(store, tmp_path):
    done = papermill(tmp_path / "bad.ipynb", "-p", "model", "prophet", store=store)
    assert done.returncode != 0
    assert "nlinear" in done.stderr


@pytest.mark.parametrize("breakage, column", [
    (lambda df: df.drop(columns="OT"), "OT"),
    (lambda df: df.drop(columns="date"), "date"),
    (lambda df: df.astype({"date": str}).assign(date=lambda d: d.date.where(d.index != 7, "31/02/2017 25:00")), "date"),
])
def test_training_on_bad_frames_names_the_column(store, breakage, column):
    with pytest.raises(InputError) as err:
        train(compose_config(["profile=smoke"]), data=breakage(load_ett(max_rows=1000)))
    assert err.value.field == column
    assert column in str(err.value)
