"""Fixtures for the layer tests: every layer side by side (``layers``, for the contract suite),
a layer in another OS process, and real redis-server fixtures for the Redis channel layer tests.

Shared servers (``redis_server``, ``redis_shards``, ``redis_cluster``) live for the session and
are emptied before each test; a test that kills or restarts a server takes
``fresh_redis_server`` (its own, stopped afterwards). Sentinel setups are per test because
failover changes which server is the master.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from switchboard.exceptions import ChannelFull
from switchboard.layers.codec import ChannelMessageTooLarge, UnserializableMessage
from tests.support.redis_servers import RedisCluster, RedisSentinel, RedisServer

ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = Path(__file__).parent / "ipc" / "peer_process.py"


def _usable(server: RedisServer) -> RedisServer:
    # A test may have crashed a shared server despite the rules: bring it back rather than
    # failing every later test with connection errors.
    if not server.ping():
        server.restart()
    server.flushall()
    return server


@pytest.fixture(scope="session")
def _shared_redis_servers() -> Iterator[list[RedisServer]]:
    servers: list[RedisServer] = []
    yield servers
    for server in servers:
        server.cleanup()


def _shared(pool: list[RedisServer], count: int) -> list[RedisServer]:
    while len(pool) < count:
        pool.append(RedisServer(name=f"shared{len(pool)}"))
    return [_usable(server) for server in pool[:count]]


@pytest.fixture
def redis_server(_shared_redis_servers: list[RedisServer]) -> RedisServer:
    """A running redis-server shared by the session, empty at the start of the test.
    Do not stop, kill or restart it: use ``fresh_redis_server`` for that."""
    return _shared(_shared_redis_servers, 1)[0]


@pytest.fixture
def redis_shards(_shared_redis_servers: list[RedisServer]) -> list[RedisServer]:
    """Three independent shared redis-servers (the first is ``redis_server``), all empty."""
    return _shared(_shared_redis_servers, 3)


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own: kill it, restart it, it is cleaned up afterwards."""
    server = RedisServer(name="fresh")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def fresh_redis_shards() -> Iterator[list[RedisServer]]:
    """Three redis-servers of this test's own (for killing one shard)."""
    servers: list[RedisServer] = []
    try:
        for i in range(3):
            servers.append(RedisServer(name=f"fresh-shard{i}"))
        yield servers
    finally:
        for server in servers:
            server.cleanup()


