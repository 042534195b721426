"""What a user installs: the wheel and sdist built from this checkout, installed into a fresh
virtualenv with nothing else of the checkout around.

Built and installed with the uv that ``scripts/_env.sh`` pins (``SB_UV``); dependencies are held
to the versions in ``uv.lock`` so the install is the one CI tested. PEP 561: a package that ships
type hints says so with a ``py.typed`` marker, which must be inside the installed package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Shipped as package data: the browser client and its types, and the PEP 561 marker.
PACKAGE_DATA = (
    "switchboard/static/switchboard/switchboard.js",
    "switchboard/static/switchboard/switchboard.d.ts",
    "switchboard/py.typed",
)


def _uv() -> str:
    """The pinned uv: ``SB_UV`` (exported by scripts/_env.sh), else where _env.sh installs it."""
    from_env = os.environ.get("SB_UV")
    if from_env and os.access(from_env, os.X_OK):
        return from_env
    pinned = re.search(r"^UV_VERSION=(\S+)$", (ROOT / "scripts/_env.sh").read_text(), re.M)
    assert pinned, "scripts/_env.sh no longer sets UV_VERSION"
    fallback = ROOT / f".cache/uv-{pinned.group(1)}/bin/uv"
    if os.access(fallback, os.X_OK):
        return str(fallback)
    pytest.fail(
        f"no uv: SB_UV is unset and {fallback} does not exist; run the tests through "
        "./scripts/test, which installs the pinned uv"
    )


def _clean_env() -> dict[str, str]:
    # Nothing of this test run (its virtualenv, its Django settings) leaks into the commands.
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", UV_LINK_MODE="copy")
    return env


@dataclass
class Built:
    wheel: Path
    sdist: Path
    venv: Path
    workdir: Path


def _run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    uv = _uv()
    tmp = tmp_path_factory.mktemp("packaging")
    env = _clean_env()
    # setuptools keeps build/ and the egg-info's file list in the source tree and reuses them:
    # a file once built would stay in later wheels and sdists even after it stopped being
    # package data. Both go to this run's own directory instead.
    scratch = tmp / "setuptools"
    extra_cfg = tmp / "setuptools.cfg"
    extra_cfg.write_text(
        f"[build]\nbuild_base = {scratch / 'build'}\n[egg_info]\negg_base = {scratch}\n"
    )
    scratch.mkdir()
    dist = tmp / "dist"
    _run(
        [uv, "build", "--wheel", "--sdist", "-o", dist],
        ROOT,
        {**env, "DIST_EXTRA_CONFIG": str(extra_cfg)},
    )
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")

    venv = tmp / "venv"
    _run([uv, "venv", "--python", sys.executable, venv], tmp, env)
    constraints = tmp / "constraints.txt"
    _run(
        [
            uv,
            "export",
            "--frozen",
            "--no-hashes",
            "--no-dev",
            "--no-emit-project",
            "-o",
            constraints,
        ],
        ROOT,
        env,
    )
    _run(
        [uv, "pip", "install", "--python", venv / "bin/python", wheel, "-c", constraints], tmp, env
    )
    # Commands run from here, away from the checkout, so only the installed package is found.
    workdir = tmp / "elsewhere"
    workdir.mkdir()
    return Built(wheel=wheel, sdist=sdist, venv=venv, workdir=workdir)


def test_wheel_ships_the_package_data(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    assert [p for p in PACKAGE_DATA if p not in names] == []


def test_sdist_ships_the_package_data_and_the_license(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = set(sdist.getnames())
    top = built.sdist.name.removesuffix(".tar.gz")
    wanted = [f"{top}/{p}" for p in (*PACKAGE_DATA, "LICENSE")]
    assert [p for p in wanted if p not in names] == []


def _installed_version(built: Built) -> str:
    code = "import importlib.metadata as m; print(m.version('switchboard'))"
    return _run([built.venv / "bin/python", "-c", code], built.workdir, _clean_env()).strip()


def test_console_script_reports_the_installed_version(built: Built) -> None:
    version = _installed_version(built)
    assert built.wheel.name.startswith(f"switchboard-{version}-")
    out = _run([built.venv / "bin/switchboard", "--version"], built.workdir, _clean_env())
    assert version in out.split(), out


def test_base_install_imports(built: Built) -> None:
    """The base install (no extras) imports: the server, the in-memory and IPC layers, and
    the consumers; from the venv, not from the checkout."""
    code = (
        "import switchboard, switchboard.server, switchboard.layers, switchboard.consumer, "
        "switchboard.generic.websocket, importlib.metadata as m\n"
        "print(switchboard.__file__)\n"
        "assert switchboard.__version__ == m.version('switchboard'), switchboard.__version__\n"
    )
    out = _run([built.venv / "bin/python", "-c", code], built.workdir, _clean_env())
    assert Path(out.strip()).is_relative_to(built.venv), out
