"Render README.md from nbs/index.ipynb (quarto, which nbdev_readme needs, cannot be installed); --check fails when README.md is stale."
import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
rendered = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "markdown", "--stdout", str(root / "nbs" / "index.ipynb")],
                          capture_output=True, text=True, check=True).stdout
rendered = "<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook -->\n\n" + rendered.strip() + "\n"
readme = root / "README.md"
if "--check" in sys.argv:
    if readme.read_text() != rendered:
        sys.exit("README.md is stale: run `python .ci/readme.py` and commit it.")
    print("README.md is fresh.")
else:
    readme.write_text(rendered)
    print("wrote README.md")
