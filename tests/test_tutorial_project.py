"""The Channels tutorial's project, moved to Switchboard, starts and chats however it is served.

Its ``mysite/asgi.py`` imports ``switchboard.auth``, ``switchboard.routing`` and
``switchboard.security.websocket`` before ``DJANGO_SETTINGS_MODULE`` is set and before
``get_asgi_application()`` sets Django up, so every module a project's asgi.py may import has to
be importable in that state (as Channels' are). Everything here runs in subprocesses: the
suite's own process has Django set up already, which would hide exactly that failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent
SITE = Path(__file__).resolve().parent / "sites" / "tutorial_site"
PACKAGE = REPO / "switchboard"

# Not importable on their own by design: Django loads management commands once it is set up,
# and __main__ is the command line itself.
NOT_LIBRARY_MODULES = ("switchboard.__main__", "switchboard.management.commands.")


def _public_modules() -> list[str]:
    """Every module of the package, found on disk so a new module is guarded automatically."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if not name.startswith(NOT_LIBRARY_MODULES) and "__pycache__" not in parts:
            names.append(name)
    return names


def _env(tmp_path: Path, settings_module: str | None) -> dict[str, str]:
    env = dict(os.environ)
    # The suite's conftest sets tests.sites.default.settings; the tutorial must start without it.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if settings_module:
        env["DJANGO_SETTINGS_MODULE"] = settings_module
    env.update(
        TUTORIAL_DATABASE=str(tmp_path / "tutorial.sqlite3"),
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    return env


# -- every public module imports before Django is set up ----------------------------------


@pytest.mark.parametrize("module", _public_modules())
def test_module_imports_without_django_settings(module):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


_IMPORT_ALL_BEFORE_SETUP = """
import importlib, json, sys, traceback
from django.apps import apps
failures = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-3)
print(json.dumps({"failures": failures, "apps_ready": apps.ready}))
"""


def test_modules_import_with_settings_named_but_django_not_set_up():
    # What `switchboard serve` sees when DJANGO_SETTINGS_MODULE is already in the environment:
    # settings readable, app registry not populated (models would raise AppRegistryNotReady).
    settings = "tests.sites.default.settings"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=settings, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL_BEFORE_SETUP, *_public_modules()],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == {}, "\n".join(report["failures"].values())
    assert report["apps_ready"] is False  # no module quietly set Django up as a side effect


# -- the tutorial project served three ways ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Served:
    """A server subprocess for the tutorial site, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, port: int) -> None:
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            args, cwd=SITE, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited early:\n{self.output}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server is not listening:\n{self.output}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()


@pytest.fixture
def serve(tmp_path) -> Iterator:
    started: list[_Served] = []

    def start(command: str, settings_module: str | None) -> _Served:
        port = _free_port()
        if command == "serve":
            args = [sys.executable, "-m", "switchboard", "serve", "mysite.asgi:application"]
            args += ["--host", "127.0.0.1", "--port", str(port)]
        else:
            args = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        served = _Served(args, _env(tmp_path, settings_module), tmp_path / f"{command}.log", port)
        started.append(served)
        served.wait_listening()
        return served

    yield start
    for served in started:
        served.stop()


async def _chat_in_lobby(address: str) -> None:
    """The tutorial's exchange: two sockets in a room, what one sends both receive."""
    status, page = await asyncio.to_thread(_get, f"http://{address}/chat/lobby/")
    assert status == 200
    assert '<script id="room-name" type="application/json">"lobby"</script>' in page
    room, origin = f"ws://{address}/ws/chat/lobby/", f"http://{address}"
    async with connect(room, origin=origin) as alice, connect(room, origin=origin) as bob:
        await alice.send(json.dumps({"message": "hello, tutorial"}))
        for client in (bob, alice):
            assert json.loads(await asyncio.wait_for(client.recv(), 10)) == {
                "message": "hello, tutorial"
            }


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


# Unset is what the tutorial's reader has (asgi.py sets it after the imports); set in the
# environment, settings load but the app registry is still empty during those imports.
@pytest.mark.parametrize("settings_module", [None, "mysite.settings"])
async def test_switchboard_serve(serve, settings_module):
    served = await asyncio.to_thread(serve, "serve", settings_module)
    await _chat_in_lobby(served.address)


async def test_manage_py_runserver(serve):
    served = await asyncio.to_thread(serve, "runserver", "mysite.settings")
    await _chat_in_lobby(served.address)
    assert "Starting Switchboard ASGI development server" in served.output


def test_live_server_test_case(tmp_path):
    # Django's own test runner, as the tutorial's part 4 runs its tests.
    result = subprocess.run(
        [sys.executable, "manage.py", "test", "chat", "--noinput", "-v", "2"],
        cwd=SITE,
        env=_env(tmp_path, None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "test_room_page_and_chat_message_between_two_sockets" in output
    assert "test_a_socket_without_an_origin_or_from_another_site_is_refused" in output
    assert "Ran 2 tests" in output and "\nOK" in output
