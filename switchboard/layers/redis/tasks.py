"""Background task queues on Redis: the :class:`~switchboard.layers.stores.tasks.TaskStore` of
``RedisChannelLayer`` (``layer.task_store()``), shared by every worker on every machine.

Where tasks live: on ONE shard, the one owning the routing key :data:`ROUTING_KEY` (with several
``hosts``), and in one Cluster slot (every key carries the hash tag ``{tasks}``), so each
operation is a single Lua script or command. The key layout is described in
:mod:`switchboard.layers.redis.task_scripts`.

Cost: ``claim`` is one script call whatever it does (queue due scheduled tasks, put expired
leases back, take up to ``count`` tasks and return their records); ``enqueue``, ``finish``,
``retry``, ``release`` and ``extend`` are one script call each, and calls made concurrently on
one event loop leave as one pipeline (``Shard.command``).

Time: leases and due times are measured with the Redis server's clock (``TIME`` inside the
scripts), so workers on machines whose clocks disagree share leases correctly. ``run_after``
and the retry time are absolute epoch seconds from the caller, compared with the server's clock.

Idle workers block in ``wait`` on BLPOP of each queue's wake list (a dedicated connection, not
the pipelined one); whatever makes a task claimable pushes a token there and trims the list to a
few entries. ``claim`` also tells the store when the next scheduled task or lease falls due, and
``wait`` never sleeps past that, so scheduled tasks start and lost ones come back on time.

Order: a task's place in its queue (priority, ``enqueued_at``, enqueue order) is fixed when it
is enqueued; a task put back (retry, release, lost lease, requeue) takes that place again.

Durability: everything is in Redis, nothing in a worker. With AOF (``appendonly yes``) a Redis
restart loses nothing queued, scheduled or running; with RDB snapshots only, what changed since
the last snapshot. Without persistence a restart loses every task: queued and scheduled ones
never run, ``get`` answers None, and a worker's ``finish`` of a task it held returns False
(:meth:`RedisTaskStore.persistence_warning` tells operators at startup). Either way the store
reconnects by itself, and its scripts are sent again when the server has forgotten them
(EVALSHA, then EVAL). A command resent after a connection broke mid-reply (``Shard``) may run
twice: an enqueue twice is harmless (the task runs once), a finish twice answers False.

``layer.flush()`` deletes the tasks with everything else under the layer's prefix.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchboard.layers.redis import task_scripts
from switchboard.layers.redis.scripts import Script, text
from switchboard.layers.stores.tasks import (
    FAILED,
    LOST_ERROR,
    READY,
    RUNNING,
    ListableState,
    Settlement,
    TaskRecord,
)

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster

    from switchboard.layers.redis.connection import Shard
    from switchboard.layers.redis.sharding import RedisStoreHost

__all__ = ["ROUTING_KEY", "RedisTaskStore"]

# Chooses the shard holding every task when the layer has several hosts.
ROUTING_KEY = "switchboard:tasks"
# Per claim: most due scheduled tasks queued, most expired leases put back.
PROMOTE_LIMIT = 1000
RECLAIM_LIMIT = 100
# Stale failed ids (records expired) dropped per queue by counts() and list("failed").
PRUNE_LIMIT = 1000
# How long after a scheduled task or a lease falls due wait() returns for it.
DUE_MARGIN = 0.005
# Pause of a wait() whose connection failed (Redis restarting), so workers don't spin.
RECONNECT_PAUSE = 0.2

# The error a lost lease appends, in two halves around the JSON-escaped id of the worker that
# lost it (inserted by the claim script).
_LOST = (
    ","
    + json.dumps(
        {
            "exception_class_path": LOST_ERROR,
            "traceback": "The lease of worker \x00 on this task ran out: it stopped renewing "
            "it (it died or froze), so the task was queued again.",
        },
        separators=(",", ":"),
    )
).split("\\u0000")
_DISCONNECTS = (RedisConnectionError, RedisTimeoutError, OSError)
# Hash fields the scripts write over the record's JSON (see task_scripts).
_OVERLAYS = (
    (b"sa", "started_at"),
    (b"la", "last_attempted_at"),
    (b"fa", "finished_at"),
    (b"rf", "retry_floor"),
    (b"pg", "progress"),
)


def _dump(record: TaskRecord) -> str:
    # The dataclass's own fields, without asdict()'s deep copy: this runs once per task.
    return json.dumps(vars(record), separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def _worker_json(worker_id: str) -> str:
    # Scripts compare and append worker ids JSON-encoded; a worker repeats its id all day.
    return json.dumps(worker_id)


def _fields(raw: Any) -> dict[bytes, bytes]:
    """A hash reply: a dict (HGETALL), or the flat list a script returns."""
    if isinstance(raw, dict):
        return raw
    pairs = iter(raw)
    return dict(zip(pairs, pairs, strict=True))


def decode_record(raw: Any) -> TaskRecord | None:
    """The record a task's hash holds: its JSON with the fields scripts changed laid over."""
    fields = _fields(raw)
    body = fields.get(b"d")
    if body is None:
        return None
    data = json.loads(body)
    status = fields.get(b"s")
    if status is not None:
        data["status"] = text(status)
    for field, name in _OVERLAYS:
        value = fields.get(field)
        if value is not None:
            data[name] = json.loads(value)
    for field, name in ((b"wa", "worker_ids"), (b"ea", "errors")):
        value = fields.get(field)
        if value:  # ',item,item': the items appended since Python last wrote the record
            data[name] = data[name] + json.loads(b"[" + value[1:] + b"]")
    return TaskRecord(**data)


