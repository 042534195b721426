"""Autobahn|Testsuite's fuzzing client (``wstest``), installed and run by the suite itself.

wstest is Python 2.7 software: it runs from a virtualenv made from a CPython 2.7 interpreter
(pyenv's ``~/.pyenv/versions/2.7.*``, or ``$PY27``) with a set of pinned packages that still
install on 2.7. That venv is built once and cached in ``~/.cache/switchboard-autobahn-<hash>``,
the hash taken over the pins, so changing a pin builds a new one; a lock file keeps two test
runs from building the same venv at once, and a marker written last tells a finished build
from one that was interrupted.

Not part of the ``switchboard`` package: tests import it from the repo root.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AutobahnError",
    "FuzzingReport",
    "NoPython27",
    "ensure_wstest",
    "find_python27",
    "run_fuzzing_client",
]

# virtualenv 20.21 is the last release that can still create Python 2.7 environments; it runs
# from a throwaway Python 3 venv.
VIRTUALENV = "virtualenv==20.21.1"
# Installed into the 2.7 venv in this order. Setuptools 44 is the last for Python 2, and the
# later groups build from sdists against it (hence no build isolation, which would fetch a
# setuptools that no longer runs on 2.7).
INSTALL_STEPS: tuple[tuple[bool, tuple[str, ...]], ...] = (
    (
        True,
        (
            "setuptools==44.0.0",
            "incremental==16.10.1",
            "pyOpenSSL==19.1.0",
            "cryptography==3.3.2",
            "zope.interface==4.6.0",
        ),
    ),
    (False, ("Twisted==19.10.0",)),
    (
        False,
        (
            "txaio==2.1.0",
            "jinja2==2.11.3",
            "markupsafe==1.1.1",
            "Werkzeug==1.0.1",
            "klein==17.10.0",
            "service_identity==18.1.0",
            "unittest2==1.1.0",
            "six==1.16.0",
            "autobahn[accelerate,twisted]==0.10.9",
        ),
    ),
)
# The test suite itself, from its sdist: it is fetched by the Python 3 pip (the 2.7 pip would
# not pick this release) and installed from the file.
TESTSUITE = "autobahntestsuite==25.10.1"

DEFAULT_CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "10.*")
BEHAVIOURS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
BUILD_TIMEOUT = 900.0
_MARKER = "switchboard-pins.json"


class AutobahnError(RuntimeError):
    """Building wstest's venv or running it went wrong; the message quotes the tool's output."""


class NoPython27(AutobahnError):
    """No CPython 2.7 interpreter to build wstest's venv from."""


def _pins() -> dict[str, object]:
    return {
        "virtualenv": VIRTUALENV,
        "steps": [[isolated, list(specs)] for isolated, specs in INSTALL_STEPS],
        "testsuite": TESTSUITE,
    }


def cache_dir() -> Path:
    """Where the venv for the current pins lives (it may not exist yet)."""
    digest = hashlib.sha256(json.dumps(_pins(), sort_keys=True).encode()).hexdigest()[:12]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / f"switchboard-autobahn-{digest}"


def find_python27() -> Path:
    """``$PY27``, else the newest pyenv CPython 2.7; raises :class:`NoPython27` with the fix."""
    if os.environ.get("PY27"):
        candidates = [os.environ["PY27"]]
    else:
        pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
        pattern = os.path.join(pyenv_root, "versions", "2.7.*", "bin", "python")
        candidates = sorted(glob.glob(pattern), key=_version_key, reverse=True)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    where = candidates[0] if candidates else pattern
    raise NoPython27(
        f"Autobahn|Testsuite (wstest) runs on CPython 2.7 and there is none at {where}. "
        "Install one with `pyenv install 2.7.18` (or set PY27 to a CPython 2.7 python)."
    )


