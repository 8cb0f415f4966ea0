"""Print the requirements of fitq's core and the named extras, read from pyproject.toml:

    python requirements.py worker > requirements.txt

The images install these in a layer of their own before copying the source, so a change to
the code rebuilds only the small layer that installs fitq itself (``pip install --no-deps``)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(requirements))
