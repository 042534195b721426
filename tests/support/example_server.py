"""An example project (examples/*) under ``python -m switchboard serve`` in a subprocess, on a
free loopback port, stopped with SIGTERM as a process manager would."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> int:
    """SIGTERM; the exit status. Not exiting within 15 s fails the test."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            raise AssertionError("server did not exit within 15 s of SIGTERM") from None
    return process.returncode


@dataclass
class ExampleServer:
    address: str  # "127.0.0.1:<port>"
    output: str = ""  # everything the server printed, once it has stopped


@contextmanager
def serve_example(
    project: Path, application: str, env: dict[str, str], log_path: Path
) -> Iterator[ExampleServer]:
    """Serves ``application`` from ``project`` once it accepts connections (within 20 s); on
    exit, checks the server stopped cleanly on SIGTERM: status 0, or death by the re-raised
    signal itself."""
    port = free_port()
    log = open(log_path, "w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard", "serve", application]
        + ["--host", "127.0.0.1", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"server exited early:\n{log.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                stop(process)
                raise AssertionError("server did not start listening within 20 s") from None
            time.sleep(0.1)
    server = ExampleServer(f"127.0.0.1:{port}")
    try:
        yield server
    finally:
        code = stop(process)
        log.seek(0)
        server.output = log.read().decode(errors="replace")
        log.close()
        assert code in (0, -signal.SIGTERM), f"server exit status {code}:\n{server.output}"
