"""Applications that spin, ignore cancellation or block the loop: the server stays responsive
to the rest of the world and SIGTERM still ends it on time. The real server runs in a
subprocess (``python -m switchboard serve``), the clients are real sockets.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from switchboard.server.runtime.server import FORCE_EXIT_MARGIN, WATCHDOG_SLACK

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.server.misbehaving_apps:app"
GRACE = 2.0  # --timeout-graceful-shutdown
# The longest a single process may take after SIGTERM (its watchdog's deadline), and the
# supervisor, which SIGKILLs workers at GRACE + 2 * FORCE_EXIT_MARGIN.
PROCESS_BUDGET = GRACE + FORCE_EXIT_MARGIN + WATCHDOG_SLACK
SUPERVISOR_BUDGET = GRACE + 2 * FORCE_EXIT_MARGIN
MARGIN = 2.0  # a loaded machine: process start-up, scheduling
TIMEOUT = 10
OVERRAN = "graceful shutdown overran its budget"  # what the exit watchdog writes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, log: Path, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.log = log
        args = ["--port", str(self.port), "--workers", str(workers), "--log-level", "warning"]
        args += ["--timeout-graceful-shutdown", str(GRACE)]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "switchboard", "serve", APP, *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for kill()
                env={**os.environ, **(env or {})},
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError("server did not start listening")

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def get(self, path: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        try:
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()
        return data.partition(b"\r\n\r\n")[2]

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (proc(5): fields 14 and 15 of /proc/PID/stat)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()  # fields from 3 (state) on
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def terminate(self) -> tuple[int, float]:
        """SIGTERM; the exit status and the seconds the process took to end."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        while self.proc.poll() is None and time.monotonic() - start < 15:
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - start
        assert self.proc.poll() is not None, f"still running 15 s after SIGTERM\n{self.output()}"
        return self.proc.returncode, elapsed

    def kill(self) -> None:
        """After a failed test: the whole process group, so no worker outlives it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def server_process(tmp_path: Path):
    started: list[ServerProcess] = []

    async def start(workers: int = 1, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server{len(started)}.log", workers, env)
        started.append(server)
        await server.wait_listening()
        return server

    yield start
    for server in started:
        server.kill()


async def _expect_close(ws: ClientConnection, code: int) -> None:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == code


async def test_receive_after_disconnect_waits_instead_of_spinning(server_process) -> None:
    # ASGI www spec, "Disconnect - receive event": websocket.disconnect is sent when the
    # connection is lost; it is one event, so receive() after it waits (as Daphne and
    # uvicorn's wsproto implementation do) instead of returning it again without yielding.
    server = await server_process()
    async with connect(server.url("/spin?key=a"), close_timeout=1):
        pass  # the client closes; /spin keeps calling receive()
    await asyncio.sleep(0.3)
    before = server.cpu_seconds()
    await asyncio.sleep(1.0)
    assert server.cpu_seconds() - before < 0.2, "the server is spinning"
    assert await server.get("/count?key=a") == b"1"


async def test_http_receive_after_disconnect_yields_to_the_loop(server_process) -> None:
    # ASGI www spec: http.disconnect is what receive() returns once the response is sent or
    # the client is gone, and uvicorn returns it on every later call too; so do we, but a
    # later call yields first. Without that, an app looping on receive() held the event loop:
    # nothing else was served and SIGTERM waited for the watchdog.
    server = await server_process()
    assert await server.get("/spin-http") == b"done"  # /spin-http now loops on receive()
    started = time.monotonic()
    assert await server.get("/count?key=none") == b"0"
    assert time.monotonic() - started < 2.0, "the spinning app held the event loop"
    code, elapsed = await server.terminate()
    assert code == 0, server.output()
    assert elapsed < GRACE + MARGIN, f"SIGTERM took {elapsed:.1f} s"
    assert OVERRAN not in server.output()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("path", ["/spin", "/swallow"])
async def test_sigterm_closes_websockets_with_1001_and_exits_on_time(
    server_process, workers: int, path: str
) -> None:
    # RFC 6455 7.4.1: 1001 "going away", as for a server going down. The apps never return
    # by themselves: they get the grace period, then are cancelled (/swallow ignores that).
    server = await server_process(workers)
    clients = [await connect(server.url(path), close_timeout=1) for _ in range(2 * workers)]
    code, elapsed = await server.terminate()
    for ws in clients:
        await _expect_close(ws, 1001)
    assert code == 0, server.output()
    assert GRACE - 0.3 < elapsed < GRACE + FORCE_EXIT_MARGIN + MARGIN, server.output()
    assert OVERRAN not in server.output()  # ended by the shutdown itself, not the watchdog


async def test_sigterm_cancels_an_http_request_that_outlives_the_grace_period(
    server_process,
) -> None:
    server = await server_process()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    code, elapsed = await server.terminate()
    try:
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # dropped unanswered
    except ConnectionResetError:
        pass
    writer.close()
    assert code == 0, server.output()
    assert GRACE - 0.3 < elapsed < GRACE + FORCE_EXIT_MARGIN + MARGIN, server.output()
    assert OVERRAN not in server.output()


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_ends_a_process_whose_loop_is_blocked(server_process, workers) -> None:
    server = await server_process(workers)
    ws = await connect(server.url("/block"), close_timeout=1)
    code, elapsed = await server.terminate()
    # One process: its watchdog exits with status 1. The supervisor only reports its own.
    assert code == (1 if workers == 1 else 0), server.output()
    assert PROCESS_BUDGET - 0.3 < elapsed < PROCESS_BUDGET + MARGIN, server.output()
    assert OVERRAN in server.output()
    await ws.close()


async def test_supervisor_kills_a_worker_that_ignores_sigterm(server_process) -> None:
    server = await server_process(2)
    ws = await connect(server.url("/ignore-sigterm"), close_timeout=1)
    code, elapsed = await server.terminate()
    assert code == 0, server.output()
    assert SUPERVISOR_BUDGET - 0.3 < elapsed < SUPERVISOR_BUDGET + MARGIN, server.output()
    assert "Killing 1 worker(s)" in server.output()
    await ws.close()


async def test_sigterm_gives_up_on_a_lifespan_shutdown_that_hangs(server_process) -> None:
    # Nothing to drain: the lifespan shutdown gets the whole budget, then is abandoned.
    server = await server_process(env={"MISBEHAVE_LIFESPAN": "hang"})
    code, elapsed = await server.terminate()
    assert code == 0, server.output()
    budget = GRACE + FORCE_EXIT_MARGIN
    assert budget - 0.3 < elapsed < budget + MARGIN, server.output()
    assert "Lifespan shutdown did not finish in time" in server.output()


async def test_sigterm_during_startup_is_a_graceful_stop(tmp_path: Path) -> None:
    # A stop sent before the port even accepts (a process manager that changed its mind) finds
    # the server's handler: startup completes, then a clean exit, not the default action's
    # death by SIGTERM (exit -15). The handlers used to come after startup, so a SIGTERM
    # right after the port opened could still kill the process.
    server = ServerProcess(tmp_path / "server.log", env={"MISBEHAVE_LIFESPAN": "slow-start"})
    try:
        deadline = time.monotonic() + 15
        while "lifespan startup began" not in server.output():
            assert server.proc.poll() is None and time.monotonic() < deadline, server.output()
            await asyncio.sleep(0.02)
        code, elapsed = await server.terminate()
        assert code == 0, server.output()
        assert elapsed < 1.0 + GRACE + MARGIN, server.output()
    finally:
        server.kill()


async def test_sigterm_as_soon_as_the_port_accepts_is_a_graceful_stop(tmp_path: Path) -> None:
    # The socket listens (the kernel queues connections) a moment before the server's loop
    # takes over; a stop sent in that moment was the default action's death (exit -15; CI
    # caught test_sigterm_gives_up_on_a_lifespan_shutdown_that_hangs so). It is remembered and
    # honoured as a graceful stop. Repeated, as the moment is short.
    for attempt in range(6):
        server = ServerProcess(tmp_path / f"server{attempt}.log")
        try:
            deadline = time.monotonic() + 15
            while True:  # no pause between tries: the stop must land in that moment
                assert server.proc.poll() is None and time.monotonic() < deadline, server.output()
                try:
                    socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                    break
                except OSError:
                    continue
            code, _ = await server.terminate()
            assert code == 0, server.output()
        finally:
            server.kill()


async def test_rolling_restart_kills_a_worker_that_ignores_sigterm(server_process) -> None:
    # SIGHUP replaces workers one at a time; one that never exits must not stall it forever.
    server = await server_process(2)
    ws = await connect(server.url("/ignore-sigterm"), close_timeout=1)
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + SUPERVISOR_BUDGET + MARGIN
    while "Killing worker" not in server.output() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "Killing worker" in server.output()
    assert await server.get("/count") == b"0"  # the replacement workers serve
    code, elapsed = await server.terminate()
    assert code == 0, server.output()
    assert elapsed < GRACE + MARGIN, server.output()
    await ws.close()
