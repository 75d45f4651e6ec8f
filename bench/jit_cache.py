"""The first large forward pass of NLinear's kernel in a fresh process: compiled there, or loaded from numba's disk cache.

    python bench/jit_cache.py [--runs 3] [--windows 2000]

`kernels._accumulate` runs a serial pass for fewer than 1024 windows and a threaded one (numba `parallel=True`) for
more. Each fresh process (a server worker, a Ray actor, a `skewfree predict` run) paid the threaded pass's compile on its
first large batch. Measured here, each in a fresh Python process: the first and second `_accumulate` of `--windows`
windows of 336 inputs and 24 outputs, once with the threaded pass's cache files removed (what every process paid when it
was not cached), then `--runs` times with them on disk; and whether the threaded pass equals the serial one to the bit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

PROBE = """
import json, time, numpy as np
from skewfree.kernels import _accumulate
rng = np.random.default_rng(0)
flat, steps, bias = rng.normal(size=({windows}, 336)), rng.normal(size=(336, 24)), rng.normal(size=24)
t0 = time.perf_counter(); threaded = _accumulate(flat, steps, bias); t1 = time.perf_counter(); _accumulate(flat, steps, bias); t2 = time.perf_counter()
serial = np.vstack([_accumulate(flat[i:i + 1000], steps, bias) for i in range(0, len(flat), 1000)])
print(json.dumps({{"first_s": t1 - t0, "second_s": t2 - t1, "equal_to_serial": bool(np.array_equal(threaded, serial))}}))
"""


def probe(windows: int) -> dict:
    "One fresh process's first and second pass."
    done = subprocess.run([sys.executable, "-c", PROBE.format(windows=windows)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--windows", type=int, default=2000)
    args = ap.parse_args()
    import skewfree.kernels
    cache = Path(skewfree.kernels.__file__).parent / "__pycache__"
    for old in cache.glob("kernels._accumulate.locals.rows_threaded-*"): old.unlink()
    compiled = probe(args.windows)  # the threaded pass compiled in the process, then written to the cache
    cached = [probe(args.windows) for _ in range(args.runs)]
    results = {"windows": args.windows, "compiled_in_process": compiled,
               "cached_first_s_median": statistics.median(c["first_s"] for c in cached), "cached_runs": cached,
               "equal_to_serial": compiled["equal_to_serial"] and all(c["equal_to_serial"] for c in cached)}
    print(json.dumps(results, indent=1))
    write("jit_cache", " ".join(["python", "bench/jit_cache.py", *sys.argv[1:]]), results)


if __name__ == "__main__":
    main()
