"""Autobahn|Testsuite fuzzing client (cases 1-10) against ``switchboard serve`` echoing messages.

The suite installs and runs the tool itself (tests/support/autobahn.py): a venv built from a
CPython 2.7 interpreter, cached between runs. It is part of the test environment: a missing
CPython 2.7 is a failure that says how to get one, not a skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.autobahn import NoPython27, ensure_wstest, run_fuzzing_client

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited: {proc.stderr.read().decode()[-2000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server not listening on {port} after {timeout}s")


def test_autobahn_fuzzing_client_cases_1_to_10(tmp_path: Path) -> None:
    missing = ""
    try:
        ensure_wstest()  # Before the server starts: a cold build takes a while.
    except NoPython27 as error:
        missing = str(error)
    if missing:
        pytest.fail(missing, pytrace=False)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "switchboard", "serve", "bench.apps:ws_echo_app"]
        + ["--host", "127.0.0.1", "--port", str(port), "--ws-max-size", str(16 * 1024 * 1024)]
        + ["--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, server)
        report = run_fuzzing_client(f"ws://127.0.0.1:{port}", tmp_path)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(report.summary())
    assert report.counts["FAILED"] == 0, report.summary()
    assert report.counts["UNIMPLEMENTED"] == 0, report.summary()
    # A server that refused every connection would also report 0 FAILED: demand real passes.
    assert report.passed >= 240, report.summary()
    # A case can pass on its messages and still fail on the closing handshake.
    assert report.failed == [], report.summary()
