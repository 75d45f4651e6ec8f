"""A new user's first hour, measured (#28): the README's first command on a fresh clone and a fresh venv.

    python bench/first_hour.py

The committed tree (`git archive HEAD`) is unpacked into a temporary folder; there, exactly as the README says,
a fresh venv gets `torch==2.13.0` (the CPU build where one is on disk or on the CPU index), then `pip install -e .`,
then `papermill nbs/train.ipynb ... -p model nlinear` runs the main job against the clone's own sqlite store.
Install and training are timed apart; the venv's size (bytes on disk, apparent), its CUDA libraries, its largest
packages, and every stderr output the executed notebook holds (the warnings a user would see) are recorded.
Timings depend on the network and pip's cache: the machine's cache is whatever earlier installs left in it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write  # noqa: E402

ROOT = HERE.parent


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 1800) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0: sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return time.perf_counter() - started, done


def apparent_bytes(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def notebook_stderr(path: Path) -> list[str]:
    "Every stderr output of the executed notebook, first line each: what a user sees in red."
    cells = json.loads(path.read_text())["cells"]
    said = ["".join(o.get("text", "")) for c in cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    return [s.strip().splitlines()[0][:200] for s in said if s.strip()]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="skewfree-first-hour-") as tmp:
        clone = Path(tmp) / "skewfree"
        clone.mkdir()
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "x"], cwd=clone, input=archive, check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VIRTUAL_ENV"))} | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        venv = clone / ".venv"
        run([sys.executable, "-m", "venv", str(venv)], clone, env)
        pip, bin_ = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"], venv / "bin"
        torch_s, _ = run([*pip, "torch==2.13.0"], clone, env)
        install_s, _ = run([*pip, "-e", "."], clone, env)
        site = next((venv / "lib").glob("python3*/site-packages"))
        listed = json.loads(run([str(bin_ / "python"), "-m", "pip", "list", "--format", "json"], clone, env)[1].stdout)
        names = sorted(p["name"].lower() for p in listed)
        sizes = sorted(((apparent_bytes(p), p.name) for p in site.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")), reverse=True)
        torch_version = next(p["version"] for p in listed if p["name"].lower() == "torch")
        (clone / "runs").mkdir()
        train_s, _ = run([str(bin_ / "papermill"), "nbs/train.ipynb", "runs/train-nlinear.ipynb", "-p", "model", "nlinear"], clone,
                         env | {"PATH": f"{bin_}:{env.get('PATH', '')}"})
        executed = (clone / "runs" / "train-nlinear.ipynb").read_text()
        uri = re.search(r"MODEL_URI=(models:/[^\"\\\s]+)", executed)
        epochs = len(re.findall(r"epoch \d+/\d+  train_loss", executed))
        smoke_s, _ = run([str(bin_ / "papermill"), "nbs/train.ipynb", "runs/smoke.ipynb", "-p", "model", "nlinear", "-p", "overrides",
                          '["profile=smoke"]'], clone, env | {"PATH": f"{bin_}:{env.get('PATH', '')}"})
        results = {
            "venv_bytes": apparent_bytes(venv), "venv_target_bytes": 2_000_000_000,
            "torch_install_s": round(torch_s, 1), "package_install_s": round(install_s, 1), "main_job_train_s": round(train_s, 1),
            "first_command_s": round(torch_s + install_s + train_s, 1), "first_command_target_s": 360, "smoke_run_s": round(smoke_s, 1),
            "torch": torch_version, "xgboost_distribution": [n for n in names if n.startswith("xgboost")],
            "cuda_packages": [n for n in names if n.startswith("nvidia-") or "cuda" in n], "ray_installed": "ray" in names,
            "largest_packages_mib": {name: round(size / 2**20) for size, name in sizes[:12]},
            "model_uri": uri[1] if uri else None, "epoch_lines": epochs,
            "notebook_stderr": notebook_stderr(clone / "runs" / "train-nlinear.ipynb"),
            "smoke_notebook_stderr": notebook_stderr(clone / "runs" / "smoke.ipynb"),
        }
    write("first_hour", "python bench/first_hour.py", results)


if __name__ == "__main__":
    main()
