"""``manage.py runserver`` of the chat example on Switchboard's server, as a real subprocess.

Real HTTP (urllib) and WebSocket (websockets) clients; Ctrl-C is simulated with SIGINT to the
server's whole process group, as a terminal delivers it to the reloader and its child alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "chat"
STATIC_FILE = "/static/admin/css/base.css"  # From django.contrib.admin, via the finders.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_sigint() -> None:
    # A shell's background job inherits SIGINT ignored; Ctrl-C must reach the server here.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class RunServer:
    """One ``manage.py runserver`` process group, its combined output in a log file."""

    def __init__(
        self, project: Path, database: Path, log_path: Path, *args: str, debug: bool = True
    ) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="chatsite.settings",  # Not the suite's own settings.
            CHAT_DATABASE=str(database),
            DJANGO_DEBUG="1" if debug else "0",
            PYTHONUNBUFFERED="1",
        )
        env.pop("CHAT_REDIS_URL", None)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", self.address, *args],
            cwd=project,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"runserver exited early:\n{self.output}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"runserver is not listening:\n{self.output}") from None
                time.sleep(0.05)

    def interrupt(self, timeout: float = 10.0) -> int:
        """Ctrl-C: SIGINT to the process group; the exit status of runserver."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"runserver ignored Ctrl-C:\n{self.output}") from None

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)
        self._log.close()


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runserver-db") / "chat.sqlite3"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="chatsite.settings", CHAT_DATABASE=str(path))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=EXAMPLE,
        env=env,
        check=True,
        timeout=60,
    )
    return path


@pytest.fixture(scope="module")
def noreload_server(database, tmp_path_factory) -> Iterator[RunServer]:
    log = tmp_path_factory.mktemp("runserver") / "noreload.log"
    server = RunServer(EXAMPLE, database, log, "--noreload")
    try:
        server.wait_listening()
        yield server
    finally:
        server.kill()


