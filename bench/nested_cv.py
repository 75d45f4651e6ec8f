"""Wall time of one nested-CV configuration on the Ray executor with 1 and 2 workers (a local Ray instance
limited to that many CPUs, one fold task per CPU), and the local executor for reference — one run, one machine.

    python bench/nested_cv.py [--workers 1,2] [--repeats 1]

The configuration (below, `OVERRIDES`): NLinear on ETTh1+ETTh2 (4,000 rows each), 5 outer folds of 24 rows with
sliding 2,000-row training windows, 2 inner folds, 8 Optuna trials per study (median pruning), every training
window, 4 epochs — 5 fold tasks plus the final model's study, up to 101 model fits. `cv_seconds` is the nested CV with the Ray instance already up (what the
executor controls); `ray_start_seconds` is the instance's start, reported apart. Outer scores must be identical.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
warnings.filterwarnings("ignore")

from skewfree.config import compose_config  # noqa: E402
from skewfree.data import load_ett  # noqa: E402
from skewfree.nested_cv import nested_cv  # noqa: E402

OVERRIDES = ["cv=nested", "model=nlinear", "profile=smoke", "data.max_rows=4000", "cv.n_folds=5", "cv.window=sliding",
             "cv.window_rows=2000", "cv.inner.n_trials=8", "trainer.torch.max_epochs=4", "trainer.torch.max_samples_per_ts=null",
             "cv.progress=false"]


def run(executor: str, workers: int | None) -> dict:
    import ray
    cfg = compose_config([*OVERRIDES, f"executor={executor}"])
    raw = load_ett(max_rows=int(cfg.data.max_rows))
    start = 0.0
    if executor == "ray":
        t = time.perf_counter()
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        start = time.perf_counter() - t
    try:
        t = time.perf_counter()
        result = nested_cv(cfg, raw)
        seconds = time.perf_counter() - t
    finally:
        if executor == "ray": ray.shutdown()
    inner = int(cfg.cv.inner.n_folds)
    # an upper bound: a pruned trial stops before its last inner fold
    fits = sum(len(f.trials) * inner + 1 for f in result.folds) + len(result.final.trials) * inner
    return {"cv_seconds": seconds, "ray_start_seconds": start, "fits_at_most": fits,
            "fold_seconds": [round(f.seconds, 2) for f in result.folds] + [round(result.final.seconds, 2)],
            "scores": [f.scores["mse_std"] for f in result.folds]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    out: dict = {"config": OVERRIDES, "runs": {}}
    local = [run("local", None) for _ in range(args.repeats)]
    out["runs"]["local"] = local[-1] | {"cv_seconds": statistics.median(r["cv_seconds"] for r in local)}
    for w in [int(x) for x in args.workers.split(",")]:
        runs = [run("ray", w) for _ in range(args.repeats)]
        out["runs"][f"ray_{w}"] = runs[-1] | {"cv_seconds": statistics.median(r["cv_seconds"] for r in runs),
                                              "ray_start_seconds": statistics.median(r["ray_start_seconds"] for r in runs)}
        print(f"ray {w} worker(s): {out['runs'][f'ray_{w}']['cv_seconds']:.1f} s", flush=True)
    runs = out["runs"]
    if "ray_1" in runs and "ray_2" in runs:
        out["speedup_2_vs_1"] = runs["ray_1"]["cv_seconds"] / runs["ray_2"]["cv_seconds"]
        out["speedup_2_vs_1_including_ray_start"] = ((runs["ray_1"]["cv_seconds"] + runs["ray_1"]["ray_start_seconds"])
                                                      / (runs["ray_2"]["cv_seconds"] + runs["ray_2"]["ray_start_seconds"]))
        out["target_speedup"] = 1.7
        out["target_met"] = out["speedup_2_vs_1"] >= 1.7
    out["same_scores_everywhere"] = len({tuple(r["scores"]) for r in runs.values()}) == 1
    print({k: v for k, v in out.items() if k != "runs"})
    write("nested_cv", "python bench/nested_cv.py " + " ".join(sys.argv[1:]), out)


if __name__ == "__main__":
    main()
