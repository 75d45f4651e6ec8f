"A model's life in the registry: what rollback rejects stays rejected, a smoke model never becomes another name's champion, and moves never act on stale state."
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from skewfree.registry import RECALIBRATED_FROM, REJECTED, RESTORED, promote, register, rollback
from skewfree.config import compose_config
from skewfree.core import InputError
from skewfree.data import load_ett
from skewfree.train import train

BIN = Path(sys.executable).parent


def cli(*args: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "skewfree"), *args], env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True,
                          timeout=300, check=False)


def last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


@pytest.fixture(scope="module")
def naive(store):
    "A smoke seasonal naive (seconds to train), registered under a name of its own."
    return train(compose_config(["profile=smoke", "model=seasonal_naive", "mlflow.registered_model=lifecycle-naive"]))


def versions_of(naive, name: str, *scores: float, tags: dict | None = None) -> list[str]:
    "The trained model registered again under `name`, once a score: only the registry's decisions are tested."
    recorded = mlflow.MlflowClient().get_model_version("lifecycle-naive", naive.version).tags
    return [register(naive.model_uri, name, {"test_mse_std": score, "test_coverage_90": 0.9}, ranked_by="test_mse_std",
                     scored_on=json.loads(recorded["scored_on"]), tags=tags)[0] for score in scores]


def champion(name: str) -> str:
    return str(mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version)


def rejected_second(naive, name: str) -> tuple[str, str]:
    "Version 1 champion, version 2 promoted over it by its score, then rolled back from: (first, rejected)."
    first, second = versions_of(naive, name, 0.5, 0.4)
    assert promote(name, margin=0.01)[0] and champion(name) == second
    rollback(name, to=first)
    return first, second


def test_recalibrate_registers_only_under_its_sources_name_and_never_from_a_rejected_version(naive, store, tmp_path):
    first, rejected = rejected_second(naive, "lc-recal")
    fitted = mlflow.pyfunc.load_model(naive.model_uri).unwrap_python_model().forecaster
    raw = load_ett(max_rows=1400)
    raw[pd.to_datetime(raw.date) > fitted.fitted_through - pd.Timedelta(hours=fitted.history_length)].to_csv(recent := tmp_path / "recent.csv", index=False)
    client = mlflow.MlflowClient()
    count = len(client.search_model_versions("name='lc-recal'"))
    # a recalibration of the rejected version would be a fresh challenger with its point forecast: refused, with the way to warrant it
    done = cli("recalibrate", "--model-uri", f"models:/lc-recal/{rejected}", "--data", str(recent), "--register", "lc-recal", store=store)
    assert done.returncode == 2 and last_line(done).startswith(
        f"skewfree recalibrate: --model-uri: version {rejected} of 'lc-recal' was rolled back from (rolled back to version {first} at"), done.stderr[-2000:]
    assert f"skewfree rollback --name lc-recal --to {rejected}" in last_line(done) and "Traceback" not in done.stderr
    # another name (a production name without a champion, where `register` would crown it): refused before any work
    done = cli("recalibrate", "--model-uri", "models:/lc-recal@champion", "--data", str(recent), "--register", "lc-production", store=store)
    said = "skewfree recalibrate: --register: must be 'lc-recal', the name models:/lc-recal@champion is registered under, got 'lc-production'"
    assert done.returncode == 2 and last_line(done).startswith(said), done.stderr[-2000:]
    assert "lc-production" not in {m.name for m in client.search_registered_models()}
    assert len(client.search_model_versions("name='lc-recal'")) == count and champion("lc-recal") == first


def test_promote_never_crowns_a_recalibration_of_a_rejected_version(naive, store):
    first, rejected = rejected_second(naive, "lc-chain")
    # recalibrated from the rejected version, then again: its scores beat the champion's, its point forecast is the rejected one's
    [once] = versions_of(naive, "lc-chain", 0.4, tags={RECALIBRATED_FROM: f"lc-chain/{rejected}"})
    [twice] = versions_of(naive, "lc-chain", 0.4, tags={RECALIBRATED_FROM: f"lc-chain/{once}"})
    promoted, why = promote("lc-chain", margin=0.01)
    assert not promoted and f"challenger version {twice} is a recalibration of version {rejected}, which was rolled back from" in why, why
    assert champion("lc-chain") == first


def test_rollback_to_a_rejected_version_lifts_the_rejection_and_says_so(naive, store):
    first, rejected = rejected_second(naive, "lc-restore")
    done = cli("rollback", "--name", "lc-restore", "--to", rejected, store=store)
    assert done.returncode == 0 and done.stdout.startswith(
        f"champion is version {rejected} again (restored: it had been rejected, rolled back to version {first} at"), done.stdout + done.stderr
    tags = mlflow.MlflowClient().get_model_version("lc-restore", rejected).tags
    assert REJECTED not in tags and tags[RESTORED].startswith("served again by rollback at") and f"rolled back to version {first}" in tags[RESTORED]
    assert champion("lc-restore") == rejected and REJECTED in mlflow.MlflowClient().get_model_version("lc-restore", first).tags


