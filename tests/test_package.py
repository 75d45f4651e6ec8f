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
