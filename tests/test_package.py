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


IMPORTS_AT_LOAD = r'''
import ast, json, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[2])
model = mlflow.pyfunc.load_model(sys.argv[1])  # the hash check and the golden replay, then a forecast
rows = len(model.predict(model.input_example))
imported = set()  # every package skewfree's loaded modules name in an import, at their top or inside a function
for name, module in list(sys.modules.items()):
    if name.partition(".")[0] == "skewfree" and getattr(module, "__file__", None):
        for node in ast.walk(ast.parse(open(module.__file__).read())):
            if isinstance(node, ast.Import): imported |= {a.name.partition(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module: imported.add(node.module.partition(".")[0])
loaded = sorted(t for t in imported if t in sys.modules and t not in sys.stdlib_module_names and t != "skewfree")
print(json.dumps({"rows": rows, "loaded": loaded}))
'''


def _closure(lines: list[str]) -> set[str]:
    "Every distribution the requirement lines bring (markers as this machine reads them) and their dependencies, without extras."
    import re
    from importlib import metadata as md

    from packaging.requirements import Requirement
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    seen, stack = set(), [Requirement(line) for line in lines]
    while stack:
        req = stack.pop()
        if (req.marker and not req.marker.evaluate({"extra": ""})) or norm(req.name) in seen: continue
        seen.add(norm(req.name))
        try: stack += [Requirement(r) for r in md.requires(req.name) or []]
        except md.PackageNotFoundError: pass
    return seen


def test_each_model_familys_requirements_hold_every_package_its_code_loads(trained, store):
    # an environment built from the artifact's requirements alone (`mlflow models serve --env-manager virtualenv`) must hold every
    # package skewfree's own code (which travels inside the artifact) imports to load and forecast: hydra, coreforecast, Lightning…
    import json
    import re
    from importlib import metadata as md

    import mlflow
    from skewfree.config import compose_config
    from skewfree.train import train
    uris = {"nlinear": trained.model_uri}
    for model in ("seasonal_naive", "xgboost"):
        uris[model] = train(compose_config([f"model={model}", "profile=smoke", f"mlflow.registered_model=portable-{model}"])).model_uri
    owners = md.packages_distributions()
    for model, uri in uris.items():
        lines = [line for line in Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text().splitlines() if line and not line.startswith("#")]
        done = subprocess.run([sys.executable, "-c", IMPORTS_AT_LOAD, uri, store], capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, (model, done.stderr[-2000:])
        answer, brought = json.loads(done.stdout.strip().splitlines()[-1]), _closure(lines)
        assert answer["rows"] > 0 and answer["loaded"], (model, answer)
        unlisted = [t for t in answer["loaded"] if not {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(t, [t])} & brought]
        assert not unlisted, (model, unlisted, lines)  # a package the artifact's code loads that its requirements would not install
