"The factories: every model reproducible to the bit, every search space applicable, a model added from outside."
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from skewfree.config import compose_config, params_dir
from skewfree.data import load_ett
from skewfree.evaluate import refit_rows, temporal_split
from skewfree.forecaster import Forecaster, data_decided
from skewfree.models import MODELS, build_model, point_booster
from skewfree.train import train

MODEL_NAMES = ["nlinear", "nlinear_ls", "tft", "xgboost", "seasonal_naive"]


def fit_and_forecast(name: str):
    raw = load_ett(max_rows=1000)
    cfg = data_decided(compose_config([f"model={name}", "profile=smoke"]), raw)
    forecaster = Forecaster.from_config(cfg)
    train_rows, val_rows, test_rows = temporal_split(raw, cfg.cv, forecaster)
    forecaster.fit(train_rows, val_rows)
    history = test_rows.groupby("series_id").head(forecaster.history_length)
    return forecaster.predict(history, min(12, forecaster.max_horizon))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_config_and_seed_give_a_bit_identical_forecast(name):
    first, second = fit_and_forecast(name), fit_and_forecast(name)
    assert first.equals(second), (first.compare(second) if first.shape == second.shape else "shapes differ")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_search_space_key_is_a_config_key_the_model_accepts(name):
    space = data_decided(compose_config([f"model={name}"]), load_ett(max_rows=100)).search  # seasonal naive's choices: the data's
    assert len(space) > 0
    for key, dist in space.items():
        value = dist.choices[-1] if dist.type == "categorical" else dist.high
        cfg = compose_config([f"model={name}", "profile=smoke", f"{key}={value}"])
        built = build_model(cfg)  # raises if the model refuses the value
        assert built.model is not None