def _pairs(reply: Any) -> list[tuple[bytes, float]]:
    """ZRANGE ... WITHSCORES as (member, score): flat under RESP2, nested under RESP3."""
    if reply and isinstance(reply[0], list):
        return [(member, float(score)) for member, score in reply]
    return [(member, float(score)) for member, score in zip(reply[::2], reply[1::2], strict=True)]


def _member_id(member: bytes) -> str:
    return text(member).split("|", 1)[1]


def _ms(seconds: float) -> int:
    # Rounded up: a task scheduled for t never becomes due before t.
    return math.ceil(seconds * 1000)


def _started(record: TaskRecord) -> str:
    # repr() of an int or float is its JSON (json.dumps does the same, slower).
    return "" if record.started_at is None else repr(record.started_at)


class RedisTaskStore:
    """The task queues of one ``RedisChannelLayer`` (see the module docstring)."""

    def __init__(self, layer: RedisStoreHost) -> None:
        self.layer = layer
        self.base = f"{layer.prefix}:t:{{tasks}}"
        self._keys = (self.base,)
        self._enqueue = Script(task_scripts.ENQUEUE)
        self._claim = Script(task_scripts.CLAIM)
        self._extend = Script(task_scripts.EXTEND)
        self._settle = Script(task_scripts.SETTLE)
        self._progress = Script(task_scripts.PROGRESS)
        self._requeue = Script(task_scripts.REQUEUE)
        self._counts = Script(task_scripts.COUNTS)
        # time.monotonic() when, as the last claim saw it, a scheduled task or a lease falls
        # due: wait() returns then. A hint shared by the loops using this store.
        self._due_at: float | None = None

    def _shard(self) -> Shard:
        return self.layer.shard(ROUTING_KEY)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.base}:{kind}:{name}"

    def _run(self, script: Script, *args: Any) -> Awaitable[Any]:
        return script.run(self._shard(), self._keys, *args)

    # -- the worker's side ------------------------------------------------------------------

    async def enqueue(self, record: TaskRecord) -> None:
        enqueued = record.enqueued_at if record.enqueued_at is not None else time.time()
        # Members of a queue's sorted set sort by enqueue time in µs, then by enqueue order.
        order = f"{max(0, round(enqueued * 1_000_000)):017d}"
        due = "" if record.run_after is None else str(_ms(record.run_after))
        await self._run(
            self._enqueue,
            record.id,
            record.queue,
            _dump(record),
            -record.priority,
            order,
            due,
            len(record.errors),
            _started(record),
        )

    async def claim(
        self, queues: Sequence[str], worker_id: str, count: int, lease: float
    ) -> list[TaskRecord]:
        if count <= 0 or not queues:
            return []
        reply = await self._run(
            self._claim,
            _worker_json(worker_id),
            count,
            max(1, int(lease * 1000)),
            *_LOST,
            PROMOTE_LIMIT,
            RECLAIM_LIMIT,
            *queues,
        )
        now = float(reply[0])
        hint = int(reply[1])
        self._due_at = time.monotonic() + hint / 1000 if hint >= 0 else None
        claimed = []
        for raw in reply[2:]:
            record = decode_record(raw)
            if record is None:
                continue
            # What the script just did, applied to the fields it read before doing it.
            record.status = RUNNING
            record.worker_ids.append(worker_id)
            record.last_attempted_at = now
            if record.started_at is None:
                record.started_at = now
            claimed.append(record)
        return claimed

    async def extend(self, ids: Sequence[str], worker_id: str, lease: float) -> list[str]:
        if not ids:
            return []
        lost = await self._run(
            self._extend, _worker_json(worker_id), max(1, int(lease * 1000)), *ids
        )
        return [text(i) for i in lost]

    async def finish(self, record: TaskRecord, worker_id: str, ttl: float) -> bool:
        return (await self.settle([("finish", record, ttl)], worker_id))[0]

    async def retry(self, record: TaskRecord, worker_id: str, run_at: float) -> bool:
        return (await self.settle([("retry", record, run_at)], worker_id))[0]

    async def release(self, record: TaskRecord, worker_id: str) -> bool:
        return (await self.settle([("release", record, 0.0)], worker_id))[0]

    async def settle(self, items: Sequence[Settlement], worker_id: str) -> list[bool]:
        if not items:
            return []
        worker = _worker_json(worker_id)
        args: list[Any] = []
        tail: tuple[Any, str]
        for action, record, value in items:
            # The hash's status field overrides the JSON's: the caller's record stays as it is.
            if action == "finish":
                failed = (
                    "" if record.status != FAILED else str(_ms(record.finished_at or time.time()))
                )
                status, tail = record.status, (max(1, int(value * 1000)), failed)
            elif action == "retry":
                status, tail = READY, (_ms(value), "")
            else:
                status, tail = READY, ("", "")
            args += [record.id, worker, _dump(record), status, len(record.errors), _started(record)]
            args += tail
        return [bool(done) for done in await self._run(self._settle, *args)]

    async def update_progress(self, task_id: str, progress: dict[str, Any]) -> None:
        await self._run(self._progress, task_id, json.dumps(progress, separators=(",", ":")))

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        if self._due_at is not None:
            # A little after: Redis rounds BLPOP's timeout down to the millisecond.
            due_in = self._due_at - time.monotonic() + DUE_MARGIN
            if due_in <= timeout:
                self._due_at = None  # returned for once; the claim that follows sets it again
                timeout = due_in
        if timeout <= 0.001:
            return
        if not queues:
            await asyncio.sleep(timeout)
            return
        keys = [self._key("w", queue) for queue in queues]
        try:
            # BLPOP takes float seconds (Redis 6+); 0 would mean forever.
            await self._shard().blocking.blpop(keys, timeout=timeout)
        except _DISCONNECTS:
            # Redis restarting: a spurious return, after a pause; the next claim reports
            # an error that lasts.
            await asyncio.sleep(min(timeout, RECONNECT_PAUSE))

    # -- reading and operating ----------------------------------------------------------------

    async def get(self, task_id: str) -> TaskRecord | None:
        return decode_record(await self._shard().command("HGETALL", self._key("r", task_id)))

    async def _records(self, ids: Sequence[str]) -> list[TaskRecord | None]:
        shard = self._shard()
        replies = await asyncio.gather(
            *(shard.command("HGETALL", self._key("r", task_id)) for task_id in ids)
        )
        return [decode_record(raw) for raw in replies]

    async def _queues(self) -> list[str]:
        names = await self._shard().command("SMEMBERS", f"{self.base}:queues")
        return sorted(text(name) for name in names)

    async def list(
        self, state: ListableState, queue: str | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        if limit <= 0:
            return []
        shard = self._shard()
        if state == "running":
            ids = [text(i) for i in await shard.command("ZRANGE", f"{self.base}:run", 0, -1)]
            running = [
                r
                for r in await self._records(ids)
                if r is not None and r.status == RUNNING and queue in (None, r.queue)
            ]
            running.sort(key=lambda r: r.last_attempted_at or 0.0)
            return running[:limit]
        queues = [queue] if queue is not None else await self._queues()
        kind = {"queued": "q", "scheduled": "s", "failed": "f"}[state]
        if state == "failed":
            await self._run(self._counts, PRUNE_LIMIT, *queues)  # drops expired ids first
            start, stop = -limit, -1
        else:
            start, stop = 0, limit - 1
        replies = await asyncio.gather(
            *(
                shard.command("ZRANGE", self._key(kind, q), start, stop, "WITHSCORES")
                for q in queues
            )
        )
        entries = sorted(
            ((score, member) for reply in replies for member, score in _pairs(reply)),
        )
        entries = entries[-limit:] if state == "failed" else entries[:limit]
        ids = [_member_id(m) if state == "queued" else text(m) for _, m in entries]
        wanted = READY if state != "failed" else FAILED
        return [r for r in await self._records(ids) if r is not None and r.status == wanted]

    async def requeue(self, task_id: str) -> bool:
        return bool(await self._run(self._requeue, task_id))

    async def counts(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        if queues is not None and not queues:
            return {}
        rows = await self._run(self._counts, PRUNE_LIMIT, *(queues or ()))
        out = {}
        for name, queued, scheduled, running, failed in rows:
            numbers = {
                "queued": int(queued),
                "scheduled": int(scheduled),
                "running": int(running),
                "failed": int(failed),
            }
            if queues is not None or any(numbers.values()):
                out[text(name)] = numbers
        return out

    async def persistence_warning(self) -> str | None:
        """A sentence for the worker's startup log when the Redis holding the tasks keeps
        neither an AOF nor RDB snapshots (a restart would lose every task); None when it does,
        or when its CONFIG command is not available to us."""
        shard = self._shard()
        options: dict[str, Any] = {}
        where = repr(shard)
        try:
            if shard.cluster:
                cluster = cast("RedisCluster", shard.client)
                await cluster.initialize()
                node = cluster.get_node_from_key(self.base)
                options["target_nodes"] = node
                where = f"<Redis node {node.host}:{node.port}>" if node else where
            found: dict[Any, Any] = {}
            for name in ("appendonly", "save"):
                found.update(await shard.client.config_get(name, **options))
        except ResponseError:  # CONFIG renamed away, or not permitted by an ACL
            return None
        settings = {text(k): text(v) for k, v in found.items()}
        if settings.get("appendonly", "no") == "yes" or settings.get("save", "").strip():
            return None
        return (
            f"{where} keeps neither an append-only file nor RDB snapshots (appendonly no, "
            'save ""): every queued, scheduled and running task would be lost if it '
            "restarted. Turn on appendonly (or save) to keep tasks across restarts."
        )

    async def flush(self) -> None:
        client = self._shard().client
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{self.base}:*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)
        self._due_at = None

    async def close(self) -> None:
        # The connections are the layer's (one set per event loop); layer.close() ends them.
        pass
