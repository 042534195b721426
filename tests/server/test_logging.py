"""What ``switchboard serve`` writes to stderr: timestamped lines on the ``switchboard`` tree,
the address it listens on, its shutdown, and nothing doubled or alarming for a Django app.

Each test runs the real server in a subprocess and reads its stderr.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

from tests.server.serve_process import ROOT, Serving, free_port

# 2026-11-30 06:00:00,123 INFO [4242] switchboard.server: message
LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"\[(\d+)\] (switchboard[\w.]*): (.*)$"
)


def _get(port: int, path: str = "/", *, close: bool = True) -> socket.socket | bytes:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection = "close" if close else "keep-alive"
    client.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n\r\n".encode()
    )
    if not close:
        return client
    with client:
        data = b""
        while chunk := client.recv(65536):
            data += chunk
        return data


def _messages(stderr: str) -> list[tuple[str, str, str]]:
    """(level, logger, message) of every line, asserting each carries the timestamp format."""
    parsed = []
    for line in stderr.splitlines():
        match = LINE.match(line)
        assert match, f"not a timestamped log line: {line!r}\n{stderr}"
        parsed.append((match.group(1), match.group(3), match.group(4)))
    return parsed


def test_startup_and_shutdown_lines_are_timestamped(tmp_path) -> None:
    port = free_port()
    server = Serving(tmp_path / "err.log", "tests.server.slow_app:app", "--port", str(port))
    try:
        server.wait_for("Listening on")
        # A request in flight when SIGTERM arrives: the server says it waits for it.
        client = _get(port, "/slow", close=False)
        time.sleep(0.15)
        assert server.stop() == 0
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
        client.close()
        pid = server.process.pid
        messages = _messages(server.stderr)
        access = [m for m in messages if m[1] == "switchboard.server.access"]
        assert len(access) == 1 and '"GET /slow HTTP/1.1" 200' in access[0][2]
        assert [m for m in messages if m not in access] == [
            ("INFO", "switchboard.server", f"Started server process [{pid}]"),
            (
                "INFO",
                "switchboard.server",
                f"Listening on http://127.0.0.1:{port} (Ctrl-C to quit)",
            ),
            ("INFO", "switchboard.server", "Shutting down"),
            ("INFO", "switchboard.server", "Waiting for 1 connection to close (up to 30s)"),
            ("INFO", "switchboard.server", f"Finished server process [{pid}]"),
        ]
    finally:
        server.close()


def test_ipv6_listening_line_brackets_the_address(tmp_path) -> None:
    if not socket.has_ipv6:
        raise AssertionError("this machine has no IPv6 support")
    port = free_port()
    server = Serving(
        tmp_path / "err.log", "tests.server.slow_app:app", "--host", "::1", "--port", str(port)
    )
    try:
        server.wait_for(f"Listening on http://[::1]:{port} (Ctrl-C to quit)")
    finally:
        server.close()


def test_django_log_records_are_not_doubled(tmp_path) -> None:
    # Django (DEBUG on) prints "Not Found: ..." through its own console handler on the
    # "django" logger. A handler on the root logger (what serve used to install with
    # logging.basicConfig) printed it a second time, as "WARNING django.request: ...".
    port = free_port()
    server = Serving(
        tmp_path / "err.log", "tests.server.django_site:application", "--port", str(port)
    )
    try:
        server.wait_for("Listening on")
        assert _get(port, "/").startswith(b"HTTP/1.1 200")
        assert _get(port, "/missing-page").startswith(b"HTTP/1.1 404")
        server.wait_for('"GET /missing-page HTTP/1.1" 404')
        assert server.stop() == 0
        assert server.stderr.count("Not Found: /missing-page") == 1, server.stderr
    finally:
        server.close()


def test_lifespan_unsupported_is_a_debug_line(tmp_path) -> None:
    # Django's ASGI handler raises on the lifespan scope: routine, not worth an info line.
    # Its wording starts with "Django can only handle ASGI/HTTP connections, not lifespan."
    # --interface asgi: Django's own handler, not the native path (which acknowledges lifespan).
    port = free_port()
    app = "tests.server.django_site:application"
    quiet = Serving(tmp_path / "info.log", app, "--port", str(port), "--interface", "asgi")
    try:
        stderr = quiet.wait_for("Listening on")
        assert quiet.stop() == 0
        assert "lifespan" not in quiet.stderr.lower(), stderr
    finally:
        quiet.close()
    verbose = Serving(
        tmp_path / "debug.log",
        app,
        "--port",
        str(port),
        "--log-level",
        "debug",
        "--interface",
        "asgi",
    )
    try:
        verbose.wait_for("Listening on")
        assert verbose.stop() == 0
        lifespan = [m for m in _messages(verbose.stderr) if "lifespan" in m[2]]
        assert lifespan and lifespan[0][0] == "DEBUG", verbose.stderr
        assert "ASGI 'lifespan' unsupported by the application" in lifespan[0][2]
    finally:
        verbose.close()


def test_log_level_warning_silences_info_lines(tmp_path) -> None:
    port = free_port()
    server = Serving(
        tmp_path / "err.log",
        "tests.server.slow_app:app",
        "--port",
        str(port),
        "--log-level",
        "WARNING",
    )
    try:
        # Nothing is logged at warning level: wait for the socket instead of a line.
        deadline = time.monotonic() + 20
        while True:
            try:
                assert _get(port, "/fast").endswith(b"fast")
                break
            except OSError:
                assert server.process.poll() is None, server.stderr
                assert time.monotonic() < deadline, server.stderr
                time.sleep(0.05)
        assert server.stop() == 0
        assert server.stderr == ""
    finally:
        server.close()


def test_no_access_log_keeps_the_other_lines(tmp_path) -> None:
    port = free_port()
    quiet = Serving(
        tmp_path / "quiet.log", "tests.server.slow_app:app", "--port", str(port), "--no-access-log"
    )
    try:
        quiet.wait_for("Listening on")
        assert _get(port, "/fast").endswith(b"fast")
        assert quiet.stop() == 0
        loggers = {logger for _, logger, _ in _messages(quiet.stderr)}
        assert loggers == {"switchboard.server"}, quiet.stderr
    finally:
        quiet.close()
    logged = Serving(tmp_path / "access.log", "tests.server.slow_app:app", "--port", str(port))
    try:
        logged.wait_for("Listening on")
        assert _get(port, "/fast").endswith(b"fast")
        logged.wait_for('"GET /fast HTTP/1.1" 200')
    finally:
        logged.close()


def test_run_leaves_logging_a_program_set_up_to_that_program(tmp_path) -> None:
    # run() adds its handler only when no handler receives the switchboard tree: a program
    # that configured the root logger gets our lines once, in its own format.
    port = free_port()
    code = (
        "import logging, sys\n"
        "logging.basicConfig(format='OWN %(levelname)s %(name)s %(message)s')\n"
        "from switchboard.server import run\n"
        f"run('tests.server.slow_app:app', port={port})\n"
    )
    log = open(tmp_path / "err.log", "wb")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=log)
    try:
        deadline = time.monotonic() + 20
        text = ""
        while "Listening on" not in text:
            assert process.poll() is None and time.monotonic() < deadline, text
            time.sleep(0.05)
            text = (tmp_path / "err.log").read_text()
        process.terminate()
        assert process.wait(20) == 0
        text = (tmp_path / "err.log").read_text()
        assert text.count("Listening on") == 1, text
        assert f"OWN INFO switchboard.server Listening on http://127.0.0.1:{port}" in text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
