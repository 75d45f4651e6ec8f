"Installs skewfree from the metadata in settings.ini (nbdev 2 layout)."
from configparser import ConfigParser
import shlex

import setuptools

config = ConfigParser(delimiters=["="])
config.read("settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

cfg_keys = "version description keywords author author_email".split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected:
    assert o in cfg, f"missing expected setting: {o}"
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable", "6 - Mature", "7 - Inactive"]
py_versions = "3.11 3.12".split()

requirements = shlex.split(cfg.get("requirements", ""))
extras = {name: shlex.split(cfg.get(f"{name}_requirements", "")) for name in ("ray", "lab")}
extras["dev"] = shlex.split(cfg.get("dev_requirements", "")) + extras["ray"] + extras["lab"]
lic = licenses[cfg["license"].lower()]
min_python = cfg["min_python"]
lic_classifier = lic[1]
console_scripts = [s.strip() for s in cfg.get("console_scripts", "").split() if s.strip()]

setuptools.setup(
    **setup_cfg,  # version, description (the summary pip shows), keywords, author
    name=cfg["lib_name"],
    license=lic[0],
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
        "License :: " + lic_classifier,
    ]
    + ["Programming Language :: Python :: " + o for o in py_versions[py_versions.index(min_python):]],
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=["skewfree", "skewfree.*"]),
    include_package_data=True,
    package_data={"skewfree": ["data/*.csv.gz", "data/README.md"]},
    install_requires=requirements,
    extras_require=extras,  # ray: beyond one machine; lab: JupyterLab; dev: the tests, which need both
    python_requires=">=" + min_python,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={"console_scripts": console_scripts, "nbdev": [f"{cfg.get('lib_path')}={cfg.get('lib_path')}._modidx:d"]},
)
