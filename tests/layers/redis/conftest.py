"""Real redis-server fixtures for the Redis channel layer tests.

Shared servers (``redis_server``, ``redis_shards``, ``redis_cluster``) live for the session and
are emptied before each test; a test that kills or restarts a server takes
``fresh_redis_server`` (its own, stopped afterwards). Sentinel setups are per test because
failover changes which server is the master.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_servers import RedisCluster, RedisSentinel, RedisServer


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
