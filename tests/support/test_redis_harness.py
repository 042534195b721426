"""The real-Redis harness does what the Redis layer tests rely on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import redis

from tests.support.redis_servers import (
    RedisCluster,
    RedisHarnessError,
    RedisSentinel,
    RedisServer,
    free_port,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_server_starts_answers_and_stops() -> None:
    server = RedisServer()
    try:
        assert server.running and server.port != 6379
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as r:
            assert r.ping()
            r.set("k", "v")
            assert r.get("k") == b"v"
            # No persistence: nothing could survive a restart through a dump file.
            assert r.config_get("save")["save"] == ""
            assert r.config_get("appendonly")["appendonly"] == "no"
            assert r.config_get("bind")["bind"] == "127.0.0.1"
        pid = server.proc.pid
    finally:
        server.cleanup()
    assert not server.running and not _alive(pid)
    assert not server.ping(timeout=0.2)
    assert not os.path.exists(server.dir)


def test_kill_is_a_crash_and_restart_comes_back_empty_on_the_same_port() -> None:
    with RedisServer() as server:
        port = server.port
        with server.client() as r:
            r.set("k", "v")
        server.kill()
        assert not server.running and not server.ping(timeout=0.2)
        with pytest.raises(redis.ConnectionError):
            with server.client(socket_connect_timeout=0.5) as r:
                r.ping()
        server.restart()
        assert server.port == port and server.running
        with server.client() as r:
            assert r.get("k") is None
        # restart() of a running server works too (stop, then start).
        server.restart()
        assert server.port == port and server.ping()


def test_stop_is_idempotent_and_start_resumes() -> None:
    server = RedisServer(start=False)
    try:
        assert not server.running
        server.stop()
        server.kill()
        server.start()
        assert server.ping()
        server.stop()
        server.stop()
        assert not server.ping(timeout=0.2)
        server.start()
        assert server.ping()
    finally:
        server.cleanup()


def test_start_failure_reports_the_log() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = RedisServer(port, start=False)
        try:
            with pytest.raises(RedisHarnessError, match=str(port)):
                server.start(timeout=3)
            assert not server.running
        finally:
            server.cleanup()


def test_free_port_for_cluster_leaves_the_bus_port_free() -> None:
    port = free_port(cluster_bus=True)
    assert port + 10000 <= 65535
    for candidate in (port, port + 10000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", candidate))


def test_servers_do_not_outlive_a_killed_test_process() -> None:
    # The process that started the server dies by SIGKILL, without atexit: the kernel must
    # still take the server down (PR_SET_PDEATHSIG).
    script = textwrap.dedent(
        """
        import os, sys, time
        sys.path.insert(0, sys.argv[1])
        from tests.support.redis_servers import RedisServer
        s = RedisServer()
        print(s.proc.pid, s.port, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, ROOT], stdout=subprocess.PIPE, text=True
    )
    try:
        pid, port = map(int, child.stdout.readline().split())
        assert _alive(pid)
    finally:
        child.kill()
        child.wait(5)
        child.stdout.close()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)


def test_servers_stop_at_normal_exit() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from tests.support.redis_servers import RedisServer
        s = RedisServer()
        print(s.proc.pid, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, ROOT], capture_output=True, text=True, timeout=30
    )
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)


def test_cluster_is_ok_and_spreads_keys() -> None:
    with RedisCluster(3) as cluster:
        assert len(cluster.startup_nodes) == 3
        assert all(url.startswith("redis://127.0.0.1:") for url in cluster.urls)
        for node in cluster.nodes:
            with node.client() as r:
                assert r.cluster("info")["cluster_state"] == "ok"
        with cluster.client() as rc:
            for i in range(30):
                rc.set(f"key{i}", i)
            assert rc.get("key7") == b"7"
        # Keys landed on every master, so the slots really are spread.
        sizes = []
        for node in cluster.nodes:
            with node.client() as r:
                sizes.append(r.dbsize())
        assert sum(sizes) == 30 and all(size > 0 for size in sizes)
        cluster.flushall()
        with cluster.client() as rc:
            assert rc.get("key7") is None
        pids = [node.proc.pid for node in cluster.nodes]
    assert not any(_alive(pid) for pid in pids)


def test_sentinel_reports_the_master() -> None:
    with RedisSentinel() as sentinel:
        assert sentinel.service_name == "mymaster"
        assert sentinel.master_address() == sentinel.master.address
        [(host, port)] = sentinel.sentinels
        sentinel_conn = redis.sentinel.Sentinel([(host, port)], socket_timeout=2)
        assert sentinel_conn.discover_master("mymaster") == sentinel.master.address
        master = sentinel_conn.master_for("mymaster", socket_timeout=2)
        master.set("k", "v")
        assert master.get("k") == b"v"
        master.close()
        with pytest.raises(RedisHarnessError):
            sentinel.failover()


def test_sentinel_failover_promotes_the_replica() -> None:
    with RedisSentinel(replica=True) as sentinel:
        assert sentinel.replica is not None
        with sentinel.master.client() as r:
            r.set("k", "v")
            # Replication is asynchronous: make sure the replica has the write first.
            assert r.wait(1, 5000) == 1
        new_master = sentinel.failover()
        assert new_master == sentinel.replica.address
        with sentinel.replica.client() as r:
            assert r.info("replication")["role"] == "master"
            assert r.get("k") == b"v"
        assert sentinel.master_address() == sentinel.replica.address


def test_shared_fixture_servers_are_reused_emptied_and_revived() -> None:
    from tests.layers.conftest import _shared

    pool: list[RedisServer] = []
    try:
        [first] = _shared(pool, 1)
        with first.client() as r:
            r.set("left-over", 1)
        shards = _shared(pool, 3)
        # The single server is the first shard; every server is distinct and empty.
        assert shards[0] is first and len({s.port for s in shards}) == 3
        with first.client() as r:
            assert r.dbsize() == 0
        # A test that crashed a shared server anyway: the next test gets it back, same port.
        port = first.port
        first.kill()
        [again] = _shared(pool, 1)
        assert again is first and again.port == port and again.ping()
    finally:
        for server in pool:
            server.cleanup()


def test_sentinel_fails_over_when_the_master_crashes() -> None:
    with RedisSentinel(replica=True) as sentinel:
        assert sentinel.replica is not None
        with pytest.raises(RedisHarnessError):
            sentinel.wait_for_new_master(timeout=0.3)  # nothing happened yet
        started = time.monotonic()
        sentinel.master.kill()
        assert sentinel.wait_for_new_master(timeout=20) == sentinel.replica.address
        # down-after-milliseconds is 1 s: the harness keeps crash failovers quick.
        assert time.monotonic() - started < 10


def test_aof_server_keeps_its_data_across_a_crash_and_a_restart() -> None:
    with RedisServer(aof=True, name="aof") as server:
        with server.client() as r:
            r.set("kept", "1")
        server.kill()  # a crash right after the write: appendfsync always has it on disk
        server.start()
        with server.client() as r:
            assert r.get("kept") == b"1"
            assert r.config_get("appendonly")["appendonly"] == "yes"
            r.set("also", "2")
        server.restart()
        with server.client() as r:
            assert (r.get("kept"), r.get("also")) == (b"1", b"2")
    with RedisServer(name="no-aof") as server:
        with server.client() as r:
            r.set("lost", "1")
        server.restart()
        with server.client() as r:
            assert r.get("lost") is None
