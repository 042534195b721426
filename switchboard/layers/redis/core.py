"""RedisChannelLayer: groups fan out per process, process channels over pub/sub,
worker channels on lists (or streams for at-least-once), sharded by one key.

How a message travels:

* ``send("prefix.<pid>!x", m)`` -> one PUBLISH to ``<prefix>:p:<pid>`` on the shard
  chosen by ``<pid>``; the owning process puts ``m`` in its local bounded queue for
  that channel. A send to a channel this very process owns never touches Redis.
* ``group_send(g, m)`` -> serialize once, one PUBLISH to ``<prefix>:g:<g>``. Every
  process with local members of ``g`` is subscribed; it deserializes once and hands
  the SAME dict to each local member (no per-member copy: receivers must treat
  messages as read-only, as they already must with Channels' Redis layer where all
  members of a group in one process see equal data).
* ``send("jobs", m)`` (no "!") -> a Redis list with capacity and expiry, checked in a
  Lua script (one round trip); any process may BLPOP it, one reader per message. Names
  matching ``at_least_once_channels`` use a Redis Stream instead (see streams.py).

The layer is assembled here from its parts: its configuration is read below; loops.py keeps
what is bound to each event loop (connections, subscribers, local queues), channels.py sends
and receives, groups.py keeps memberships and fans group messages out.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from switchboard.layers.codec import DEFAULT_MAX_MESSAGE_SIZE
from switchboard.layers.groups import GroupMemberships
from switchboard.layers.redis.channels import RedisChannels
from switchboard.layers.redis.connection import Shard, parse_host
from switchboard.layers.redis.groups import RedisGroups
from switchboard.layers.redis.history import RedisHistoryStore
from switchboard.layers.redis.presence import RedisPresenceStore
from switchboard.layers.redis.pubsub import PUBSUB_MAX_MESSAGE_SIZE, PubSubMessageTooLarge
from switchboard.layers.redis.serializer import Serializer
from switchboard.layers.redis.tasks import RedisTaskStore
from switchboard.layers.stores.host import StoresMixin

__all__ = ["PubSubMessageTooLarge", "RedisChannelLayer"]


def _sentinel_addresses(entries: Iterable[Any]) -> list[tuple[str, int]]:
    """Sentinels as ``(host, port)`` tuples, given as tuples or lists (settings from JSON)."""
    return [(str(host), int(port)) for host, port in entries]


class RedisChannelLayer(StoresMixin, RedisChannels, RedisGroups):
    """A channel layer for several processes or machines, on one or more Redis servers.

    CONFIG keys (channels_redis-compatible where they overlap):

    ``hosts``: list of Redis servers, each a URL (``"redis://:pw@host:6379/0"``,
    ``"rediss://..."``, ``"unix:///path"``), a ``(host, port)`` pair or a dict
    (``{"address": ..., **connection_options}``). Several hosts are independent shards.
    ``prefix``, ``expiry``, ``capacity``, ``channel_capacity``, ``group_expiry``:
    as in Channels. ``max_message_size``: bytes, checked at send (see BaseChannelLayer).
    ``symmetric_encryption_keys``: list of secrets; payloads are
    Fernet-encrypted with the first, decrypted with any.
    ``serializer_format``: ``"msgpack"`` (default), ``"json"`` or a name registered in
    :data:`switchboard.layers.redis.serializer.registry`; every process must use the same.
    ``cluster=True`` (or hosts written ``"redis+cluster://host:port"``): the hosts are
    startup nodes of one Redis Cluster; groups and process channels use sharded pub/sub
    (SSUBSCRIBE/SPUBLISH, one subscriber connection per node owning a slot in use).
    ``sentinels`` + ``service_name`` (+ ``sentinel_kwargs``): find the master via Sentinel;
    after a failover every connection re-discovers the master.
    ``pubsub_max_message_size``: bytes; a group or consumer-channel message larger than this
    raises PubSubMessageTooLarge at send (default 8 MiB, below what makes Redis cut a pub/sub
    subscriber; raise it only with Redis's client-output-buffer-limit pubsub).
    ``presence_timeout``: seconds after which a dead process's presence entries vanish
    (:mod:`switchboard.layers.redis.presence`).
    ``at_least_once_channels``: glob patterns of worker channels delivered through
    Redis Streams; receivers call ``await layer.ack(channel, message)`` after handling
    (or the next ``receive`` on that channel acknowledges the previous message);
    unacknowledged messages go to another reader after ``redelivery_timeout`` seconds.
    Every process must use the same ``prefix``, ``hosts`` order and
    ``at_least_once_channels``: they decide where a channel lives.

    Delivery guarantees: process channels and groups are at-most-once (pub/sub; a full
    receiving queue drops and logs), worker lists are exactly-once-or-expired, streams
    at-least-once. ``group_send`` returns once its PUBLISH is queued for the shard's
    pipeline (see group_send). Received messages may be shared between local members of
    a group: treat them as read-only.

    Event loops: connections belong to one loop, so each loop using the layer gets its own
    (sync code's async_to_sync calls each run on a fresh loop; any number of threads may do
    so at once). When a loop shuts down, its connections are closed and its channels are
    handed over: a later receive on any loop of the same layer instance takes them, with the
    messages sent meanwhile (kept in Redis while nobody listens, up to capacity and expiry).
    A channel whose loop is still running is received on that loop only.
    """

    extensions = ("groups", "flush", "presence", "history", "tasks", "receive_future")

    def __init__(
        self,
        hosts: Iterable[Any] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        sentinels: Iterable[tuple[str, int]] | None = None,
        service_name: str | None = None,
        sentinel_kwargs: dict[str, Any] | None = None,
        cluster: bool = False,
        at_least_once_channels: Iterable[str] = (),
        redelivery_timeout: float = 30.0,
        random_prefix_length: int = 12,  # accepted for channels_redis settings; unused
        serializer_format: str = "msgpack",  # a name in serializer.registry
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        presence_timeout: float = 15.0,
        pubsub_max_message_size: int = PUBSUB_MAX_MESSAGE_SIZE,
    ) -> None:
        super().__init__(
            expiry=expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            group_expiry=group_expiry,
            max_message_size=max_message_size,
        )
        if not prefix or ":" in prefix:
            raise ValueError("prefix must be a non-empty string without ':'")
        self.prefix = prefix
        self.pubsub_max_message_size = pubsub_max_message_size
        self.sentinels = _sentinel_addresses(sentinels) if sentinels else None
        if self.sentinels and not service_name:
            raise ValueError("sentinels needs service_name (the monitored master's name)")
        self.service_name = service_name
        self.sentinel_kwargs = sentinel_kwargs
        host_list = list(hosts) if hosts is not None else ["redis://localhost:6379"]
        if isinstance(hosts, (str, bytes)):
            raise ValueError("hosts must be a list of hosts, not a single string")
        if not host_list and not self.sentinels:
            raise ValueError("hosts must name at least one Redis server")
        if any(isinstance(h, str) and h.startswith("redis+cluster://") for h in host_list):
            cluster = True
            host_list = [
                "redis://" + h[len("redis+cluster://") :] if isinstance(h, str) else h
                for h in host_list
            ]
        self.cluster = cluster
        self.hosts = [parse_host(h) for h in host_list]
        # channels_redis style: a host dict naming its own "sentinels" and "master_name".
        self._host_sentinels: list[tuple[list[tuple[str, int]], str, Any] | None] = []
        for raw in host_list:
            if isinstance(raw, Mapping) and raw.get("sentinels"):
                if not raw.get("master_name"):
                    raise ValueError("a host with 'sentinels' needs 'master_name'")
                found = _sentinel_addresses(raw["sentinels"])
                self._host_sentinels.append((found, raw["master_name"], raw.get("sentinel_kwargs")))
            else:
                self._host_sentinels.append(None)
        self._serializer = Serializer(symmetric_encryption_keys, serializer_format)
        self.at_least_once = [re.compile(fnmatch.translate(p)) for p in at_least_once_channels]
        self.redelivery_timeout = redelivery_timeout
        self.presence_timeout = presence_timeout

    # -- what each event loop's LoopState is built with ----------------------------

    def _build_shards(self) -> list[Shard]:
        if self.sentinels:
            from redis.asyncio.sentinel import Sentinel

            options = self.hosts[0] if self.hosts else {}
            options = {k: v for k, v in options.items() if k not in ("host", "port")}
            sentinel = Sentinel(self.sentinels, sentinel_kwargs=self.sentinel_kwargs)
            assert self.service_name  # required with sentinels (__init__)
            return [Shard(options, sentinel=sentinel, service_name=self.service_name)]
        if self.cluster:
            # All hosts are startup nodes of ONE cluster; the cluster does the sharding.
            nodes = [(h.get("host", "localhost"), int(h.get("port", 6379))) for h in self.hosts]
            return [Shard(self.hosts[0], startup_nodes=nodes)]
        shards = []
        for kwargs, sentinel_spec in zip(self.hosts, self._host_sentinels, strict=True):
            if sentinel_spec is None:
                shards.append(Shard(kwargs))
                continue
            from redis.asyncio.sentinel import Sentinel

            found, master_name, sentinel_kwargs = sentinel_spec
            options = {k: v for k, v in kwargs.items() if k not in ("host", "port")}
            sentinel = Sentinel(found, sentinel_kwargs=sentinel_kwargs)
            shards.append(Shard(options, sentinel=sentinel, service_name=master_name))
        return shards

    def _new_groups(self) -> GroupMemberships:
        # Wall-clock time, like the messages this process receives from others.
        return GroupMemberships(self.group_expiry, time.time)

    # -- optional stores (switchboard.realtime.presence, .history) ----------------

    def _new_presence_store(self) -> RedisPresenceStore:
        """See :mod:`switchboard.layers.redis.presence`."""
        return RedisPresenceStore(self, self.presence_timeout)

    def _new_history_store(self) -> RedisHistoryStore:
        """See :mod:`switchboard.layers.redis.history`."""
        return RedisHistoryStore(self)

    def _new_task_store(self) -> RedisTaskStore:
        """See :mod:`switchboard.layers.redis.tasks` (every task lives on one shard)."""
        return RedisTaskStore(self)

    # -- the API ----------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        state = self._state()
        await state.ensure_process_subscription()
        name = f"{prefix}.{state.pid}!{secrets.token_hex(6)}"
        self.require_valid_channel_name(name)
        state.queue(name)
        return name

    def queued_messages(self) -> int:
        # Copies before iterating: a scrape may run in another thread.
        return sum(
            len(q) for state in list(self._states.values()) for q in list(state.queues.values())
        )

    async def flush(self) -> None:
        """Delete this prefix's keys on every shard and empty this process's queues/groups.
        Background tasks are under the prefix too: queued, scheduled, running and finished
        ones are all forgotten (``task_store().flush()`` forgets only those)."""
        state = self._state()
        pattern = f"{self.prefix}:*"
        for shard in state.shards:
            batch = []
            async for key in shard.client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await shard.client.unlink(*batch)
                    batch = []
            if batch:
                await shard.client.unlink(*batch)
        for group in state.groups.clear():
            await self._unsubscribe_group(state, group)
        state.local.clear()
        state.streams_ready.clear()
        state.unacked.clear()
        state.last_durable.clear()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        with self._states_lock:
            state = self._states.pop(loop, None)
        if state is not None:
            await state.close()
            with self._states_lock:
                self._orphans.update(state.tokens)

    async def close_pools(self) -> None:
        """channels_redis's name for :meth:`close`, which tests and shutdown code call: close
        this event loop's connections (the layer reconnects if used again). Other loops'
        connections close when those loops end."""
        await self.close()

    def __repr__(self) -> str:
        return f"<RedisChannelLayer prefix={self.prefix!r} shards={len(self.hosts)}>"
