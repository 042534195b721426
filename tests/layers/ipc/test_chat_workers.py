"""The chat example under `switchboard serve --workers 2`, no Redis: two clients served by
different workers chat and see each other online, through the IPC layer the workers get when
the project leaves CHANNEL_LAYERS to the default (issue 14)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.layers.conftest import ROOT
from tests.layers.ipc.test_serve_workers import free_port, serving_until_stopped

EXAMPLE = ROOT / "examples" / "chat"
WAIT = 30


@pytest.fixture
def chat_workers(tmp_path) -> Iterator[tuple[int, subprocess.Popen, Path]]:
    """The chat served by 2 workers: (port, the supervisor process, its log)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SWITCHBOARD_WORKERS", "CHAT_REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    # This test's own IPC runtime directory, short enough for Unix socket paths.
    runtime = tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp")
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        CHAT_DATABASE=str(tmp_path / "chat.sqlite3"),
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
        XDG_RUNTIME_DIR=runtime.name,
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=EXAMPLE, env=env, check=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "w+b") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "switchboard", "serve", "chatsite.asgi:application"]
            + ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=EXAMPLE, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            with serving_until_stopped(server, log_path, lambda: len(_workers(server.pid)) >= 2):
                yield port, server, log_path
        finally:
            runtime.cleanup()


def _workers(supervisor: int) -> set[int]:
    """The supervisor's child processes, from /proc."""
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == supervisor:
                children.add(int(entry))
    return children


def _serving_pid(ws: ClientConnection, server_port: int, workers: set[int]) -> int | None:
    """Which worker holds the server side of this client's TCP connection (/proc/net/tcp)."""
    client_port = ws.local_address[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    if inode is None:
        return None
    for pid in workers:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    return None


async def _next(ws: ClientConnection, kind: str) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if event.get("type", event.get("sb")) == kind:
            return event


async def test_two_clients_on_different_workers_chat_and_see_each_other(chat_workers):
    port, server, log_path = chat_workers
    workers = _workers(server.pid)
    url, origin = f"ws://127.0.0.1:{port}/ws/chat/lobby/", f"http://127.0.0.1:{port}"
    by_worker: dict[int, tuple[ClientConnection, str]] = {}
    extra: list[ClientConnection] = []
    try:
        # Connect until each worker serves one of our clients (the kernel picks the worker).
        while len(by_worker) < 2:
            assert len(extra) < 100, "every connection landed on one worker"
            ws = await connect(url, origin=origin, open_timeout=WAIT)
            name = (await _next(ws, "welcome"))["username"]
            pid = _serving_pid(ws, port, workers)
            if pid is not None and pid not in by_worker:
                by_worker[pid] = (ws, name)
            else:
                extra.append(ws)
        for ws in extra:
            await ws.close()
        (alice, alice_name), (bob, bob_name) = by_worker.values()
        for ws in (alice, bob):
            # The room page's question: who is online? Each sees the other, served elsewhere.
            await ws.send(json.dumps({"sb": "presence", "topic": "chat_lobby"}))
            state = (await _next(ws, "presence_state"))["state"]
            assert {alice_name, bob_name} <= set(state), state
            assert len(state[alice_name]["metas"]) == len(state[bob_name]["metas"]) == 1
            await ws.send(json.dumps({"sb": "sub", "topic": "chat_lobby"}))
            await _next(ws, "subscribed")

        await alice.send(json.dumps({"message": "hello from one worker"}))
        await bob.send(json.dumps({"message": "hello from the other"}))
        for ws in (alice, bob):
            pubs = [(await _next(ws, "pub"))["data"] for _ in range(2)]
            assert {(p["username"], p["message"]) for p in pubs} == {
                (alice_name, "hello from one worker"),
                (bob_name, "hello from the other"),
            }

        # Bob leaves: alice, on the other worker, is told.
        await bob.close()
        while bob_name not in (await _next(alice, "presence_diff"))["leaves"]:
            pass
    finally:
        for ws, _ in by_worker.values():
            await ws.close()
        for ws in extra:
            await ws.close()
    assert "using the IPC channel layer" in log_path.read_text()