def test_a_model_registered_from_outside_trains_and_packages_through_the_unchanged_pipeline(store, tmp_path):
    # a plugin: darts' DLinear registered by a module that is not part of skewfree
    plugin = tmp_path / "dlinear_plugin.py"
    plugin.write_text(textwrap.dedent('''
        from skewfree.models import register_model

        @register_model("dlinear", family="torch")
        def build_dlinear(hyperparameters, training):
            from darts.models import DLinearModel
            return DLinearModel(**hyperparameters, **training.model_kwargs)
    '''))
    params = tmp_path / "params"
    shutil.copytree(params_dir(), params)
    (params / "model" / "dlinear.yaml").write_text("name: dlinear\ncovariates: []\nhyperparameters:\n  input_chunk_length: 48\n"
                                                   "  output_chunk_length: 24\n  kernel_size: 25\ntrainer: {}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import dlinear_plugin  # noqa: F401
        cfg = compose_config(["model=dlinear", "profile=smoke", "mlflow.registered_model=plugin-model"], config_dir=params)
        result = train(cfg)
    finally:
        sys.path.remove(str(tmp_path))
        MODELS.pop("dlinear", None)
    assert type(result.forecaster.model).__name__ == "DLinearModel"
    # served from a fresh process that has never imported the plugin: the artifact carries what it needs
    script = (f"import mlflow; m = mlflow.pyfunc.load_model({result.model_uri!r}); "
              "print(len(m.predict(m.input_example, params={'horizon': 5})))")
    done = subprocess.run([sys.executable, "-c", script], env={"MLFLOW_TRACKING_URI": store, "PATH": ""}, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "10"
    assert mlflow.get_run(result.run_id).data.tags["skewfree.model"] == "dlinear"


def test_params_model_files_match_the_registry():
    files = sorted(p.stem for p in (Path(params_dir()) / "model").glob("*.yaml"))
    assert files == sorted(MODELS) == sorted(MODEL_NAMES)
    for name in files:
        assert compose_config([f"model={name}"]).model.name == name


@pytest.mark.parametrize("name", ["nlinear", "xgboost", "seasonal_naive"])
def test_the_learning_curve_is_what_the_fit_saw(name):
    raw = load_ett(max_rows=1000)
    cfg = data_decided(compose_config([f"model={name}", "profile=smoke"]), raw)
    forecaster = Forecaster.from_config(cfg)
    train_rows, val_rows, _ = temporal_split(raw, cfg.cv, forecaster)
    curve = forecaster.fit(train_rows, val_rows).learning_curve
    if name == "seasonal_naive":
        assert curve == []  # nothing is learnt: no curve, no picture
        return
    assert [row["epoch"] for row in curve] == list(range(1, len(curve) + 1)) and all("val_loss" in row for row in curve)
    if name == "nlinear":  # one row per epoch trained, the epoch's mean training loss beside the validation loss; the refit repeats the best
        best = 1 + min(range(len(curve)), key=lambda i: curve[i]["val_loss"])
        assert forecaster.refit_overrides()["model.trainer.max_epochs"] == best and all(row["train_loss"] > 0 for row in curve)
    else:  # one row per boosting round of the point forecast's booster, on the validation span darts evaluates
        booster = point_booster(forecaster.model)
        assert int(booster.best_iteration) + 1 <= len(curve) <= booster.n_estimators


def test_a_torch_fit_ends_with_its_best_validation_epoch_s_weights():
    def fit(epochs: int) -> Forecaster:  # a learning rate at which the validation loss rises again, no decay; the CPU: bit-identical
        cfg = compose_config(["model=nlinear", "profile=smoke", f"trainer.torch.max_epochs={epochs}", f"trainer.torch.patience={epochs}",
                              "trainer.torch.learning_rate=0.05", "trainer.torch.lr_decay=1.0", "trainer.torch.accelerator=cpu"])
        forecaster = Forecaster.from_config(cfg)
        train_rows, val_rows, _ = temporal_split(load_ett(max_rows=1000), cfg.cv, forecaster)
        return forecaster.fit(train_rows, val_rows)

    def forecast(forecaster: Forecaster):
        return forecaster.predict(load_ett(max_rows=1000).groupby("series_id").tail(forecaster.history_length), 12)

    longer = fit(3)
    losses = [row["val_loss"] for row in longer.learning_curve]
    best = 1 + losses.index(min(losses))
    assert len(losses) == 3 and best < 3  # the premise: the last epoch is not the best
    assert longer.refit_overrides() == {"model.trainer.max_epochs": best}  # the refit trains as long as the best epoch
    # same seed, same batches: the 3-epoch fit restored the best epoch's weights, which a fit of that many epochs ended with
    pd.testing.assert_frame_equal(forecast(longer), forecast(fit(best)))


@pytest.mark.parametrize("name, roles", [("xgboost", "[]"), ("tft", "[past]")])
def test_a_model_fed_fewer_covariate_roles_than_the_data_gives_trains_and_forecasts(name, roles):
    # ETT gives load columns and a calendar; the config leaves some out, and the model is built without them (#29 review)
    cfg = compose_config([f"model={name}", "profile=smoke", f"model.covariates={roles}"])
    forecaster = Forecaster.from_config(cfg)
    train_rows, val_rows, test_rows = temporal_split(load_ett(max_rows=1000), cfg.cv, forecaster)
    forecaster.fit(train_rows, val_rows)
    forecast = forecaster.predict(test_rows.groupby("series_id").head(forecaster.history_length), 6)
    assert len(forecast) == 12 and forecast.forecast.notna().all()


def test_a_request_of_history_length_rows_feeds_the_oldest_covariate_lag():
    # the past covariates' lags reach further back than the target's: a request of `history_length` rows must still serve
    cfg = compose_config(["model=xgboost", "profile=smoke", "model.hyperparameters.lags=24", "model.hyperparameters.lags_past_covariates=40"])
    forecaster = Forecaster.from_config(cfg)
    assert forecaster.history_length == 40
    train_rows, val_rows, test_rows = temporal_split(load_ett(max_rows=1000), cfg.cv, forecaster)
    forecaster.fit(train_rows, val_rows)
    forecast = forecaster.predict(test_rows.groupby("series_id").head(forecaster.history_length), 6)
    assert len(forecast) == 12 and forecast.forecast.notna().all()


def blend_forecast(look_backs: str):
    cfg = compose_config(["model=nlinear_ls", "profile=smoke", "model.hyperparameters.input_chunk_length=72", f"trainer.least_squares.look_backs={look_backs}"])
    forecaster, raw = Forecaster.from_config(cfg), load_ett(max_rows=1000)
    train_rows, val_rows, test_rows = temporal_split(raw, cfg.cv, forecaster)
    forecaster.fit(train_rows, val_rows)
    return forecaster, refit_rows(raw, cfg.cv, forecaster), test_rows.groupby("series_id").head(forecaster.history_length)


def test_a_blend_of_look_backs_trains_refits_and_forecasts_as_one_nlinear():
    blend, seen, history = blend_forecast("[24,48,72]")
    assert blend.history_length == 72 and blend.kernel is not None  # one NLinear reading the longest look-back, on the NumPy runtime
    final = blend.refitted(seen)
    assert final.config["trainer"]["least_squares"]["look_backs"] == [24, 48, 72]
    assert len(final.config["model"]["trainer"]["member_ridges"]) == 3  # each member's ridge, as chosen: no validation rows needed
    single, _, _ = blend_forecast("[72]")
    plain, _, _ = blend_forecast("null")
    assert single.predict(history, 24).equals(plain.predict(history, 24))  # one look-back is the plain model, bit for bit
    assert not blend.predict(history, 24).equals(plain.predict(history, 24))
    assert final.predict(history, 24)["forecast"].notna().all()
