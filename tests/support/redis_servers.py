"""Real redis-server processes for tests and benchmarks: single servers, a 3-master cluster
and a master watched by Sentinel, each on free loopback ports in its own temporary directory.

Nothing here touches the system Redis on 6379: every process is started by us, from the
``redis-server`` on PATH, and is killed when the test run ends, however it ends:
``atexit`` covers normal exits, and on Linux each child also gets ``PR_SET_PDEATHSIG`` so the
kernel kills it if this process dies without running ``atexit`` (SIGKILL, crash).

Not part of the ``switchboard`` package: tests and ``bench/`` import it from the repo root.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "RedisCluster",
    "RedisHarnessError",
    "RedisSentinel",
    "RedisServer",
    "free_port",
    "stop_all",
]

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# Cluster nodes also listen on port + 10000 (the cluster bus), so their ports stay below this.
_CLUSTER_PORT_RANGE = (20000, 50000)


class RedisHarnessError(RuntimeError):
    """A redis-server did not start, answer or stop in time; the message quotes its log."""


# -- process bookkeeping ---------------------------------------------------------------------

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def stop_all() -> None:
    """Kill every redis-server this process started and has not stopped yet."""
    with _live_lock:
        procs = list(_live)
        _live.clear()
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass


atexit.register(stop_all)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGKILL it when the thread
    # that forked it dies, so a SIGKILLed test run leaves no redis-server behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _spawn(args: list[str], log_path: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisHarnessError("redis-server is not on PATH (the scripts install it with apt)")
    # PDEATHSIG fires when the *forking thread* exits; only use it from the main thread so a
    # server started from a short-lived worker thread does not die with that thread.
    preexec = (
        _die_with_parent
        if sys.platform.startswith("linux")
        and threading.current_thread() is threading.main_thread()
        else None
    )
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [binary, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )
    with _live_lock:
        _live.add(proc)
    return proc


def _forget(proc: subprocess.Popen[bytes]) -> None:
    with _live_lock:
        _live.discard(proc)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(cluster_bus: bool = False) -> int:
    """A loopback port nothing listens on; with ``cluster_bus`` also port + 10000 is free."""
    if not cluster_bus:
        with socket.socket() as s:
            s.bind((HOST, 0))
            return s.getsockname()[1]
    for _ in range(200):
        port = random.randint(*_CLUSTER_PORT_RANGE)
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise RedisHarnessError("no free port pair (port, port + 10000) for a cluster node")


def _ping(host: str, port: int, timeout: float) -> bool:
    # A raw socket rather than redis-py, whose retries would stretch the timeout severalfold.
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


# -- a single server -------------------------------------------------------------------------


class RedisServer:
    """One redis-server on a free loopback port, without persistence unless ``aof=True``.

    ``restart()`` keeps the port and comes back empty, like a crashed server restarted without
    persistence. With ``aof=True`` every write is appended to an AOF in ``dir`` and fsynced
    (``appendfsync always``), and ``restart()`` (or ``kill()`` then ``start()``) reloads it: the
    data survives even a crash. ``kill()`` is a crash (SIGKILL); ``stop()`` a clean shutdown.
    Usable as a context manager. Extra ``redis.conf`` directives go in ``extra_args`` as
    ``--name value``.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_args: Sequence[str] = (),
        cluster: bool = False,
        name: str = "redis",
        start: bool = True,
        aof: bool = False,
    ) -> None:
        self.host = HOST
        self.aof = aof
        self._fixed_port = port is not None
        self.cluster = cluster
        self.port = port if port is not None else free_port(cluster_bus=cluster)
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix=f"sb-{name}-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _args(self) -> list[str]:
        args = ["--bind", self.host, "--port", str(self.port), "--dir", self.dir]
        persistence = ["yes", "--appendfsync", "always"] if self.aof else ["no"]
        args += ["--save", "", "--appendonly", *persistence, "--daemonize", "no"]
        args += ["--protected-mode", "no", "--loglevel", "warning"]
        # Replicas sync at once instead of after the default 5 s wait for more replicas.
        args += ["--repl-diskless-sync-delay", "0"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
            args += ["--cluster-config-file", os.path.join(self.dir, "nodes.conf")]
        return args + self.extra_args

    def client(self, **kwargs: Any) -> redis.Redis:
        """A synchronous redis-py client for this server (the caller closes it)."""
        kwargs.setdefault("socket_timeout", 5)
        # Fail fast: a test checking that a server is down should not wait out retries.
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def ping(self, timeout: float = 1.0) -> bool:
        """True if the server answers PING within ``timeout`` seconds."""
        return _ping(self.host, self.port, timeout)

    def start(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """Start the process and wait until it answers PING. No-op if already running."""
        if self.running:
            return self
        for attempt in range(5):
            self.proc = _spawn(self._args(), self.log_path)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.ping(timeout=0.5):
                    return self
                time.sleep(0.02)
            died = self.proc.poll() is not None
            self._reap(self.proc)
            # Another process took the port between our probe and the bind: try another one,
            # unless the caller asked for this port (restart on the same port, for instance).
            if died and not self._fixed_port and attempt < 4:
                self.port = free_port(cluster_bus=self.cluster)
                continue
            break
        raise RedisHarnessError(
            f"redis-server on port {self.port} did not answer PING; log:\n{_tail(self.log_path)}"
        )

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(STOP_TIMEOUT)
        finally:
            _forget(proc)
        if self.proc is proc:
            self.proc = None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Clean shutdown: SIGTERM, then SIGKILL if it lingers. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._reap(proc)

    def kill(self) -> None:
        """Crash the server (SIGKILL) and wait until it is gone; the port stays reserved."""
        proc = self.proc
        if proc is not None:
            self._reap(proc)

    def restart(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """Stop (if running) and start again on the same port: with no data, or with what the
        AOF holds when ``aof=True``."""
        self.stop()
        self._fixed_port = True
        # A node that keeps its nodes.conf would come back with its old cluster identity.
        if self.cluster:
            try:
                os.remove(os.path.join(self.dir, "nodes.conf"))
            except FileNotFoundError:
                pass
        return self.start(timeout)

    def flushall(self) -> None:
        with self.client() as r:
            r.flushall()

    def cleanup(self) -> None:
        """Stop the process and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"


# -- cluster ---------------------------------------------------------------------------------


class RedisCluster:
    """A Redis Cluster of ``masters`` masters (no replicas), hash slots spread by redis-cli."""

    def __init__(self, masters: int = 3, *, start: bool = True) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.nodes = [
            RedisServer(cluster=True, name=f"cluster{i}", start=False) for i in range(masters)
        ]
        if start:
            self.start()

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            cmd = ["redis-cli", "--cluster", "create"]
            cmd += [f"{host}:{port}" for host, port in self.startup_nodes]
            cmd += ["--cluster-replicas", "0", "--cluster-yes"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                raise RedisHarnessError(f"cluster create failed:\n{done.stdout}\n{done.stderr}")
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every node reports cluster_state:ok."""
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            node = pending[0]
            try:
                with node.client(socket_timeout=1) as r:
                    if r.cluster("info").get("cluster_state") == "ok":
                        pending.pop(0)
                        continue
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RedisHarnessError(f"cluster node {node.url} never reported cluster_state:ok")
            time.sleep(0.05)

    def client(self, **kwargs: Any) -> redis.RedisCluster:
        """A synchronous redis-py cluster client (the caller closes it)."""
        return redis.RedisCluster(host=HOST, port=self.nodes[0].port, **kwargs)

    def flushall(self) -> None:
        for node in self.nodes:
            with node.client() as r:
                r.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- sentinel --------------------------------------------------------------------------------


class RedisSentinel:
    """A master watched by one Sentinel (quorum 1), optionally with a replica to fail over to.

    ``failover()`` forces a failover through Sentinel and waits until it names the new master;
    ``master_address()`` asks Sentinel who the master is now.
    """

    service_name = "mymaster"

    def __init__(
        self,
        *,
        replica: bool = False,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        start: bool = True,
    ) -> None:
        self.master = RedisServer(name="sentinel-master", start=False)
        self.replica = RedisServer(name="sentinel-replica", start=False) if replica else None
        self.sentinel_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sb-sentinel-")
        self.log_path = os.path.join(self.dir, "sentinel.log")
        self.conf_path = os.path.join(self.dir, "sentinel.conf")
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(HOST, self.sentinel_port)]

    @property
    def servers(self) -> list[RedisServer]:
        return [self.master] + ([self.replica] if self.replica else [])

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.sentinel_port, socket_timeout=2)

    def master_address(self) -> tuple[str, int] | None:
        try:
            with self.sentinel_client() as r:
                reply = r.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
        except (redis.RedisError, OSError):
            return None
        if not reply:
            return None
        host, port = reply
        host = host.decode() if isinstance(host, bytes) else host
        return (host, int(port))

    def _write_conf(self) -> None:
        name = self.service_name
        lines = [
            f"port {self.sentinel_port}",
            f"bind {HOST}",
            "protected-mode no",
            "daemonize no",
            f"dir {self.dir}",
            f"sentinel monitor {name} {HOST} {self.master.port} 1",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.replica is not None:
            # Declared up front: otherwise Sentinel finds it only at its next INFO poll (~10 s).
            lines.append(f"sentinel known-replica {name} {HOST} {self.replica.port}")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout: float = 30.0) -> RedisSentinel:
        try:
            self.master.start()
            if self.replica is not None:
                self.replica.extra_args = ["--replicaof", HOST, str(self.master.port)]
                self.replica.start()
                self._wait_replica_synced(timeout)
            self._write_conf()
            # Sentinel rewrites its config file, so it gets one of its own in our temp dir.
            self.proc = _spawn([self.conf_path, "--sentinel"], self.log_path)
            deadline = time.monotonic() + timeout
            while self.master_address() != self.master.address:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RedisHarnessError(
                        f"sentinel did not report the master; log:\n{_tail(self.log_path)}"
                    )
                time.sleep(0.05)
            if self.replica is not None:
                self._wait_sentinel_sees_replica(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_replica_synced(self, timeout: float) -> None:
        assert self.replica is not None
        deadline = time.monotonic() + timeout
        while True:
            with self.replica.client() as r:
                if r.info("replication").get("master_link_status") == "up":
                    return
            if time.monotonic() > deadline:
                raise RedisHarnessError("replica never synced with its master")
            time.sleep(0.05)

    def _wait_sentinel_sees_replica(self, deadline: float) -> None:
        # Sentinel learns of replicas from the master's INFO; failover needs one it knows.
        while True:
            with self.sentinel_client() as r:
                replicas = r.execute_command("SENTINEL", "REPLICAS", self.service_name)
            if replicas:
                return
            if time.monotonic() > deadline:
                raise RedisHarnessError("sentinel never discovered the replica")
            time.sleep(0.1)

    def failover(self, timeout: float = 30.0) -> tuple[str, int]:
        """Force a failover to the replica; return the new master's address once promoted."""
        if self.replica is None:
            raise RedisHarnessError("failover needs RedisSentinel(replica=True)")
        old = self.master_address()
        deadline = time.monotonic() + timeout
        # SENTINEL FAILOVER fails with NOGOODSLAVE until the replica looks healthy to Sentinel.
        while True:
            try:
                with self.sentinel_client() as r:
                    r.execute_command("SENTINEL", "FAILOVER", self.service_name)
                break
            except redis.ResponseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self.wait_for_new_master(old, deadline - time.monotonic())

    def wait_for_new_master(
        self, old: tuple[str, int] | None = None, timeout: float = 30.0
    ) -> tuple[str, int]:
        """Wait until Sentinel names a master other than ``old`` (default: the original
        master) and that server really is a master; return its address. Use after
        ``master.kill()`` to wait out a crash-driven failover (about down-after + 1-2 s)."""
        old = old or self.master.address
        deadline = time.monotonic() + timeout
        while True:
            new = self.master_address()
            if new is not None and new != old:
                try:
                    with redis.Redis(host=new[0], port=new[1], socket_timeout=2) as r:
                        if r.info("replication").get("role") == "master":
                            return new
                except (redis.RedisError, OSError):
                    pass
            if time.monotonic() > deadline:
                raise RedisHarnessError(f"no failover within {timeout:.1f}s; still {old}")
            time.sleep(0.05)

    def flushall(self) -> None:
        address = self.master_address() or self.master.address
        with redis.Redis(host=address[0], port=address[1], socket_timeout=5) as r:
            r.flushall()

    def stop(self) -> None:
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(STOP_TIMEOUT)
            finally:
                _forget(proc)
            self.proc = None
        for server in self.servers:
            server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisSentinel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
