"""Misconfiguration speaks up at startup (issue 18), through the real commands.

Each test writes a small Django project into a temporary folder and runs ``switchboard
serve`` or ``manage.py runserver`` on it in a subprocess, as an operator would, then reads
its exit status and output (and, where it starts, talks to it over real sockets).

A package that is "not installed" is hidden from the subprocess by an import hook that fails
its import the way a missing package does (as in tests/test_checks.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.scratch_project import HIDE_ABSENT_PACKAGES, write_project

REPO = Path(__file__).resolve().parent.parent
WAIT = 30.0

_SETTINGS = """
SECRET_KEY = "misconfiguration-test"
USE_TZ = True
DEBUG = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "proj.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
INSTALLED_APPS = ["switchboard"]
ASGI_APPLICATION = "proj.asgi.application"
"""

_ASGI = """
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from switchboard.routing import ProtocolTypeRouter, URLRouter
from proj.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {"http": django_app, "websocket": URLRouter(websocket_urlpatterns)}
)
"""

_ROUTING = """
from django.urls import path

from switchboard.generic.websocket import AsyncWebsocketConsumer


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)


websocket_urlpatterns = [path("ws/echo/", Echo.as_asgi())]
"""

# The project's run.py (a script, as runserver's autoreloader restarts it by its path): hides
# the top-level packages named in $ABSENT_PACKAGES (ModuleNotFoundError naming them, as for a
# package that is not installed), then runs `serve ...` or a management command.
_RUN_WITHOUT = (
    HIDE_ABSENT_PACKAGES
    + """