@pytest.fixture(scope="session")
def _shared_redis_cluster() -> Iterator[RedisCluster]:
    cluster = RedisCluster(3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(_shared_redis_cluster: RedisCluster) -> RedisCluster:
    """A 3-master Redis Cluster shared by the session, emptied before the test.
    ``.startup_nodes`` is ``[(host, port), ...]``, ``.urls`` the node URLs."""
    _shared_redis_cluster.wait_ok(timeout=10)
    _shared_redis_cluster.flushall()
    return _shared_redis_cluster


@pytest.fixture
def redis_sentinel() -> Iterator[RedisSentinel]:
    """A master, one replica and one Sentinel (quorum 1) watching them as ``mymaster``.
    ``.sentinels`` is ``[(host, port)]``, ``.service_name`` ``"mymaster"``; ``.failover()``
    promotes the replica, ``.master.kill()`` crashes the master."""
    sentinel = RedisSentinel(replica=True)
    try:
        yield sentinel
    finally:
        sentinel.stop()


# -- a layer in another process ---------------------------------------------------------------

_REMOTE_ERRORS: dict[str, type[Exception]] = {
    "ChannelFull": ChannelFull,
    "ChannelMessageTooLarge": ChannelMessageTooLarge,
    "UnserializableMessage": UnserializableMessage,
    "TypeError": TypeError,
    "ValueError": ValueError,
    "TimeoutError": asyncio.TimeoutError,
}


class RemoteLayer:
    """The layer API of a layer living in ``peer_process.py``, reached through ``via``."""

    def __init__(self, via: Any, control: str) -> None:
        self.via = via
        self.control = control

    async def call(self, op: str, timeout: float = 30, **args: Any) -> Any:
        reply = await self.via.new_channel("reply")
        await self.via.send(self.control, {"type": "op", "op": op, "reply": reply, **args})
        result = await asyncio.wait_for(self.via.receive(reply), timeout)
        if not result["ok"]:
            raise _REMOTE_ERRORS.get(result["error"], RuntimeError)(result["message"])
        return result["value"]

    async def pid(self) -> int:
        return await self.call("pid")

    async def new_channel(self, prefix: str = "specific") -> str:
        return await self.call("new_channel", prefix=prefix)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.call("send", channel=channel, message=message)

    async def receive(self, channel: str, timeout: float = 10) -> dict[str, Any]:
        return await self.call("receive", channel=channel, timeout=timeout)

    async def group_add(self, group: str, channel: str) -> None:
        await self.call("group_add", group=group, channel=channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self.call("group_discard", group=group, channel=channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.call("group_send", group=group, message=message)

    async def release_channel(self, channel: str) -> None:
        await self.call("release_channel", channel=channel)


def start_peer_process(backend: str, where: str, control: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, str(PEER_SCRIPT), backend, where, control], env=env, cwd=str(ROOT)
    )


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def ipc_peer(tmp_path_factory) -> Iterator[tuple[str, str, subprocess.Popen]]:
    """An IPC layer in another OS process: (runtime directory, control channel, process)."""
    path = str(tmp_path_factory.mktemp("ipc") / "rt")
    control = "peer.control"
    proc = start_peer_process("ipc", path, control)
    try:
        yield path, control, proc
    finally:
        stop_process(proc)


# -- every layer, side by side -----------------------------------------------------------------


@dataclass
class LayerKit:
    """``local``: a layer in this process. ``other``: the same backend as another process sees
    it (IPC: a layer in a real other process; Redis: a second instance, through Redis; in-memory:
    the same instance, as there is no other process). ``make(**options)``: a further layer in
    this process, sharing ``other``'s world."""

    kind: str
    make: Callable[..., Any]
    local: Any = None
    other: Any = None
    made: list[Any] = field(default_factory=list)

    @staticmethod
    def name(stem: str) -> str:
        # The IPC peer and Redis outlive one test: names of one test only.
        return f"{stem}-{uuid.uuid4().hex[:10]}"


LAYER_KINDS = ("inmemory", "ipc", "redis")


@pytest.fixture(params=LAYER_KINDS)
async def layers(request) -> Any:
    kind = request.param
    made: list[Any] = []
    if kind == "inmemory":
        from switchboard.layers.inmemory import InMemoryChannelLayer

        def make(**options: Any) -> Any:
            made.append(InMemoryChannelLayer(**options))
            return made[-1]

        kit = LayerKit(kind, make)
        kit.local = kit.other = make()
    elif kind == "ipc":
        from switchboard.layers.ipc import IPCChannelLayer

        path, control, proc = request.getfixturevalue("ipc_peer")
        assert proc.poll() is None, "the IPC peer process died"

        def make(**options: Any) -> Any:
            made.append(IPCChannelLayer(path=path, **options))
            return made[-1]

        kit = LayerKit(kind, make)
        kit.local = make()
        kit.other = RemoteLayer(kit.local, control)
        assert await kit.other.pid() == proc.pid
    else:
        from switchboard.layers.redis import RedisChannelLayer

        server = request.getfixturevalue("redis_server")

        def make(**options: Any) -> Any:
            made.append(RedisChannelLayer(hosts=[server.url], **options))
            return made[-1]

        kit = LayerKit(kind, make)
        kit.local = make()
        kit.other = make()
    kit.made = made
    try:
        yield kit
    finally:
        for layer in made:
            await layer.close()
