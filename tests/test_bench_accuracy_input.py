"`bench/accuracy.py` as a tool: `--csv` and `--jobs` are checked before any cell runs, cells run side by side, and a stopped run ends its cells."
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from skewfree.core import InputError

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
from accuracy import ROWS, load_frame, protocol_rows, schedule  # noqa: E402


def ett_like(rows: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.date_range("2020-01-01", periods=rows, freq="h").astype(str), "HUFL": 1.5, "MUFL": 2.0, "OT": 3.0})


BROKEN = {
    "no target": (lambda f: f.drop(columns="OT"), "OT", "column is missing"),
    "no time": (lambda f: f.drop(columns="date"), "date", "column is missing"),
    "a date that is not one": (lambda f: f.assign(date=f.date.where(f.index != 10, "garbage")), "date", "'garbage' is not a timestamp (row 10"),
    "a target that is not a number": (lambda f: f.astype({"OT": object}).assign(OT=lambda g: g.OT.where(g.index != 10, "n/a?")), "OT",
                                      "'n/a?' is not a number (row 10"),
    # a channel that is not numeric is refused, not left out of the "M" setting
    "a channel that is not a number": (lambda f: f.astype({"HUFL": object}).assign(HUFL=lambda g: g.HUFL.where(g.index != 42, "oops")), "HUFL",
                                       "'oops' is not a number (row 42"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_csv_not_in_the_ett_format_is_refused_by_column_and_row(tmp_path, case):
    change, field, says = BROKEN[case]
    path = tmp_path / "data.csv"
    change(ett_like()).to_csv(path, index=False)
    with pytest.raises(InputError) as refused:
        load_frame("MYDATA", str(path), 1000)
    assert refused.value.field == field and says in str(refused.value), str(refused.value)


def test_a_good_csv_reads_as_the_library_long_frame(tmp_path):
    path = tmp_path / "data.csv"
    ett_like().to_csv(path, index=False)
    frame = load_frame("MYDATA", str(path), 20)
    assert list(frame.columns) == ["series_id", "date", "HUFL", "MUFL", "OT"] and len(frame) == 20
    assert str(frame.date.dtype) == "datetime64[ns]" and (frame.series_id == "MYDATA").all()


def test_the_protocols_borders_follow_the_datas_frequency():
    # 12 / 4 / 4 months of 30 days: the paper's rows for hourly data, four times as many for 15-minute data (#29)
    assert protocol_rows(pd.Series(pd.date_range("2020-01-01", periods=100, freq="h"))) == (ROWS, "h")
    assert protocol_rows(pd.Series(pd.date_range("2020-01-01", periods=100, freq="15min"))) == ((34_560, 11_520, 11_520), "15min")
    assert protocol_rows(pd.Series(pd.date_range("2020-01-01", periods=100, freq="D")))[0] == (360, 120, 120)
    with pytest.raises(InputError, match="no regular step"):
        protocol_rows(pd.Series(pd.to_datetime(["2020-01-01"] * 3)))


def test_the_benchmark_refuses_a_csv_too_short_for_its_own_borders_before_any_cell(tmp_path):
    path = tmp_path / "ett_15min.csv"
    ett_like(40_000).assign(date=pd.date_range("2020-01-01", periods=40_000, freq="15min").astype(str)).to_csv(path, index=False)
    done = subprocess.run([sys.executable, str(BENCH / "accuracy.py"), "--csv", str(path), "--name", "ETTm1", "--quick", "--settings", "S"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2 and "---" not in done.stdout, done.stdout + done.stderr[-2000:]
    assert "has 40000 rows; the protocol's borders at its frequency '15min' need 57600 (train 34560 + val 11520 + test 11520" in done.stderr


def test_the_benchmark_refuses_a_bad_csv_once_before_any_cell(tmp_path):
    path = tmp_path / "data.csv"
    ett_like().drop(columns="OT").to_csv(path, index=False)
    done = subprocess.run([sys.executable, str(BENCH / "accuracy.py"), "--csv", str(path), "--name", "MYDATA", "--quick", "--settings", "S"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2 and "OT: column is missing" in done.stderr and "---" not in done.stdout, done.stdout + done.stderr[-2000:]


def test_cells_side_by_side_start_longest_first_and_nested_cv_runs_alone():
    cells = [("short", "nlinear"), ("nested", "nested_cv_selected"), ("long", "tft"), ("unknown", "xgboost"), ("middle", "nlinear")]
    hints = {"short": 10.0, "long": 300.0, "middle": 60.0, "nested": 900.0}
    # the longest first, a cell never measured after those that were (in the plan's order); nested CV's Ray folds take every core
    assert schedule(cells, 2, hints) == [(2, ["long", "middle", "short", "unknown"]), (1, ["nested"])]
    # one at a time: the plan's order, untouched
    assert schedule(cells, 1, hints) == [(1, ["short", "nested", "long", "unknown", "middle"])]
    assert schedule([("a", "nlinear")], 2, {}) == [(2, ["a"])]


def test_jobs_below_one_is_refused_before_any_cell():
    done = subprocess.run([sys.executable, str(BENCH / "accuracy.py"), "--quick", "--jobs", "0", "--results", "never_written"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2 and "--jobs is how many cells run at once" in done.stderr and "---" not in done.stdout, done.stdout + done.stderr[-2000:]
    assert not (BENCH / "results" / "never_written.json").exists()


def living() -> dict[int, int]:
    "Every living process and its parent, read from /proc (a zombie has ended)."
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try: fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError: continue
        if fields[0] != "Z": parents[int(stat.parent.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    "Every living process under `pid`: the cells run in processes of the run's fork server."
    parents = living()
    found, todo = set(), [pid]
    while todo:
        pid = todo.pop()
        children = {p for p, parent in parents.items() if parent == pid}
        found |= children; todo += children
    return found


def test_a_stopped_run_ends_its_cells_and_exits_at_once():
    name = "test_stopped_run"
    run = subprocess.Popen([sys.executable, str(BENCH / "accuracy.py"), "--settings", "M", "--horizons", "720", "--datasets", "ETTh1",
                            "--results", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert run.stdout
        # the cell starts (it takes a minute or more); a warning printed before it is no failure
        assert any("--- ETTh1|M|720|nlinear" in line for line, _ in zip(run.stdout, range(50))), "the cell never started"
        deadline = time.monotonic() + 60
        parents = living()
        while not any(parents.get(parents.get(p, 0)) == run.pid for p in parents):  # the cell: a child of the run's fork server
            parents = living()
            assert time.monotonic() < deadline, "the cell never started"
            time.sleep(0.5)
        cells = descendants(run.pid)
        run.terminate()
        # it ends its cell rather than wait for it, and leaves no process of its own behind
        assert run.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 15
        while (left := cells & living().keys()) and time.monotonic() < deadline: time.sleep(0.5)
        assert not left, f"processes of the stopped run still running: {sorted(left)}"
    finally:
        if run.poll() is None:  # the test failed with the run alive: its cell must not outlive the test either
            for pid in descendants(run.pid): os.kill(pid, signal.SIGKILL)
            run.kill()
        (BENCH / "results" / f"{name}.json").unlink(missing_ok=True)


def test_a_csv_scores_as_the_embedded_data_does(tmp_path):
    # the path unseen ETT-format data takes (`--csv`): the same rows as a file score as the embedded ones, borders derived from its step
    import gzip
    import shutil

    from accuracy import run_cell
    with gzip.open(BENCH.parent / "skewfree" / "data" / "ETTh1.csv.gz") as packed, open(tmp_path / "ETTh1.csv", "wb") as plain:
        shutil.copyfileobj(packed, plain)
    rows, freq = protocol_rows(load_frame("copy", str(tmp_path / "ETTh1.csv"), None)["date"])
    assert (rows, freq) == (ROWS, "h")
    embedded = run_cell("ETTh1", "S", 96, "nlinear_ls", csv=None, rows=ROWS, stride=8)
    from_file = run_cell("copy", "S", 96, "nlinear_ls", csv=str(tmp_path / "ETTh1.csv"), rows=rows, stride=8)
    assert from_file["n_windows"] == embedded["n_windows"] and from_file["mse"] == pytest.approx(embedded["mse"], rel=1e-6)
