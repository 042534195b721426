"""`switchboard serve --workers 2` with no CHANNEL_LAYERS: the workers share the IPC layer, so
real WebSocket clients spread over both workers all receive every group message (issue 12:
with one in-memory layer per worker, 38% of a chat's messages were lost, silently)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.layers.conftest import ROOT

APP = "tests.layers.ipc.workers_site.asgi:application"
CLIENTS = 20
WAIT = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving_until_stopped(
    server: subprocess.Popen, log_path: Path, ready: Callable[[], bool] = lambda: True
) -> Iterator[None]:
    """Waits until ``server`` logged "Listening on" and ``ready()``; SIGTERM (then, after
    20 s, SIGKILL) on exit, also when the wait failed."""
    try:
        deadline = time.monotonic() + WAIT
        while b"Listening on" not in log_path.read_bytes() or not ready():
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def next_json(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


@pytest.fixture
def workers_server(tmp_path) -> Iterator[tuple[int, Path]]:
    """The server with 2 workers, listening: (port, its log file)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SWITCHBOARD_WORKERS"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.layers.ipc.workers_site.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "server.log"
    with open(log_path, "w+b") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "switchboard", "serve", APP, "--workers", "2"]
            + ["--port", str(port)],
            cwd=str(tmp_path),  # the default runtime directory is per project directory
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        with serving_until_stopped(server, log_path):
            yield port, log_path


async def test_workers_share_groups_without_any_layer_setting(workers_server):
    port, log_path = workers_server
    clients = []
    try:
        url = f"ws://127.0.0.1:{port}/ws/"
        pids: dict[int, int] = {}
        # Connect in batches until there are CLIENTS clients and both workers serve some.
        while len(clients) < CLIENTS or len(pids) < 2:
            assert len(clients) < 200, f"every client landed on one worker: {pids}"
            batch = await asyncio.gather(*(connect(url) for _ in range(10)))
            for ws in batch:
                welcome = await next_json(ws)
                assert welcome["layer"] == "IPCChannelLayer"
                pids[welcome["pid"]] = pids.get(welcome["pid"], 0) + 1
                clients.append(ws)
        assert len(pids) == 2
        for n, ws in enumerate(clients):
            await ws.send(json.dumps({"text": f"m{n}"}))
        expected = {f"m{n}" for n in range(len(clients))}
        for ws in clients:
            texts = set()
            while len(texts) < len(expected):
                message = await next_json(ws)
                assert message["type"] == "message"
                texts.add(message["text"])
            assert texts == expected
    finally:
        for ws in clients:
            await ws.close()
    output = log_path.read_text()
    # Said once, at startup, by the supervisor's import of the project.
    assert output.count("using the IPC channel layer") == 1, output
