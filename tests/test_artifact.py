"The artifact contract: hashes and golden replays checked at every load, batch predict, verify, promote, mlflow models serve."
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import Server, exact_json_body, free_port

from skewfree.artifact import ArtifactCheckError, _hashes
from skewfree.config import compose_config
from skewfree.core import InputError
from skewfree.data import load_ett
from skewfree.train import train

BIN = Path(sys.executable).parent


def cli(*args: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "skewfree"), *args], env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def local_copy(trained, tmp_path) -> Path:
    "A private copy of the champion's files, free to tamper with."
    target = tmp_path / "model"
    shutil.copytree(mlflow.artifacts.download_artifacts(trained.model_uri), target)
    return target


def part(model: Path, name: str) -> Path:
    return model / "artifacts" / "skewfree" / name


def test_one_number_changed_in_the_preprocessor_state_is_refused(local_copy):
    path = part(local_copy, "forecaster/preprocessor.json")
    state = json.loads(path.read_text())
    state["steps"]["scale"]["stats"][1][0][1] *= 1.0000001  # ETTh2's OT: its scale
    path.write_text(json.dumps(state, indent=1, sort_keys=True))
    with pytest.raises(ArtifactCheckError, match=r"'forecaster/preprocessor.json' failed its integrity check"):
        mlflow.pyfunc.load_model(str(local_copy))


@pytest.mark.parametrize("name", ["model.pt", "kernel.npz"])  # darts' files and the NumPy kernel that predicts
def test_a_truncated_model_file_is_refused(local_copy, name):
    path = part(local_copy, f"forecaster/model/{name}")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactCheckError, match=rf"'forecaster/model/{name}' failed its integrity check"):
        mlflow.pyfunc.load_model(str(local_copy))