def _assert_closed(port: int) -> None:
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def _get(url: str) -> tuple[int, Message, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode(errors="replace")


async def _next(ws, kind: str) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if event.get("type", event.get("sb")) == kind:
            return event


async def _chat_round_trip(address: str, text: str) -> None:
    """Two clients in one room: what one sends, both receive from the group."""
    origin = f"http://{address}"
    room = f"ws://{address}/ws/chat/lobby/"
    async with connect(room, origin=origin) as alice, connect(room, origin=origin) as bob:
        alice_name = (await _next(alice, "welcome"))["username"]
        await _next(bob, "welcome")
        for client in (alice, bob):  # the chat's room is a reliable group (switchboard.realtime)
            await client.send(json.dumps({"sb": "sub", "topic": "chat_lobby"}))
            await _next(client, "subscribed")
        await alice.send(json.dumps({"message": text}))
        for client in (alice, bob):
            event = (await _next(client, "pub"))["data"]
            assert (event["username"], event["message"]) == (alice_name, text)


def test_http_pages_on_switchboard(noreload_server):
    status, headers, body = _get(f"http://{noreload_server.address}/")
    assert status == 200
    assert "Switchboard chat" in body
    assert headers.get("server") == "switchboard"
    status, _, _ = _get(f"http://{noreload_server.address}/chat/not%20a%20room/")
    assert status == 404


def test_static_files_served_in_debug(noreload_server):
    status, headers, body = _get(f"http://{noreload_server.address}{STATIC_FILE}")
    assert status == 200
    assert headers["content-type"].startswith("text/css")
    assert body.strip()
    status, _, _ = _get(f"http://{noreload_server.address}/static/admin/css/nonexistent.css")
    assert status == 404


async def test_websocket_chat_broadcast(noreload_server):
    await _chat_round_trip(noreload_server.address, "hello through runserver")


def test_banner_and_access_log(noreload_server):
    # The access log's one format: client address and port, request line, status, bytes, time.
    line = re.compile(r'127\.0\.0\.1:\d+ - "GET /\?logged=1 HTTP/1\.1" 200 \d+ \d+\.\dms')
    _get(f"http://{noreload_server.address}/?logged=1")
    # The server is the module's: earlier tests' lines are in the log too, so wait for this one
    # (it may be written just after the response reaches the client).
    deadline = time.monotonic() + 5
    while not line.search(noreload_server.output) and time.monotonic() < deadline:
        time.sleep(0.05)
    output = noreload_server.output
    assert "Starting Switchboard ASGI development server (HTTP and WebSocket) at " in output
    assert f"http://{noreload_server.address}/" in output
    assert line.search(output), output


async def test_nostatic_leaves_static_urls_to_the_application(database, tmp_path):
    server = RunServer(EXAMPLE, database, tmp_path / "nostatic.log", "--noreload", "--nostatic")
    try:
        server.wait_listening()
        status, _, _ = await asyncio.to_thread(_get, f"http://{server.address}{STATIC_FILE}")
        assert status == 404
        await _chat_round_trip(server.address, "no static, still sockets")
        assert server.interrupt() == 0
    finally:
        server.kill()


@pytest.mark.parametrize("insecure", [False, True])
def test_static_files_without_debug_only_with_insecure(database, tmp_path, insecure):
    args = ["--noreload", "--insecure"] if insecure else ["--noreload"]
    server = RunServer(EXAMPLE, database, tmp_path / "nodebug.log", *args, debug=False)
    try:
        server.wait_listening()
        assert _get(f"http://{server.address}{STATIC_FILE}")[0] == (200 if insecure else 404)
        assert _get(f"http://{server.address}/")[0] == 200
    finally:
        server.kill()


async def test_noreload_ctrl_c_closes_open_websockets_and_exits(database, tmp_path):
    server = RunServer(EXAMPLE, database, tmp_path / "stop.log", "--noreload")
    try:
        server.wait_listening()
        address = server.address
        async with connect(f"ws://{address}/ws/chat/lobby/", origin=f"http://{address}") as ws:
            await _next(ws, "welcome")
            started = time.monotonic()
            assert await asyncio.to_thread(server.interrupt) == 0
            assert time.monotonic() - started < 5  # A dev server stops promptly.
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
        _assert_closed(server.port)
    finally:
        server.kill()


def test_noasgi_falls_back_to_django_wsgi_server(database, tmp_path):
    server = RunServer(EXAMPLE, database, tmp_path / "noasgi.log", "--noreload", "--noasgi")
    try:
        server.wait_listening()
        status, headers, _ = _get(f"http://{server.address}/")
        assert status == 200
        assert headers.get("Server", "").startswith("WSGIServer")
        assert "Starting development server at" in server.output
    finally:
        server.kill()


def test_autoreload_restarts_on_code_change_and_keeps_serving(database, tmp_path):
    project = tmp_path / "chat"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    server = RunServer(project, database, tmp_path / "reload.log")
    try:
        server.wait_listening()
        status, _, body = _get(f"http://{server.address}/")
        assert status == 200 and "reloaded-marker" not in body

        views = project / "chat" / "views.py"
        source = views.read_text()
        changed = source.replace(
            'return render(request, "chat/index.html")',
            'return HttpResponse("reloaded-marker")',
        )
        assert changed != source
        # Rewritten until seen: a change made before the reloader's first scan is its baseline.
        deadline = time.monotonic() + 12
        while True:
            views.write_text(changed)
            time.sleep(0.3)
            try:
                status, _, body = _get(f"http://{server.address}/")
            except OSError:  # Caught between the old child and the new one.
                status, body = 0, ""
            if status == 200 and body == "reloaded-marker":
                break
            assert time.monotonic() < deadline, f"no reload seen:\n{server.output}"
        assert "views.py changed, reloading." in server.output
        assert server.output.count("Starting Switchboard ASGI development server") >= 2

        # The new child serves WebSockets too, then Ctrl-C ends reloader and child.
        asyncio.run(_chat_round_trip(server.address, "after the reload"))
        assert server.interrupt() == 0
        _assert_closed(server.port)
    finally:
        server.kill()


async def test_autoreload_ctrl_c_closes_open_websockets_with_1001(database, tmp_path):
    # Under the autoreloader the server runs in a daemon thread and Ctrl-C ends the main
    # thread; the parent reloader kills the child 0.25 s after its own SIGINT. Before, the
    # sockets died with the process: the client saw 1006 (no close frame). A server going
    # away closes with 1001 (RFC 6455 section 7.4.1), as it does with --noreload.
    server = RunServer(EXAMPLE, database, tmp_path / "reload-stop.log")
    try:
        server.wait_listening()
        address = server.address
        async with connect(f"ws://{address}/ws/chat/lobby/", origin=f"http://{address}") as ws:
            await _next(ws, "welcome")
            assert await asyncio.to_thread(server.interrupt) == 0
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None, f"no close frame:\n{server.output}"
        assert closed.value.rcvd.code == 1001
        _assert_closed(server.port)
    finally:
        server.kill()
