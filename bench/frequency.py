"""Frequency inference at fit: `Frequency(gaps="reindex").fit` on panels of 100,000 series x 50 rows, measured in one run.

    python bench/frequency.py [--series 100000] [--baseline 970f47d]

Frequency inference reads times only, so the panels are calendars and nothing else (values are zeros): dates from ETT's
first day, 2016-07-01, each series at its own offset in time. Three panels:
- `hourly`: every series regular at one hour (the even path: one comparison per row, no calendar asked of pandas);
- `business_days_with_holidays`: 50 of 60 business days per series, a different 10 missing in each (holidays): a
  calendar with steps missing, found as `B`;
- `daily_with_gaps`: 50 of 60 days per series, weekends included, 10 missing in each: found as `24h`.
`--baseline` times the same panels with the code of that commit (a git worktree, in a child process on this machine in this
run). Up to 970f47d a series with gaps was asked of pandas (`pd.infer_freq`) one distinct calendar at a time, and so one
series at a time where every series has its own gaps.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import git_commit, write  # noqa: E402

ROWS, SPAN = 50, 60


def panels(series: int) -> dict:
    "The three panels' (times, indptr)."
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(0)
    keep = np.sort(np.argsort(rng.random((series, SPAN)), axis=1)[:, :ROWS], axis=1)  # 50 of 60 steps, other ones per series
    offsets = rng.integers(0, 2_000, series)  # each series starts on its own day (hour, for the hourly panel)
    out = {}
    for name, freq in (("hourly", "h"), ("business_days_with_holidays", "B"), ("daily_with_gaps", "D")):
        grid = pd.date_range("2016-07-01", periods=2_000 + SPAN, freq=freq).to_numpy().astype("datetime64[ns]")
        picks = np.tile(np.arange(ROWS), (series, 1)) if name == "hourly" else keep
        out[name] = (grid[offsets[:, None] + picks].ravel(), np.arange(series + 1) * ROWS)
    return out


def measure(series: int) -> dict:
    "Seconds and series/s of `Frequency(gaps='reindex').fit` on each panel, with the frequencies found."
    import numpy as np
    import pandas as pd

    from skewfree.frequency import Frequency
    from skewfree.panel import Panel
    out = {}
    for name, (times, indptr) in panels(series).items():
        panel = Panel(np.array([f"s{k:06d}" for k in range(series)], dtype=object), indptr, times, np.zeros((len(times), 1)), ["OT"],
                      pd.RangeIndex(len(times)), {})
        started = time.perf_counter()
        freqs = Frequency(gaps="reindex").fit(panel).freq_
        seconds = time.perf_counter() - started
        out[name] = {"seconds": round(seconds, 3), "series_per_s": round(series / seconds), "found": pd.Series(freqs).value_counts().to_dict()}
    return out


def baseline(commit: str, series: int) -> dict:
    "The same measurement with the code of `commit`, in a worktree and a child process that imports its skewfree."
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True)
        try:
            code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import frequency, skewfree; "
                    f"print(json.dumps({{'skewfree_file': skewfree.__file__, **frequency.measure({series})}}))")
            done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tree,
                                  env=dict(os.environ, PYTHONPATH=str(tree)))
            out = json.loads(done.stdout.strip().splitlines()[-1])
            assert str(tree) in out["skewfree_file"], out["skewfree_file"]  # it measured the old code
            return out | {"commit": commit}
        finally: subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--baseline", default=None, help="a commit to time beside this code, in the same run")
    args = ap.parse_args()
    commit = git_commit()
    results = {"series": args.series, "rows_per_series": ROWS, "this_commit": measure(args.series)}
    if args.baseline: results["baseline"] = baseline(args.baseline, args.series)
    command = " ".join(["python", "bench/frequency.py", *sys.argv[1:]])
    write("frequency", command, results, commit)


if __name__ == "__main__":
    main()
