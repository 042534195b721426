"""Per-shard connections: one small command pool with coalesced pipelines, plus
separate connections for pub/sub and for blocking list/stream reads.

Nothing here opens a connection per command: concurrent PUBLISHes issued in the
same loop tick leave as one pipeline, and the command pool is a *blocking* pool
so a burst of 1000 senders waits for a connection instead of raising.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import Connection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_DISCONNECTS = (RedisConnectionError, RedisTimeoutError, OSError)

# Command connections per shard: enough to overlap a few pipelines, far below any server limit.
COMMAND_CONNECTIONS = 4
# Times a batch is resent after its connection turned out closed.
RESEND_ATTEMPTS = 3
# Largest number of commands packed into one pipeline.
MAX_BATCH = 1000
# How long close() waits for queued commands to reach Redis before dropping them.
CLOSE_DRAIN_SECONDS = 2.0


def parse_host(host: Any) -> dict[str, Any]:
    """Connection keyword arguments from any host form channels_redis accepts:
    a URL string, a ``(host, port)`` pair, or a dict (``{"address": url-or-pair, ...}``
    or plain connection keywords such as ``{"host": ..., "port": ..., "password": ...}``)."""
    if isinstance(host, str):
        if "://" not in host:
            raise ValueError(f"Redis host {host!r} is not a URL (expected redis://host:port/db)")
        return dict(parse_url(host))
    if isinstance(host, (tuple, list)):
        if len(host) != 2:
            raise ValueError(f"Redis host {host!r} must be a (host, port) pair")
        return {"host": host[0], "port": int(host[1])}
    if isinstance(host, Mapping):
        options = dict(host)
        address = options.pop("address", None)
        options.pop("master_name", None)
        options.pop("sentinels", None)
        options.pop("sentinel_kwargs", None)
        if address is not None:
            base = parse_host(address)
            base.update(options)
            return base
        return options
    raise ValueError(f"Unsupported Redis host specification: {host!r}")


def backoff_delays(base: float = 0.05, cap: float = 2.0):
    """Exponential backoff with full jitter, so many processes do not reconnect in step."""
    attempt = 0
    while True:
        yield random.uniform(0, min(cap, base * (2**attempt)))
        attempt += 1


class Shard:
    """One Redis server (or the master behind Sentinel). Loop-bound: build it inside the loop."""

    cluster = False

    def __init__(
        self,
        kwargs: dict[str, Any],
        sentinel: Any = None,
        service_name: str = "",
        startup_nodes: list[tuple[str, int]] | None = None,
    ) -> None:
        self.kwargs = kwargs
        self._sentinel = sentinel
        self._service_name = service_name
        self.client: Redis
        self.blocking: Redis
        if startup_nodes:
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            self.cluster = True
            options = {k: v for k, v in kwargs.items() if k not in ("host", "port", "db")}
            options.pop("connection_class", None)
            # Typed as Redis: the layer sends both kinds the same commands, and reaches for
            # what only a cluster has (node lookup) or only a pool has through ``cluster``.
            nodes = [ClusterNode(h, p) for h, p in startup_nodes]
            self.client = cast(Redis, RedisCluster(startup_nodes=nodes, **options))
            # Blocking reads hold a node connection each while they wait.
            self.blocking = cast(
                Redis,
                RedisCluster(
                    startup_nodes=[ClusterNode(h, p) for h, p in startup_nodes],
                    max_connections=2**16,
                    **options,
                ),
            )
        elif sentinel is not None:
            self.client = sentinel.master_for(service_name, **kwargs)
            self.blocking = sentinel.master_for(service_name, **kwargs)
        else:
            self.client = Redis(
                connection_pool=BlockingConnectionPool(
                    max_connections=COMMAND_CONNECTIONS, timeout=None, **kwargs
                )
            )
            # Blocking reads (BLPOP / XREADGROUP BLOCK) each hold a connection while they wait.
            self.blocking = Redis(connection_pool=ConnectionPool(**kwargs))
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future]] = []
        self._scheduled = False
        self._in_flight = 0
        # False after a command batch failed, until one succeeds again.
        self.healthy = True
        self._tasks: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        if self.cluster:
            return "<Shard cluster>"
        if self._sentinel is not None:
            return f"<Shard sentinel:{self._service_name}>"
        where = self.kwargs.get("path") or f"{self.kwargs.get('host')}:{self.kwargs.get('port')}"
        return f"<Shard {where}>"

    async def pubsub_connection(self, node: tuple[str, int] | None = None) -> Connection:
        """A fresh, dedicated connection for SUBSCRIBE (never returned to a pool);
        ``node``: the cluster node owning the shard channels to subscribe to. TCP keepalive
        is on: a quiet subscription reads without a timeout, so the kernel is what notices
        a peer that vanished silently."""
        if node is not None:
            kwargs = {k: v for k, v in self.kwargs.items() if k not in ("host", "port", "db")}
            kwargs["protocol"] = 2
            kwargs.setdefault("socket_keepalive", True)
            cls = kwargs.pop("connection_class", Connection)
            conn = cls(host=node[0], port=node[1], **kwargs)
        elif self._sentinel is not None:
            host, port = await self._sentinel.discover_master(self._service_name)
            kwargs = {k: v for k, v in self.kwargs.items() if k != "connection_class"}
            kwargs["protocol"] = 2
            kwargs.setdefault("socket_keepalive", True)
            conn = Connection(host=host, port=port, **kwargs)
        else:
            kwargs = dict(self.kwargs)
            # RESP2: pub/sub traffic arrives as plain replies on this connection, not as
            # RESP3 push frames that redis-py would divert to a push handler.
            kwargs["protocol"] = 2
            kwargs.setdefault("socket_keepalive", True)
            cls = kwargs.pop("connection_class", Connection)
            conn = cls(**kwargs)
        await conn.connect()
        return conn

    # -- coalesced commands ---------------------------------------------------

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def command(self, *args: Any) -> asyncio.Future:
        """Queue a command; commands queued in the same tick share one pipeline."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((args, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        # Keep at most one pipeline per command connection in flight; the rest of the
        # queue grows meanwhile and leaves as the next, larger batch.
        while self._pending and self._in_flight < COMMAND_CONNECTIONS:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, batch: list[tuple[tuple[Any, ...], asyncio.Future]]) -> list[Any]:
        if len(batch) == 1:
            try:
                return [await self.client.execute_command(*batch[0][0])]
            except ResponseError as exc:  # the command's own error, not the connection's
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for args, _ in batch:
            pipe.execute_command(*args)
        return await pipe.execute(raise_on_error=False)

    async def _run(self, batch: list[tuple[tuple[Any, ...], asyncio.Future]]) -> None:
        try:
            delays = backoff_delays()
            for attempt in range(RESEND_ATTEMPTS + 1):
                try:
                    results = await self._execute(batch)
                    break
                except RedisConnectionError as exc:
                    # Typically a pooled connection the server closed (restart, idle
                    # timeout): redis-py reconnects on the next use, so resend. Rarely the
                    # server died mid-batch, and a resend may then duplicate a message;
                    # duplicates beat silent loss here.
                    if attempt < RESEND_ATTEMPTS:
                        await asyncio.sleep(next(delays))
                        continue
                    self._fail(batch, exc)
                    return
                except Exception as exc:  # noqa: BLE001 - handed to every caller
                    self._fail(batch, exc)
                    return
            self.healthy = True
            for (_, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        finally:
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    def _fail(self, batch: list[tuple[tuple[Any, ...], asyncio.Future]], exc: Exception) -> None:
        self.healthy = not isinstance(exc, _DISCONNECTS)
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)

    async def close(self) -> None:
        # Let batches already queued or in flight reach Redis (bounded), then stop the rest.
        if self._tasks or self._pending:
            deadline = asyncio.get_running_loop().time() + CLOSE_DRAIN_SECONDS
            while (self._tasks or self._pending) and asyncio.get_running_loop().time() < deadline:
                if self._tasks:
                    await asyncio.wait(list(self._tasks), timeout=0.05)
                else:
                    await asyncio.sleep(0)
        for task in list(self._tasks):
            task.cancel()
        for _, fut in self._pending:
            if not fut.done():
                fut.cancel()
        self._pending.clear()
        await self.client.aclose()
        await self.blocking.aclose()
        if self._sentinel is None and not self.cluster:
            await self.client.connection_pool.disconnect()
            await self.blocking.connection_pool.disconnect()