def _version_key(path: str) -> tuple[int, ...]:
    # .../versions/2.7.18/bin/python -> (2, 7, 18): 2.7.18 sorts after 2.7.9.
    version = Path(path).parents[1].name
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def _run(args: Sequence[str | Path], what: str) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    done = subprocess.run(
        [str(arg) for arg in args],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise AutobahnError(f"building wstest's venv: {what} failed ({done.returncode}):\n{output}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # Blocks while another run builds the venv.
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _complete(venv: Path) -> bool:
    # bin/python is a link to the 2.7 interpreter: a removed pyenv version means a rebuild.
    marker = venv / _MARKER
    return (
        marker.is_file()
        and (venv / "bin" / "python").exists()
        and (venv / "bin" / "wstest").is_file()
        and json.loads(marker.read_text()) == _pins()
    )


def ensure_wstest() -> Path:
    """The path of a working ``wstest``, building its cached venv first if needed."""
    venv = cache_dir()
    wstest = venv / "bin" / "wstest"
    if _complete(venv):
        return wstest
    python27 = find_python27()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.with_name(venv.name + ".lock")):
        if _complete(venv):  # Built by another run while this one waited for the lock.
            return wstest
        shutil.rmtree(venv, ignore_errors=True)  # Left half-built by an interrupted run.
        with tempfile.TemporaryDirectory(prefix="switchboard-autobahn-build-") as scratch:
            _build(venv, python27, Path(scratch))
        (venv / _MARKER).write_text(json.dumps(_pins(), sort_keys=True))
    return wstest


def _build(venv: Path, python27: Path, scratch: Path) -> None:
    bootstrap = scratch / "bootstrap"
    _run([sys.executable, "-m", "venv", bootstrap], "a Python 3 venv for virtualenv")
    py3 = bootstrap / "bin" / "python"
    _run([py3, "-m", "pip", "install", "-q", VIRTUALENV], f"pip install {VIRTUALENV}")
    _run([py3, "-m", "virtualenv", "-q", "-p", python27, venv], f"virtualenv -p {python27}")
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    for isolated, specs in INSTALL_STEPS:
        flags = [] if isolated else ["--no-build-isolation"]
        _run([*pip, *flags, *specs], "pip install " + " ".join(specs))
    sdists = scratch / "sdist"
    fetch: list[str | Path] = [
        py3,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--no-binary",
        ":all:",
    ]
    _run([*fetch, "-d", sdists, TESTSUITE], f"pip download {TESTSUITE}")
    (sdist,) = sdists.glob("autobahntestsuite-*.tar.gz")
    _run([*pip, "--no-build-isolation", sdist], f"pip install {sdist.name}")


@dataclass
class FuzzingReport:
    """What the fuzzing client's ``reports/index.json`` says, summed over its cases."""

    counts: Counter[str] = field(default_factory=Counter)  # behaviour -> number of cases
    failed: list[str] = field(default_factory=list)  # case ids FAILED on messages or on close
    index: Path | None = None

    @property
    def passed(self) -> int:
        return self.counts["OK"] + self.counts["NON-STRICT"] + self.counts["INFORMATIONAL"]

    def summary(self) -> str:
        counts = ", ".join(f"{self.counts[name]} {name}" for name in BEHAVIOURS)
        failed = " ".join(self.failed) or "none"
        return f"autobahn: {counts}; failed cases: {failed}; report: {self.index}"


def parse_index(index: Path) -> FuzzingReport:
    report = FuzzingReport(index=index)
    failed: set[str] = set()
    for cases in json.loads(index.read_text()).values():  # One entry per agent (server).
        for case, result in cases.items():
            report.counts[result["behavior"]] += 1
            if "FAILED" in (result["behavior"], result.get("behaviorClose")):
                failed.add(case)
    report.failed = sorted(failed, key=_case_key)
    return report


def _case_key(case: str) -> tuple[int, ...]:
    # "2.10" sorts after "2.9".
    return tuple(int(part) if part.isdigit() else -1 for part in case.split("."))


def run_fuzzing_client(
    url: str, outdir: Path, cases: Sequence[str] = DEFAULT_CASES, timeout: float = 600.0
) -> FuzzingReport:
    """Run wstest's fuzzing client against the server at ``url`` (``ws://host:port``).

    The server should echo every text and binary message and allow messages of 16 MiB. The
    spec, ``wstest.log`` and the HTML and JSON reports are written under ``outdir``.
    """
    wstest = ensure_wstest()
    reports = outdir / "reports"
    spec = {
        "outdir": str(reports),
        "servers": [{"agent": "switchboard", "url": url}],
        "cases": list(cases),
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    (outdir / "fuzzingclient.json").write_text(json.dumps(spec, indent=2))
    log = outdir / "wstest.log"
    with open(log, "wb") as out:
        # The report, not wstest's exit status, is the verdict on the server.
        subprocess.run(
            [str(wstest), "-m", "fuzzingclient", "-s", "fuzzingclient.json"],
            cwd=outdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    index = reports / "index.json"
    if not index.is_file():
        tail = log.read_text(errors="replace")[-4000:]
        raise AutobahnError(f"wstest wrote no {index}; its log ends:\n{tail}")
    return parse_index(index)
