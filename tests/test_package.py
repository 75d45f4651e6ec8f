"""The installed package says what it is (#28): the version the code reports, a summary, a `--version`."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import metadata, version
from pathlib import Path

import skewfree


def test_the_installed_metadata_is_the_packages_own():
    assert version("skewfree") == skewfree.__version__
    assert metadata("skewfree")["Summary"].startswith("Forecasting without training-serving skew")


def test_version_flag():
    done = subprocess.run([str(Path(sys.executable).parent / "skewfree"), "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == f"skewfree {skewfree.__version__}"


def test_a_cpu_install_brings_no_cuda_libraries():
    from importlib.metadata import distributions
    names = {d.metadata["Name"].lower() for d in distributions()}
    assert "xgboost-cpu" in names and "xgboost" not in names, sorted(n for n in names if "xgboost" in n)
    assert not [n for n in names if n.startswith("nvidia-")]  # the CUDA libraries xgboost's Linux wheel pulls in
    assert "ray" in metadata("skewfree").get_all("Provides-Extra")  # one machine needs no Ray: it is an extra


def test_the_artifacts_requirements_resolve_on_the_package_index(trained):
    import mlflow
    requirements = Path(mlflow.pyfunc.get_model_dependencies(trained.model_uri))
    pins = [line for line in requirements.read_text().splitlines() if line and not line.startswith("#")]
    assert pins and not [p for p in pins if "+" in p], pins  # a local version (`+cpu`) is served by no index
    # every pin as the index has it, without installing: what `mlflow models serve` or a Docker build would resolve
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "-q", "-r", str(requirements)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