def test_promote_and_rollback_refuse_when_the_champion_moved_while_they_loaded(naive, store):
    first, challenger, third = versions_of(naive, "lc-race", 0.5, 0.4, 0.45)  # the first is champion, the third challenger
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("lc-race", "challenger", challenger)

    def moving_to(version: str):
        def load(uri: str):  # another promote or rollback, done while this one loads its version
            client.set_registered_model_alias("lc-race", "champion", version)
            return mlflow.pyfunc.load_model(uri)
        return load
    with pytest.raises(InputError, match=f"champion: moved from version {first} to version {third} while version {challenger} was loaded"):
        promote("lc-race", margin=0.01, load=moving_to(third))
    assert champion("lc-race") == third  # the other move stands
    # a rollback that read the champion as the third version, which a promote moved on meanwhile: it rejects nothing
    with pytest.raises(InputError, match=f"champion: moved from version {third} to version {challenger} while version {first} was loaded"):
        rollback("lc-race", to=first, load=moving_to(challenger))
    assert champion("lc-race") == challenger
    assert not any(REJECTED in client.get_model_version("lc-race", v).tags for v in (first, challenger, third))


def test_promote_ranks_only_by_scores_where_lower_is_better(naive, store):
    first, second = versions_of(naive, "lc-metric", 0.5, 0.6)
    mlflow.MlflowClient().set_model_version_tag("lc-metric", second, "score.test_coverage_90", "0.5")  # a far worse coverage, and lower
    done = cli("promote", "--name", "lc-metric", "--metric", "test_coverage_90", store=store)
    assert done.returncode == 2 and last_line(done) == ("skewfree promote: --metric: 'test_coverage_90' is not a score where lower is better, "
                                                        "so it ranks no model: name one of ['test_mse_std']"), done.stdout + done.stderr[-2000:]
    assert champion("lc-metric") == first
    kept = cli("promote", "--name", "lc-metric", "--metric", "test_mse_std", store=store)
    assert kept.returncode == 0 and f"kept champion version {first}" in kept.stdout, kept.stdout + kept.stderr[-2000:]
    versions_of(naive, "lc-metric-one", 0.5)  # champion and challenger at once: nothing to compare, and still no such ranking
    with pytest.raises(InputError, match="is not a score where lower is better"): promote("lc-metric-one", metric="test_coverage_90")


def test_a_rejected_version_is_loaded_as_asked_with_a_warning(naive, store, tmp_path):
    first, rejected = rejected_second(naive, "lc-warn")
    fitted = naive.forecaster
    load_ett(max_rows=900).groupby("series_id").tail(fitted.history_length).to_csv(history := tmp_path / "history.csv", index=False)
    done = cli("predict", "--model-uri", f"models:/lc-warn/{rejected}", "--input", str(history), "--horizon", "3", "--output",
               str(tmp_path / "out.csv"), "--quiet", store=store)
    assert done.returncode == 0 and (tmp_path / "out.csv").exists(), done.stderr[-2000:]
    assert (f"skewfree: warning: models:/lc-warn/{rejected} is version {rejected} of 'lc-warn', marked rejected (rolled back to version {first} at"
            in done.stderr), done.stderr[-2000:]
    served = cli("predict", "--model-uri", f"models:/lc-warn/{first}", "--input", str(history), "--horizon", "3", "--output",
                 str(tmp_path / "out.csv"), "--quiet", store=store)
    assert served.returncode == 0 and "warning" not in served.stderr, served.stderr[-2000:]


def test_promote_and_rollback_name_a_model_that_is_not_registered(naive, store):
    for command in (("promote", "--name", "nosuch"), ("rollback", "--name", "nosuch", "--to", "1")):
        done = cli(*command, store=store)
        assert done.returncode == 2 and last_line(done).startswith(
            f"skewfree {command[0]}: --name: 'nosuch' is not a registered model in {store}; registered models there: ["), done.stderr[-2000:]
        assert "'lifecycle-naive'" in last_line(done)


@pytest.mark.parametrize("name, bad", [("a/b", "/"), ("'a b@c'", "@")])
def test_a_registered_name_mlflow_cannot_take_or_resolve_is_refused_before_training(store, name, bad):
    done = cli("train", "--model", "seasonal_naive", "profile=smoke", f"data.name={name}", store=store)
    given = name.strip("'")
    assert done.returncode == 2 and last_line(done).startswith(
        f"skewfree train: data.name: {given!r} would register the model as 'skewfree-{given}-smoke', and {bad!r} cannot be in that name"), done.stderr[-2000:]
    assert mlflow.MlflowClient().get_experiment_by_name(f"skewfree-{given}-smoke") is None  # no run was started


def test_a_model_without_weights_loads_without_lightnings_warning(naive):
    "Seasonal naive saves no parameters: every load (serve, predict, rollback, verify) used to print Lightning's warning of it."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mlflow.pyfunc.load_model(naive.model_uri)
    assert not [w for w in caught if "contains no parameters" in str(w.message)], [str(w.message) for w in caught]