sys.path.insert(0, ".")
if sys.argv[1] == "serve":
    from switchboard.cli import main
    sys.exit(main(sys.argv[1:]))
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", *sys.argv[1:]])
"""
)


def _project(tmp_path: Path, settings: str = "", **modules: str) -> Path:
    write_project(
        tmp_path,
        {
            "urls": "urlpatterns = []\n",
            "asgi": _ASGI,
            "routing": _ROUTING,
            "settings": _SETTINGS + textwrap.dedent(settings),
            **modules,
        },
    )
    (tmp_path / "run.py").write_text(_RUN_WITHOUT)
    return tmp_path


def _env(project: Path, absent: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHBOARD_WORKERS"}
    env.update(
        DJANGO_SETTINGS_MODULE="proj.settings",
        PYTHONPATH=os.pathsep.join([str(project), str(REPO)]),
        ABSENT_PACKAGES=absent,
        PYTHONUNBUFFERED="1",
    )
    return env


def _run(project: Path, *args: str, absent: str = "") -> subprocess.CompletedProcess[str]:
    """A command expected to exit by itself (a refused start)."""
    return subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=project,
        env=_env(project, absent),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Running:
    """A command that keeps running (a server); its combined output in a file."""

    def __init__(self, project: Path, *args: str) -> None:
        self.log_path = project / "output.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "run.py", *args],
            cwd=project,
            env=_env(project),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # runserver's reloader and its child: one group to stop
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.process.poll() is None, f"exited before {text!r}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} in {timeout}s:\n{self.output}"
            time.sleep(0.05)
        return self.output

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(20)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
            self._log.close()


@contextmanager
def _serving(project: Path, *args: str) -> Iterator[tuple[Running, int]]:
    port = _free_port()
    server = Running(project, "serve", "proj.asgi:application", "--port", str(port), *args)
    try:
        server.wait_for("Listening on")
        yield server, port
    finally:
        server.stop()


# -- 2: an in-memory layer under --workers N ---------------------------------------------------

_INMEMORY = """
CHANNEL_LAYERS = {
    "default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"},
}
"""


def test_an_in_memory_layer_under_several_workers_refuses_to_start(tmp_path):
    """Each worker process would have its own groups: a group message would reach a share of
    the clients, silently (issue 12 measured 38% lost). Refused, naming what to set."""
    project = _project(tmp_path, _INMEMORY)
    result = _run(project, "serve", "proj.asgi:application", "--port", "0", "--workers", "2")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("switchboard: error: System check identified errors:\n")
    assert "(switchboard.E005) CHANNEL_LAYERS['default'] is an in-memory layer" in result.stderr
    assert "`switchboard serve --workers 2` runs 2 processes" in result.stderr
    assert '{"BACKEND": "switchboard.layers.ipc.IPCChannelLayer"}' in result.stderr
    assert '"switchboard.layers.redis.RedisChannelLayer"' in result.stderr
    assert "Listening on" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "settings",
    [
        _INMEMORY + 'SILENCED_SYSTEM_CHECKS = ["switchboard.E005"]\n',  # said on purpose
        "",  # no CHANNEL_LAYERS: the workers get the IPC layer
    ],
    ids=["silenced", "no-setting"],
)
def test_several_workers_start_without_an_explicit_in_memory_layer(tmp_path, settings):
    project = _project(tmp_path, settings)
    with _serving(project, "--workers", "2") as (server, _):
        pass
    assert "E005" not in server.output
    if not settings:
        assert "using the IPC channel layer" in server.output


def test_an_in_memory_layer_with_one_worker_starts(tmp_path):
    with _serving(_project(tmp_path, _INMEMORY)) as (server, _):
        pass
    assert "E005" not in server.output


# -- 3: no ASGI_APPLICATION for runserver ------------------------------------------------------


def test_no_asgi_application_is_a_check_warning_and_runserver_says_http_only(tmp_path):
    """Without ASGI_APPLICATION runserver serves Django's own handler (HTTP only); it used to
    announce "HTTP and WebSocket" and then answer every WebSocket handshake with 500."""
    project = _project(tmp_path, 'del ASGI_APPLICATION\nINSTALLED_APPS += ["proj"]\n')
    result = _run(project, "check")
    assert result.returncode == 0, result.stderr
    assert "(switchboard.W002) ASGI_APPLICATION is not set" in result.stderr
    assert 'HINT: Set ASGI_APPLICATION = "mysite.asgi.application"' in result.stderr

    port = _free_port()
    server = Running(project, "runserver", f"127.0.0.1:{port}", "--noreload")
    try:
        output = server.wait_for("Quit the server with")
        assert "(switchboard.W002)" in output
        assert (
            "Starting Switchboard ASGI development server (HTTP only: set ASGI_APPLICATION for "
            f"WebSocket) at http://127.0.0.1:{port}/"
        ) in output
        assert "HTTP and WebSocket" not in output

        # What the check says is so: the handshake gets 500.
        async def handshake() -> int:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://127.0.0.1:{port}/ws/echo/", open_timeout=10):
                    pass
            return refused.value.response.status_code

        assert asyncio.run(handshake()) == 500
    finally:
        server.stop()


def test_runserver_banner_with_asgi_application_promises_websocket(tmp_path):
    project = _project(tmp_path)
    assert "W002" not in _run(project, "check").stderr
    port = _free_port()
    server = Running(project, "runserver", f"127.0.0.1:{port}", "--noreload")
    try:
        output = server.wait_for("Quit the server with")
        assert "Starting Switchboard ASGI development server (HTTP and WebSocket) at " in output
    finally:
        server.stop()


# -- 4: serve runs the system checks -----------------------------------------------------------


def test_serve_refuses_a_redis_layer_without_redis_installed_with_the_install_hint(tmp_path):
    """Before, the server started and the first WebSocket connection failed with a 500."""
    project = _project(
        tmp_path,
        """
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
                "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
            }
        }
        """,
    )
    result = _run(project, "serve", "proj.asgi:application", "--port", "0", absent="redis")
    assert result.returncode == 2, result.stderr
    assert (
        "(switchboard.E003) CHANNEL_LAYERS['default'] BACKEND "
        "'switchboard.layers.redis.RedisChannelLayer' cannot be imported: "
        "ModuleNotFoundError: No module named 'redis"
    ) in result.stderr
    assert 'HINT: pip install "switchboard[redis]"' in result.stderr
    assert "Listening on" not in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_logs_check_warnings_and_starts(tmp_path):
    project = _project(
        tmp_path,
        # runserver's own concerns: no ASGI_APPLICATION (W002), app order (E001), not
        # installed (W001). serve takes its application on the command line: none applies.
        'del ASGI_APPLICATION\nINSTALLED_APPS = ["django.contrib.staticfiles"]\n'
        'STATIC_URL = "static/"\n',
        checks="""
        from django.core.checks import Warning, register


        @register()
        def project_check(app_configs=None, **kwargs):
            return [Warning("a project warning", hint="its hint", id="proj.W001")]
        """,
        asgi=_ASGI.replace("django_app = ", "import proj.checks\ndjango_app = "),
    )
    with _serving(project) as (server, port):
        output = server.output
    warning = re.search(r"WARNING \[\d+\] switchboard.checks: System check: (.*)", output)
    assert warning, output
    assert warning.group(1) == "?: (proj.W001) a project warning"
    assert "\tHINT: its hint" in output
    for runserver_only in ("switchboard.W001", "switchboard.E001", "switchboard.W002"):
        assert runserver_only not in output


# -- 5: an application that fails to import ----------------------------------------------------

_BROKEN = {
    "NameError": (
        "from django.urls import path\n\nwebsocket_urlpatterns = [pathh('ws/', None)]\n",
        "NameError: name 'pathh' is not defined",
        3,
    ),
    "SyntaxError": (
        "from django.urls import path\n\nwebsocket_urlpatterns = [path('ws/', None]\n",
        "SyntaxError: ",
        3,
    ),
}


@pytest.mark.parametrize("error", sorted(_BROKEN))
def test_serve_names_the_file_and_line_of_an_import_error_in_one_line(tmp_path, error):
    """`serve --help` promises status 2 for an application that cannot be imported; a typo
    in routing.py was a raw traceback and status 1."""
    source, expected, line = _BROKEN[error]
    project = _project(tmp_path, routing=source)
    result = _run(project, "serve", "proj.asgi:application", "--port", "0")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("switchboard: error: Cannot import module 'proj.asgi': ")
    assert expected in lines[0]
    assert lines[0].endswith(f"({project / 'proj' / 'routing.py'}, line {line})")


def test_serve_debug_log_level_shows_the_import_traceback(tmp_path):
    project = _project(tmp_path, routing=_BROKEN["NameError"][0])
    result = _run(project, "serve", "proj.asgi:application", "--port", "0", "--log-level", "debug")
    assert result.returncode == 2, result.stderr
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("switchboard: error: Cannot import")


def test_runserver_reports_an_import_error_once_and_restarts_when_it_is_fixed(tmp_path):
    """Under the autoreloader a failed check was a thread traceback, and fixing the file did
    not restart the server: a module that failed to import is not among the files watched."""
    project = _project(tmp_path, routing=_BROKEN["NameError"][0])
    port = _free_port()
    server = Running(project, "runserver", f"127.0.0.1:{port}")
    try:
        output = server.wait_for("System check identified 1 issue")
        assert "(switchboard.E002) ASGI_APPLICATION 'proj.asgi.application' cannot be " in output
        assert f"NameError: name 'pathh' is not defined ({project / 'proj' / 'routing.py'}, " in (
            output
        )
        assert "Traceback" not in output
        assert "Exception in thread" not in output
        time.sleep(1.5)  # past the reloader's first scan, which is its baseline
        (project / "proj" / "routing.py").write_text(textwrap.dedent(_ROUTING))
        server.wait_for("Starting Switchboard ASGI development server (HTTP and WebSocket)")
        assert "routing.py changed, reloading." in server.output
    finally:
        server.stop()


# -- 6: a WebSocket path nothing routes --------------------------------------------------------


def test_an_unrouted_websocket_path_is_refused_with_404_and_one_warning(tmp_path):
    """Channels' URLRouter raises ValueError("No route found for path ..."), which Daphne and
    uvicorn report as an application error: a traceback, and 500 for the handshake (Daphne's
    WebSocketProtocol.handle_exception denies a handshake in progress with 500).
    Here the ProtocolTypeRouter refuses the handshake with 404, through the ASGI WebSocket
    denial-response extension (ASGI spec, "websocket.http.response"), and logs one warning."""
    project = _project(tmp_path)

    async def handshakes(port: int) -> int:
        async with connect(f"ws://127.0.0.1:{port}/ws/echo/", open_timeout=10) as ws:
            await ws.send("routed")
            assert await asyncio.wait_for(ws.recv(), 10) == "routed"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{port}/ws/nowhere/", open_timeout=10):
                pass
        return refused.value.response.status_code

    with _serving(project) as (server, port):
        assert asyncio.run(handshakes(port)) == 404
        server.wait_for('"WEBSOCKET /ws/nowhere/ HTTP/1.1" 404')
        output = server.output
    warnings = [line for line in output.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, output
    assert warnings[0].endswith(
        "switchboard.routing: No route for WebSocket path '/ws/nowhere/': handshake refused "
        "with 404"
    )
    assert " ERROR " not in output
    assert "Traceback" not in output