@pytest.mark.parametrize("column", ["forecast", "q0.9"])  # the point forecast, and a calibrated interval's bound
def test_a_forecast_that_no_longer_matches_its_golden_example_is_refused_naming_example_and_column(local_copy, column):
    # the hashes are consistent (as after a library upgrade or a device change); only the replay can tell
    golden = part(local_copy, "golden/series-ETTh1.forecast.parquet")
    expected = pd.read_parquet(golden)
    expected.loc[3, column] += 1e-9
    expected.to_parquet(golden)
    manifest_path = part(local_copy, "manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["parts"] = _hashes(part(local_copy, ""))
    manifest_path.write_text(json.dumps(manifest))
    refusal = rf"golden example 'series-ETTh1', column '{column}': largest difference (9\.99\d*e-10|1\.0\d*e-09) exceeds the tolerance 0\.0"
    with pytest.raises(ArtifactCheckError, match=refusal):
        mlflow.pyfunc.load_model(str(local_copy))
    os.environ["SKEWFREE_GOLDEN_TOLERANCE"] = "1e-6"  # the CPU↔GPU switch: a stated tolerance instead of exactness
    try:
        assert mlflow.pyfunc.load_model(str(local_copy)).unwrap_python_model().golden_max_difference > 0
    finally:
        del os.environ["SKEWFREE_GOLDEN_TOLERANCE"]


def test_loads_in_an_environment_without_skewfree_installed(trained, store):
    # hide the installed package: the artifact must bring its own code (code_paths)
    script = f"""
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
try:
    import skewfree
    raise SystemExit("skewfree is still importable: the test cannot prove anything")
except ImportError:
    pass
import mlflow
model = mlflow.pyfunc.load_model({trained.model_uri!r})
import skewfree
print(skewfree.__file__)
print(len(model.predict(model.input_example, params={{"horizon": 3}})))
"""
    done = subprocess.run([sys.executable, "-c", script], env={"MLFLOW_TRACKING_URI": store, "PATH": ""}, cwd="/", capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    where, rows = done.stdout.strip().splitlines()[-2:]
    assert "/code/skewfree/" in where and rows == "6"


def test_an_nlinear_artifact_hydrates_and_forecasts_without_torch(trained, store):
    "NLinear's checked NumPy kernel predicts: a fresh process loads, replays the golden examples and forecasts without torch."
    script = f"""
import sys
import mlflow
model = mlflow.pyfunc.load_model({trained.model_uri!r})
rows = len(model.predict(model.input_example, params={{"horizon": 3}}))
heavy = sorted(m for m in ("torch", "pytorch_lightning", "lightning_fabric", "torchmetrics") if m in sys.modules)
print(rows, model.unwrap_python_model().forecaster.runtime, heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, MLFLOW_TRACKING_URI=store), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "6 numpy []"


def test_signature_and_input_example(trained):
    model = mlflow.pyfunc.load_model(trained.model_uri)
    assert model.metadata.get_params_schema().to_dict()[0]["name"] == "horizon"
    inputs = model.metadata.get_input_schema().input_names()
    assert inputs == trained.forecaster.preprocessor.columns == ["series_id", "date", "OT"]  # a univariate model asks for nothing it does not read
    example = model.input_example
    assert len(example) == 2 * trained.forecaster.history_length  # a real raw window per series


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_predict_cli_matches_the_pyfunc_path(trained, store, tmp_path, suffix):
    history = load_ett(max_rows=900).groupby("series_id").tail(trained.forecaster.history_length)
    source, target = tmp_path / f"history{suffix}", tmp_path / f"forecast{suffix}"
    history.to_csv(source, index=False) if suffix == ".csv" else history.to_parquet(source)
    done = cli("predict", "--model-uri", trained.model_uri, "--input", str(source), "--horizon", "5", "--output", str(target), store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    got = pd.read_csv(target, parse_dates=["date"]) if suffix == ".csv" else pd.read_parquet(target)
    expected = mlflow.pyfunc.load_model(trained.model_uri).predict(history, params={"horizon": 5})
    assert (got.forecast.to_numpy() == expected.forecast.to_numpy()).all()


def test_batch_predict_cli_writes_the_bands_asked_for_and_refuses_one_the_model_does_not_serve(trained, store, tmp_path):
    history = load_ett(max_rows=900).groupby("series_id").tail(trained.forecaster.history_length)
    source, target = tmp_path / "history.csv", tmp_path / "forecast.parquet"
    history.to_csv(source, index=False)
    expected = mlflow.pyfunc.load_model(trained.model_uri).predict(history, params={"horizon": 5, "quantiles": [0.1, 0.9]})
    done = cli("predict", "--model-uri", trained.model_uri, "--input", str(source), "--horizon", "5", "--output", str(target),
               "--quantiles", "0.1,0.9", store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(target), expected, check_exact=True)
    assert [c for c in expected.columns if c.startswith("q")] == ["q0.1", "q0.9"]
    done = cli("predict", "--model-uri", trained.model_uri, "--input", str(source), "--horizon", "5", "--output", str(tmp_path / "f.csv"),
               "--quantiles", "0.5", store=store)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and last.startswith("skewfree predict: --quantiles: [0.5] not forecast"), done.stderr[-2000:]
    assert not (tmp_path / "f.csv").exists()


def test_recalibrate_logs_a_new_model_whose_bands_moved_and_point_forecast_did_not(trained, store, tmp_path):
    from skewfree.evaluate import recalibrate
    fitted = mlflow.pyfunc.load_model(trained.model_uri).unwrap_python_model().forecaster
    context, horizon, through = fitted.history_length, fitted.max_horizon, fitted.fitted_through
    raw = load_ett(max_rows=1400)
    recent = raw[pd.to_datetime(raw.date) > through - pd.Timedelta(hours=context)]  # after the training rows, with look-back context
    recent.to_csv(source := tmp_path / "recent.csv", index=False)
    done = cli("recalibrate", "--model-uri", trained.model_uri, "--data", str(source), "--windows", "100", "--register", "skewfree-ett-smoke", store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    # a new version of its source's own name, its challenger (the source's name has a champion)
    number = done.stdout.split("registered skewfree-ett-smoke version ", 1)[1].split(" ", 1)[0]
    assert f"registered skewfree-ett-smoke version {number} (challenger)" in done.stdout, done.stdout
    new, old = mlflow.pyfunc.load_model(f"models:/skewfree-ett-smoke/{number}"), mlflow.pyfunc.load_model(trained.model_uri)
    # the library's recalibration of the same model on the same rows: the shifts the new artifact carries, bit for bit
    expected = recalibrate(fitted, recent, windows=100).intervals
    got = new.unwrap_python_model().forecaster.intervals
    assert got.windows == 100 * raw.series_id.nunique() and np.array_equal(got.shifts, expected.shifts)
    history = recent.groupby("series_id").tail(context)
    before, after = old.predict(history, params={"horizon": horizon}), new.predict(history, params={"horizon": horizon})
    assert np.array_equal(after.forecast.to_numpy(), before.forecast.to_numpy())  # same weights, same preprocessor
    assert not np.allclose(after["q0.9"].to_numpy(), before["q0.9"].to_numpy())  # new bands
    version, was = mlflow.MlflowClient().get_model_version("skewfree-ett-smoke", number), mlflow.MlflowClient().get_model_version(
        "skewfree-ett-smoke", trained.version)
    ranked_by = was.tags["ranked_by"]  # the source's point scores and what they were measured on; not the old bands' scores
    assert version.tags["ranked_by"] == ranked_by and version.tags[f"score.{ranked_by}"] == was.tags[f"score.{ranked_by}"]
    assert version.tags["scored_on"] == was.tags["scored_on"] and version.tags["recalibrated_from"] == f"skewfree-ett-smoke/{trained.version}"
    assert "score.test_coverage_80" in was.tags and not any("coverage" in k or "quantile_loss" in k for k in version.tags)
    run = mlflow.get_run(new.metadata.run_id)
    assert run.data.tags["skewfree.recalibrated_from"] == trained.model_uri and run.data.params["windows"] == "100"
    assert run.data.params["data_series"] == "2" and run.data.params["data_to"] == str(pd.to_datetime(recent.date).max())
    # times with an offset are the same instants: read as a served request reads them, the same shifts
    aware = recent.assign(date=pd.to_datetime(recent.date).dt.tz_localize("UTC").dt.tz_convert("Asia/Shanghai"))
    aware.to_csv(source, index=False)
    done = cli("recalibrate", "--model-uri", trained.model_uri, "--data", str(source), "--windows", "100", store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    logged = done.stdout.split("logged ", 1)[1].split(": bands", 1)[0]
    assert np.array_equal(mlflow.pyfunc.load_model(logged).unwrap_python_model().forecaster.intervals.shifts, expected.shifts)
    # five hours missing: the windows whose look-back serving would refuse are left out of the bands, and said so (attack review)
    recent.drop(index=recent[recent.series_id == "ETTh1"].index[-60:-55]).to_csv(source, index=False)
    done = cli("recalibrate", "--model-uri", trained.model_uri, "--data", str(source), "--windows", "100", store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    left_out = int(done.stderr.split(" of 200 calibration windows hold more repaired values")[0].rsplit(" ", 1)[1])
    assert "they are left out of the intervals' calibration" in done.stderr, done.stderr[-2000:]
    assert 0 < left_out < 100 and f"bands from {200 - left_out} windows" in done.stdout, done.stdout + done.stderr[-2000:]
    # daily means to an hourly model: refused for their frequency, before any count of windows or rows is said of them as hours
    daily = recent.assign(date=pd.to_datetime(recent.date).dt.floor("D")).groupby(["series_id", "date"], as_index=False).mean()
    daily.to_csv(source, index=False)
    done = cli("recalibrate", "--model-uri", trained.model_uri, "--data", str(source), store=store)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "skewfree recalibrate: date: rows are 24 steps of the fitted frequency 'h' apart (found '24h'): data of another frequency is "
        "refused, not reindexed; send the series at 'h', series 'ETTh1'"], done.stderr[-2000:]
    # rows the model was fitted on are refused, naming the field; nothing is logged
    raw[pd.to_datetime(raw.date) <= through].to_csv(source, index=False)
    done = cli("recalibrate", "--model-uri", trained.model_uri, "--data", str(source), "--windows", "100", store=store)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and last.startswith("skewfree recalibrate: --windows: the latest 100 windows start at"), done.stderr[-2000:]
    assert "inside the rows the model was fitted on" in last


@pytest.mark.slow
def test_recalibrate_refuses_before_any_work_and_a_stopped_one_leaves_nothing(trained, store, tmp_path):
    fitted = mlflow.pyfunc.load_model(trained.model_uri).unwrap_python_model().forecaster
    raw = load_ett(max_rows=1400)
    recent = raw[pd.to_datetime(raw.date) > fitted.fitted_through - pd.Timedelta(hours=fitted.history_length)].reset_index(drop=True)
    recent.to_csv(source := tmp_path / "recent.csv", index=False)
    client = mlflow.MlflowClient()
    experiment = client.get_run(mlflow.pyfunc.load_model(trained.model_uri).metadata.run_id).info.experiment_id
    def runs() -> dict[str, str]: return {r.info.run_id: r.info.status for r in client.search_runs([experiment])}
    def names() -> set[str]: return {m.name for m in client.search_registered_models()}
    before, registered = runs(), names()
    run = ("recalibrate", "--model-uri", trained.model_uri, "--data", str(source), "--windows", "100")
    # a name that is not the source's (one the registry refuses, an empty one), and a source with no registered record: refused by
    # option before any work
    for name, says in [("a/b", "must be 'skewfree-ett-smoke', the name"), ("", "must be 'skewfree-ett-smoke', the name")]:
        done = cli(*run, "--register", name, store=store)
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 2 and last.startswith(f"skewfree recalibrate: --register: {says}"), done.stderr[-2000:]
    logged = f"runs:/{mlflow.pyfunc.load_model(trained.model_uri).metadata.run_id}/model"
    done = cli("recalibrate", "--model-uri", logged, "--data", str(source), "--windows", "100", "--register", "elsewhere", store=store)
    assert done.returncode == 2 and "--register: needs --model-uri as models:/NAME/VERSION or models:/NAME@ALIAS" in done.stderr, done.stderr[-2000:]
    # a series with the look-back but not one whole window: named by its id, not a position inside the model
    short = pd.concat([recent[recent.series_id == "ETTh1"], recent[recent.series_id == "ETTh2"].tail(fitted.history_length + 2)])
    short.to_csv(cut := tmp_path / "short.csv", index=False)
    done = cli("recalibrate", "--model-uri", trained.model_uri, "--data", str(cut), "--windows", "100", store=store)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == (
        f"skewfree recalibrate: --data: {fitted.history_length + 2} rows on the model's grid, too few for one window of "
        f"{fitted.history_length} rows of history and {fitted.max_horizon} steps: give more rows, series 'ETTh2'"), done.stderr[-2000:]
    assert runs() == before and names() == registered
    # stopped while it logs (a scheduler's SIGTERM): the run ends failed, nothing is registered, one line says so
    def versions() -> int: return len(client.search_model_versions("name='skewfree-ett-smoke'"))
    versions_before = versions()
    job = subprocess.Popen([str(BIN / "skewfree"), *run, "--register", "skewfree-ett-smoke"], env=dict(os.environ, MLFLOW_TRACKING_URI=store),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (started := set(runs()) - set(before)) and job.poll() is None and time.monotonic() < deadline: time.sleep(0.05)
    assert started and job.poll() is None, "the recalibration ended before it could be stopped"
    job.send_signal(15)
    _, err = job.communicate(timeout=240)
    assert job.returncode == 143 and err.strip().splitlines()[-1] == "skewfree recalibrate: stopped (signal 15)", err[-2000:]
    assert {runs()[r] for r in started} == {"FAILED"} and names() == registered and versions() == versions_before
    # missing values near the file's end (more than serving repairs in its last look-back): the new model keeps its source's
    # example, a request its own checks pass, so it loads, replays and serves it
    gappy = recent.copy()
    gappy.loc[gappy.index[gappy.series_id == "ETTh2"][-4:-1], "OT"] = np.nan
    gappy.to_csv(source, index=False)
    done = cli(*run, store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    new = mlflow.pyfunc.load_model(done.stdout.split("logged ", 1)[1].split(": bands", 1)[0])
    pd.testing.assert_frame_equal(new.input_example, mlflow.pyfunc.load_model(trained.model_uri).input_example)
    assert len(new.predict(new.input_example, params={"horizon": fitted.max_horizon})) == 2 * fitted.max_horizon
    assert "measured on" not in done.stderr
    # one series of two: its bands serve the other as well, and it is said
    recent[recent.series_id == "ETTh1"].to_csv(source, index=False)
    done = cli(*run, store=store)
    assert done.returncode == 0 and "the bands were measured on 1 of the model's 2 series; they serve every series" in done.stderr, done.stderr[-2000:]


def test_batch_predict_cli_says_what_it_repaired_in_the_history_and_the_values_it_read_as_suspect(trained, store, tmp_path):
    history = load_ett(max_rows=900).groupby("series_id").tail(trained.forecaster.history_length).reset_index(drop=True)
    history.loc[[3, 4], "OT"] = np.nan  # two missing values in ETTh1's history, which this model's policy interpolates
    history.loc[history.index[history.series_id == "ETTh2"][7], "OT"] *= 1000  # and a typo in ETTh2's: not repaired, but said apart
    source, target = tmp_path / "history.csv", tmp_path / "forecast.csv"
    history.to_csv(source, index=False)
    done = cli("predict", "--model-uri", trained.model_uri, "--input", str(source), "--horizon", "5", "--output", str(target), store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'repaired in the history (data.missing=interpolate, data.gaps=reindex): {"ETTh1": {"filled_OT": 2}}' in done.stderr, done.stderr[-2000:]
    assert '''read as given, far beyond the series' training range (a typo?): {"ETTh2": {"suspect_OT": 1}}''' in done.stderr, done.stderr[-2000:]
    clean = load_ett(max_rows=900).groupby("series_id").tail(trained.forecaster.history_length)
    clean.to_csv(source, index=False)
    assert "repaired" not in cli("predict", "--model-uri", trained.model_uri, "--input", str(source), "--horizon", "5", "--output",
                                 str(target), store=store).stderr


def _history(tmp_path: Path, rows: int = 5) -> Path:
    source = tmp_path / "history.csv"
    load_ett(max_rows=900).groupby("series_id").tail(rows).to_csv(source, index=False)
    return source


def _not_numeric(tmp_path: Path) -> Path:
    source = tmp_path / "history.csv"
    history = load_ett(max_rows=900).groupby("series_id").tail(400).reset_index(drop=True)
    history["OT"] = history["OT"].astype(object)
    history.loc[len(history) - 3, "OT"] = "abc"  # in the second series
    history.to_csv(source, index=False)
    return source


def _folder(tmp_path: Path) -> Path:
    (folder := tmp_path / "history").mkdir(exist_ok=True)
    return folder


# what is wrong: (the --input file, --output, --model-uri or None for the trained one, what the one line must say[, more arguments])
BAD_PREDICTS = {
    "horizon beyond the model's": (_not_numeric, "f.csv", None, "--horizon: must be between 1 and 24", ("--horizon", "25")),
    "input is a folder": (_folder, "f.csv", None, "--input: ", ()),
    "a setting the model was trained with": (_not_numeric, "f.csv", None,
                                             "data.repair_budget.at_end: skewfree predict reads only executor.* settings from its command line: "
                                             "a setting the model was trained with, which it keeps: train with it", ("data.repair_budget.at_end=carry",)),
    "history too short": (_history, "f.csv", None, "needs at least"),
    "output folder missing": (_history, "no/such/folder/f.csv", None, "--output: folder not found"),
    "output type unknown": (_history, "f.xlsx", None, "--output: unsupported file type '.xlsx'"),
    "input empty": (lambda tmp: tmp / "empty.csv", "f.csv", None, "--input: cannot read"),
    "input missing": (lambda tmp: tmp / "nope.parquet", "f.csv", None, "--input: file not found"),
    "value not a number": (_not_numeric, "f.csv", None, "--input: column OT: 'abc' is not a double, series 'ETTh2', first bad row"),
    "unknown model": (_history, "f.csv", "models:/no-such-model@champion", "no-such-model"),
    "no model at the path": (_history, "f.csv", "/no/such/model", "--model-uri: "),
    "output is the input": (_not_numeric, "history.csv", None, "--output: is the --input file"),
}


@pytest.mark.parametrize("case", BAD_PREDICTS)
def test_batch_predict_cli_bad_input_is_one_line_naming_the_field(trained, store, tmp_path, case):
    make_input, output, uri, says, *more = BAD_PREDICTS[case]
    (tmp_path / "empty.csv").touch()
    more = list(more[0]) if more else []
    horizon = more[:2] if more[:1] == ["--horizon"] else ["--horizon", "5"]  # given once: a second one is argparse's refusal
    done = cli("predict", "--model-uri", uri or trained.model_uri, "--input", str(make_input(tmp_path)), *horizon,
               "--output", str(tmp_path / output), *more[len(horizon) if more[:1] == ["--horizon"] else 0:], store=store)
    assert done.returncode == 2, done.stdout + done.stderr[-2000:]
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]  # libraries may warn above it; the answer is the last line, whole
    assert last.startswith("skewfree predict: ") and says in last, done.stderr[-2000:]


def test_batch_predict_reads_a_parquet_file_whose_id_column_pandas_wrote_as_its_index(trained, store, tmp_path):
    history = load_ett(max_rows=900).groupby("series_id").tail(400)
    history.to_csv(tmp_path / "history.csv", index=False)
    history.set_index("series_id").to_parquet(tmp_path / "indexed.parquet")  # pandas' metadata makes series_id the frame's index again
    for name in ("history.csv", "indexed.parquet"):
        done = cli("predict", "--model-uri", trained.model_uri, "--input", str(tmp_path / name), "--horizon", "5", "--output",
                   str(tmp_path / f"{name}.out.csv"), store=store)
        assert done.returncode == 0, done.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "indexed.parquet.out.csv"), pd.read_csv(tmp_path / "history.csv.out.csv"))


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def test_a_model_skewfree_did_not_log_is_refused_by_every_command_in_one_line(trained, store, tmp_path):
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="echo", python_model=_Echo(), registered_model_name="not-skewfree")
    history = _history(tmp_path, rows=400)
    uri = "models:/not-skewfree/1"
    for command in (["predict", "--input", str(history), "--horizon", "5", "--output", str(tmp_path / "f.csv")], ["drift", "--data", str(history)],
                    ["recalibrate", "--data", str(history)], ["verify", "--url", f"http://127.0.0.1:{free_port()}"],
                    ["serve", "--workers", "0", "--port", str(free_port())]):
        done = cli(command[0], "--model-uri", uri, *command[1:], store=store)
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert last == f"skewfree {command[0]}: --model-uri: {uri} is not a skewfree model (its MLmodel carries no skewfree metadata): these " \
                       "commands read the forecaster, preprocessor and golden examples a skewfree training logs", last


def test_recalibrate_and_drift_name_their_own_options_and_promote_its_own(trained, store, tmp_path):
    short = load_ett(max_rows=900)
    short = pd.concat([short[short.series_id == "ETTh1"], short[short.series_id == "ETTh2"].tail(40)])  # less than a look-back
    short.to_csv(path := tmp_path / "short.csv", index=False)
    for command, says in (("drift", "date: needs at least 48 rows of history, got 40"), ("recalibrate", "0 windows of")):
        done = cli(command, "--model-uri", trained.model_uri, "--data", str(path), store=store)
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 2 and last.startswith(f"skewfree {command}: --data: {says}") and "'ETTh2'" in last, last
    ignored = cli("drift", "--model-uri", trained.model_uri, "--data", str(path), "data.suspect_values=error", store=store)
    assert ignored.returncode == 2 and "data.suspect_values: skewfree drift reads only serve.monitor.* settings" in ignored.stderr, ignored.stderr
    for option, value, says in (("--margin", "2", "--margin: must be a fraction in [0, 1)"),
                                ("--name", "no-such-model", "--name: 'no-such-model' is not a registered model in ")):
        done = cli("promote", option, value, store=store)
        assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(f"skewfree promote: {says}"), done.stderr[-2000:]


@pytest.mark.parametrize("backend", ["fastapi", "ray"])
def test_serve_names_an_unknown_model_before_starting_anything(store, backend):
    done = cli("serve", "--backend", backend, "--model-uri", "models:/no-such-model@champion", "--port", str(free_port()), store=store)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("skewfree serve: ") and "no-such-model" in done.stderr, done.stderr[-2000:]


def test_verify_never_passes_on_nothing_and_names_an_unreachable_server(trained, store, tmp_path):
    nowhere = f"http://127.0.0.1:{free_port()}"
    short = cli("verify", "--model-uri", trained.model_uri, "--url", nowhere, "--data", str(_history(tmp_path, rows=10)), store=store)
    assert short.returncode == 2 and "--data: no series has the" in short.stderr, short.stdout + short.stderr[-2000:]
    none = cli("verify", "--model-uri", trained.model_uri, "--url", nowhere, "--data", str(_history(tmp_path, rows=900)), "--windows", "0", store=store)
    assert none.returncode == 2 and "--windows: must be at least 1" in none.stderr, none.stderr[-2000:]
    no_data = cli("verify", "--model-uri", trained.model_uri, "--url", nowhere, "--windows", "0", store=store)  # checked without --data too
    assert no_data.returncode == 2 and "--windows: must be at least 1" in no_data.stderr, no_data.stderr[-2000:]
    blank = load_ett(max_rows=900)
    blank.loc[len(blank) - 2, "series_id"] = None  # a row without its series: refused as `predict` refuses it, never left out of the windows
    blank.to_csv(path := tmp_path / "blank.csv", index=False)
    no_id = cli("verify", "--model-uri", trained.model_uri, "--url", nowhere, "--data", str(path), store=store)
    assert no_id.returncode == 2 and f"series_id: missing series id, first bad row {len(blank) - 2}" in no_id.stderr, no_id.stderr[-2000:]
    unreachable = cli("verify", "--model-uri", trained.model_uri, "--url", nowhere, store=store)
    assert unreachable.returncode == 2 and "--url: cannot reach" in unreachable.stderr, unreachable.stderr[-2000:]
    assert not any("Traceback" in done.stderr for done in (short, none, unreachable))


def test_verify_passes_against_our_server_and_fails_against_a_different_model(trained, server, store, tmp_path):
    ok = cli("verify", "--model-uri", trained.model_uri, "--url", server.url, store=store)
    assert ok.returncode == 0, ok.stdout + ok.stderr[-2000:]
    assert "largest difference" in ok.stdout and ": 0.0" in ok.stdout
    data = tmp_path / "raw.parquet"
    load_ett(max_rows=950).to_parquet(data)
    assert cli("verify", "--model-uri", trained.model_uri, "--url", server.url, "--data", str(data), store=store).returncode == 0
    # a file in no order, one series too short for a window: cut in time order, and what was left out is said
    raw = load_ett(max_rows=950)
    pd.concat([raw[raw.series_id == "ETTh1"], raw[raw.series_id == "ETTh2"].tail(30)]).sample(frac=1.0, random_state=0).to_parquet(data)
    shuffled = cli("verify", "--model-uri", trained.model_uri, "--url", server.url, "--data", str(data), store=store)
    assert shuffled.returncode == 0 and shuffled.stdout.strip().endswith(": 0.0"), shuffled.stdout + shuffled.stderr[-2000:]
    assert "from 1 of 2 series in 3 requests; 1 series shorter than" in shuffled.stdout, shuffled.stdout
    route = cli("verify", "--model-uri", trained.model_uri, "--url", f"{server.url}/invocations", store=store)  # the route, not the server
    assert route.returncode == 2 and "--url: " in route.stderr and "has no POST /invocations route" in route.stderr, route.stderr[-2000:]
    other = train(compose_config(["profile=smoke", "seed=7", "mlflow.registered_model=other-seed"]))
    srv = Server(other.model_uri, store)
    try:
        differs = cli("verify", "--model-uri", trained.model_uri, "--url", srv.url, store=store)
    finally:
        srv.stop()
    # equal forecasts of two models would be no parity: the server's own word on what it serves is checked first
    assert differs.returncode == 1 and f"not {trained.model_uri}: run {trained.run_id}" in differs.stderr, differs.stdout + differs.stderr[-2000:]


def test_mlflow_models_serve_answers_with_the_same_numbers(trained, server, store):
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=store)
    proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/skewfree-ett-smoke@champion", "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200: break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve did not start in 180 s")
        champion = "models:/skewfree-ett-smoke@champion"
        theirs = cli("verify", "--model-uri", champion, "--url", f"http://127.0.0.1:{port}", store=store)
        ours = cli("verify", "--model-uri", champion, "--url", server.url, store=store)
        assert theirs.returncode == 0 and ours.returncode == 0, theirs.stdout + theirs.stderr[-2000:]
        # bad input: MLflow's own server answers 400 with the field and the reason, not its generic message and a traceback
        history = load_ett(max_rows=900).groupby("series_id").tail(trained.forecaster.history_length)
        body = json.loads(exact_json_body(history, 3))
        body["params"]["quantiles"] = [0.25]
        refused = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60)
        assert refused.status_code == 400 and "stack_trace" not in refused.json(), refused.text[-2000:]
        assert "quantiles: [0.25] not forecast by model 'nlinear'" in refused.json()["message"], refused.text[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_promote_cli_compares_by_the_ranked_score_with_the_configured_margin_and_refuses_what_it_cannot_compare(trained, store):
    from skewfree.registry import register
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    recorded = client.get_model_version("skewfree-ett-smoke", trained.version).tags
    assert recorded["ranked_by"] == "test_mse_std"  # what training recorded
    scored_on = json.loads(recorded["scored_on"])

    def version(scores: dict, ranked_by: str, on: dict = scored_on) -> str:  # the trained model again, other scores: only the decision is tested
        return register(trained.model_uri, "promote-cli", scores, ranked_by=ranked_by, scored_on=on)[0]

    def promote() -> subprocess.CompletedProcess:
        return cli("promote", "--name", "promote-cli", store=store)
    first = version({"test_mse_std": 0.5}, "test_mse_std")
    done = promote()
    assert done.returncode == 0 and f"version {first} is already champion" in done.stdout, done.stdout + done.stderr
    version({"test_mse_std": 0.499}, "test_mse_std")  # better, but by less than params/config.yaml's registry.margin (1 %)
    kept = promote()
    assert kept.returncode == 0 and f"kept champion version {first}" in kept.stdout, kept.stdout + kept.stderr
    better = version({"test_mse_std": 0.4}, "test_mse_std")
    moved = promote()
    assert moved.returncode == 0 and f"promoted version {better}" in moved.stdout, moved.stdout + moved.stderr
    elsewhere = version({"test_mse_std": 0.01}, "test_mse_std", scored_on | {"profile": "full", "span": ["2017-10-20 08:00:00", "2018-02-17 07:00:00"]})
    other = promote()  # far better, but measured on other rows by another profile: not comparable, refused with what differs
    assert other.returncode == 2 and f"challenger version {elsewhere} and champion version {better} were scored on different rows" in other.stderr
    assert 'profile: "full" vs "smoke"' in other.stderr and "span:" in other.stderr, other.stderr
    unrecorded = register(trained.model_uri, "promote-cli", {"test_mse_std": 0.01}, ranked_by="test_mse_std")[0]  # registered by hand
    blind = promote()
    assert blind.returncode == 2 and f"challenger version {unrecorded} does not record what its test_mse_std was measured on" in blind.stderr
    version({"cv_mse_std": 0.1}, "cv_mse_std")  # trained with nested CV: a score the champion does not have
    refused = promote()
    assert refused.returncode == 2 and f"champion version {better} has no 'cv_mse_std' score" in refused.stderr, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    # the same test rows, the scales learnt from other training rows (one value a thousand times too large inflates its series'
    # scale and shrinks its scaled errors): a scaled score compares nothing; the refusal names the scores that can
    assert "yardstick" in scored_on
    rescaled = version({"test_mse_std": 0.01}, "test_mse_std", scored_on | {"yardstick": "0" * 16})
    other_scale = promote()
    assert other_scale.returncode == 2 and f"challenger version {rescaled} and champion version {better} learnt their series' scales from " \
        "different rows" in other_scale.stderr and "test_mae" in other_scale.stderr, other_scale.stdout + other_scale.stderr
    with pytest.raises(InputError, match="test_mse_std: is nan: the model's forecasts are not finite numbers, so it is not registered"):
        version({"test_mse_std": float("nan")}, "test_mse_std")
    # one registered by other means (MLflow's own client) with a score that ranks nothing: refused, not "kept" as if compared
    by_hand = mlflow.register_model(trained.model_uri, "promote-cli", tags={"score.test_mse_std": "nan", "ranked_by": "test_mse_std",
                                                                              "scored_on": json.dumps(scored_on, sort_keys=True, separators=(",", ":"))})
    client.set_registered_model_alias("promote-cli", "challenger", by_hand.version)
    nan = promote()
    assert nan.returncode == 2 and "'s test_mse_std is nan: it ranks nothing" in nan.stderr, nan.stdout + nan.stderr
    assert str(client.get_model_version_by_alias("promote-cli", "champion").version) == better
    # rolled back by name: the first version serves again, the one it leaves is rejected and never promoted again
    back = cli("rollback", "--name", "promote-cli", "--to", first, store=store)
    assert back.returncode == 0 and f"champion is version {first} again; version {better} is marked rejected" in back.stdout, back.stdout + back.stderr
    assert str(client.get_model_version_by_alias("promote-cli", "champion").version) == first
    client.set_registered_model_alias("promote-cli", "challenger", better)
    again = promote()
    assert again.returncode == 0 and f"challenger version {better} was rolled back from" in again.stdout, again.stdout + again.stderr
    nowhere = cli("rollback", "--name", "promote-cli", "--to", "999", store=store)
    assert nowhere.returncode == 2 and nowhere.stderr.strip().splitlines()[-1] == "skewfree rollback: --to: 'promote-cli' has no version '999'", nowhere.stderr


@pytest.mark.parametrize("margin", ["-0.5", "1.5", "nan"])
def test_promote_refuses_a_margin_that_would_promote_a_worse_model(store, margin):
    done = cli("promote", "--name", "any", "--margin", margin, store=store)
    assert done.returncode == 2 and "skewfree promote: --margin: must be a fraction in [0, 1)" in done.stderr, done.stderr[-2000:]


def test_serve_refuses_a_port_it_cannot_listen_on_in_one_line(store):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0)); taken.listen()
        for port, says in (("70000", "--port: must be a port number from 1 to 65535"), (str(taken.getsockname()[1]), "--port: cannot listen on")):
            done = cli("serve", "--model-uri", "models:/any@champion", "--port", port, store=store)
            last = done.stderr.strip().splitlines()[-1]
            assert done.returncode == 2 and last.startswith("skewfree serve: ") and says in last, done.stderr[-2000:]
    done = cli("serve", "--model-uri", "models:/any@champion", "--host", "not-an-address", "--port", str(free_port()), store=store)
    assert done.returncode == 2 and "--host: 'not-an-address' is not an address here" in done.stderr, done.stderr[-2000:]
    # a setting the server would trip over later (a 503 on every request, here): refused by name before it starts
    done = cli("serve", "--model-uri", "models:/any@champion", "--port", str(free_port()), "serve.worker_wait_s=-1", store=store)
    assert done.returncode == 2 and "serve.worker_wait_s: must be a number of at least 0.001, got -1" in done.stderr, done.stderr[-2000:]


def test_serving_an_artifact_that_fails_its_checks_is_one_line(local_copy, store):
    part(local_copy, "forecaster/model/kernel.npz").write_bytes(b"tampered")
    done = cli("serve", "--model-uri", str(local_copy), "--workers", "0", "--port", str(free_port()), store=store)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("skewfree serve: artifact part 'forecaster/model/kernel.npz' failed its integrity check"), \
        done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_serving_a_model_the_store_does_not_have_names_the_ones_it_has(trained, store):
    # after a smoke run only, the production champion does not exist: the error lists what does, the smoke model among them
    done = cli("serve", "--port", str(free_port()), store=store)
    assert done.returncode == 2 and "skewfree serve: --model-uri:" in done.stderr and "'skewfree-ett-smoke'" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_two_trainings_that_both_find_no_experiment_share_the_one_made_first(store, monkeypatch):
    # both looked before either made it: the second's create fails on the name, and it takes the first's experiment
    from skewfree.registry import setup_tracking
    cfg = compose_config(["profile=smoke", "mlflow.experiment=raced"])
    mlflow.set_tracking_uri(store)
    made = mlflow.create_experiment("raced")  # the other training, between our look and our create
    real, looks = mlflow.get_experiment_by_name, []
    def first_look_finds_none(name):
        looks.append(name)
        return None if len(looks) == 1 else real(name)
    monkeypatch.setattr(mlflow, "get_experiment_by_name", first_look_finds_none)
    setup_tracking(cfg)
    assert mlflow.get_experiment_by_name("raced").experiment_id == made
