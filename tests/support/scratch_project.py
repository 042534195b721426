"""A small Django project written into a temporary folder, for tests that run the real
commands on it in subprocesses (tests/test_checks.py, tests/test_misconfiguration.py).

``write_project`` writes the package ``proj``; ``HIDE_ABSENT_PACKAGES`` is the start of a
runner script that makes the top-level packages named in $ABSENT_PACKAGES fail to import the
way a package that is not installed does (ModuleNotFoundError naming it).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

HIDE_ABSENT_PACKAGES = """
import os, sys
absent = set(os.environ.get("ABSENT_PACKAGES", "").split())

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""


def write_project(folder: Path, modules: dict[str, str]) -> Path:
    """``folder/proj/<name>.py`` for each of ``modules`` (source, dedented), plus an empty
    ``__init__``; returns ``folder``."""
    package = folder / "proj"
    package.mkdir(exist_ok=True)
    for name, text in {"__init__": "", **modules}.items():
        (package / f"{name}.py").write_text(textwrap.dedent(text))
    return folder
