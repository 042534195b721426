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
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchboard.exceptions import ChannelFull
from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.codec import DEFAULT_MAX_MESSAGE_SIZE, ChannelMessageTooLarge
from switchboard.layers.fanout import LocalDelivery, sweep_interval
from switchboard.layers.groups import GroupMemberships
from switchboard.layers.local import LocalQueue
from switchboard.layers.naming import new_token, process_token
from switchboard.layers.redis import streams
from switchboard.layers.redis.connection import Shard, backoff_delays, parse_host
from switchboard.layers.redis.pubsub import Subscriber
from switchboard.layers.redis.scripts import Script
from switchboard.layers.redis.serializer import Serializer

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster

    from switchboard.layers.redis.history import RedisHistoryStore
    from switchboard.layers.redis.presence import RedisPresenceStore
from switchboard.layers.redis.sharding import group_routing_key, shard_index
from switchboard.layers.stores.host import StoresMixin

logger = logging.getLogger("switchboard.layers.redis")

_DISCONNECTS = (RedisConnectionError, RedisTimeoutError, OSError)


def _sentinel_addresses(entries: Iterable[Any]) -> list[tuple[str, int]]:
    """Sentinels as ``(host, port)`` tuples, given as tuples or lists (settings from JSON)."""
    return [(str(host), int(port)) for host, port in entries]


# Longest wait in group_send for this process's own copy of a group message to come back
# over pub/sub (it normally arrives before PUBLISH's reply; this bounds a lost connection).
ECHO_TIMEOUT = 1.0

# Redis cuts a pub/sub subscriber whose output buffer holds more than 8 MB for 60 s or 32 MB
# at once (client-output-buffer-limit pubsub, its default): the subscriber loses that message
# and every other one in flight. Pub/sub messages are refused above this at send.
PUBSUB_MAX_MESSAGE_SIZE = 8 * 1024 * 1024


class PubSubMessageTooLarge(ChannelMessageTooLarge):
    """A group or consumer-channel message over ``pubsub_max_message_size``; nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.args = (
            f"Channel layer message is {size} bytes, over the Redis layer's "
            f"pubsub_max_message_size of {limit} bytes; nothing was sent. Groups and consumer "
            "channels travel over Redis pub/sub, and Redis disconnects a subscriber whose "
            "output buffer passes client-output-buffer-limit pubsub (8 MB sustained, 32 MB at "
            "once by default), losing every message in flight. Send large payloads through a "
            "worker channel, or raise both that Redis setting and pubsub_max_message_size",
        )


# Published on a process channel after a message was left in a channel's mailbox because the
# PUBLISH reached nobody (the receiver was between a Redis restart and its re-subscribe): the
# receiver, if it listens by then, collects the mailbox. No serialized envelope starts so.
MAILBOX_NOTICE = b"\x00switchboard:mailbox\x00"

# Longest single BLPOP / XREADGROUP BLOCK wait, in seconds.
BLOCK_SECONDS = 1

LIST_SEND_SCRIPT = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class _LoopState:
    """Everything bound to one event loop: connections, subscribers, local queues, groups."""

    def __init__(self, layer: RedisChannelLayer, loop: asyncio.AbstractEventLoop) -> None:
        self.layer = layer
        self.loop = loop
        self.pid = new_token()
        # Process tokens whose channels this loop delivers: its own, plus those adopted from
        # loops of the same layer that ended (see RedisChannelLayer._adopt).
        self.tokens = {self.pid}
        self.shards: list[Shard] = layer._build_shards()
        self.subscribers: dict[int, Subscriber] = {}
        self.local = LocalDelivery(
            layer.get_capacity, layer.drops, self.is_local, self._forward, layer.stats
        )
        self.groups = layer._new_groups()
        # pub/sub channel name (bytes) -> group name, or None for our process channel.
        self.routes: dict[bytes, str | None] = {}
        # pub/sub channel -> [data, future] of our own group publishes not yet seen coming back,
        # oldest first: group_send waits for its local copy so a later send cannot overtake it.
        self.echoes: dict[bytes, deque[tuple[bytes, asyncio.Future]]] = {}
        self.process_pubsub = f"{layer.prefix}:p:{self.pid}"
        self.streams_ready: set[str] = set()
        self.unacked: dict[int, tuple[str, bytes, dict[str, Any]]] = {}
        self.last_durable: dict[str, int] = {}
        self.tasks: set[asyncio.Task] = set()
        self.list_script = Script(LIST_SEND_SCRIPT)
        self.stream_script = Script(streams.SEND_SCRIPT)
        self._sweeper = loop.call_later(sweep_interval(self.layer.expiry), self._sweep)
        self.closed = False
        # Cancelled when the loop shuts down (asyncio.run and async_to_sync cancel every task
        # on the way out): the state then hands its channels over and closes its connections.
        self.guard = loop.create_task(self._watch_loop_end())

    async def _watch_loop_end(self) -> None:
        try:
            await self.loop.create_future()
        except asyncio.CancelledError:
            if not self.closed:
                await self.layer._retire(self)
            raise

    # -- routing ----------------------------------------------------------

    def shard_for(self, routing_key: str) -> int:
        return shard_index(routing_key, len(self.shards))

    async def subscriber(self, pubsub: str, routing_key: str) -> Subscriber:
        """The subscriber for ``pubsub``: per shard, or per node owning its slot on Cluster."""
        shard = self.shards[self.shard_for(routing_key)]
        node = None
        if shard.cluster:
            cluster = cast("RedisCluster", shard.client)
            await cluster.initialize()
            owner = cluster.get_node_from_key(pubsub)
            assert owner is not None  # every key has a slot, every slot an owner once initialized
            node = (owner.host, int(owner.port))
            key: Any = node
        else:
            key = self.shards.index(shard)
        sub = self.subscribers.get(key)
        if sub is None:
            sub = Subscriber(
                shard,
                self.on_message,
                sharded=shard.cluster,
                node=node,
                stats=self.layer.stats,
                on_subscribed=self.on_subscribed,
            )
            self.subscribers[key] = sub
            sub.start()
        return sub

    async def ensure_process_subscription(self, token: str | None = None) -> None:
        # Returns at once when subscribed; waits while a first subscribe is in flight.
        token = token or self.pid
        pubsub = f"{self.layer.prefix}:p:{token}"
        self.routes[pubsub.encode()] = None
        sub = await self.subscriber(pubsub, token)
        await sub.subscribe(pubsub)

    def expect_echo(self, pubsub: bytes, data: bytes, routing_key: str) -> asyncio.Future | None:
        """A future resolved when ``data``, about to be published on ``pubsub``, comes back to
        this process's subscriber; None when nothing here listens (or can hear it now)."""
        if pubsub not in self.routes:
            return None
        shard = self.shards[self.shard_for(routing_key)]
        if not shard.cluster:
            sub = self.subscribers.get(self.shards.index(shard))
            if sub is None or not sub.connected.is_set():
                return None
        fut = self.loop.create_future()
        self.echoes.setdefault(pubsub, deque()).append((data, fut))
        return fut

    async def await_echo(self, pubsub: bytes, fut: asyncio.Future) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(fut), ECHO_TIMEOUT)
        except TimeoutError:
            self.forget_echo(pubsub, fut)  # lost with the connection

    def forget_echo(self, pubsub: bytes, fut: asyncio.Future) -> None:
        """Stop waiting for an echo that will not come, so later ones are still matched."""
        echoes = self.echoes.get(pubsub)
        if echoes:
            for item in echoes:
                if item[1] is fut:
                    echoes.remove(item)
                    break
            if not echoes:
                del self.echoes[pubsub]

    def publish(self, routing_key: str, pubsub: str, data: bytes) -> asyncio.Future:
        shard = self.shards[self.shard_for(routing_key)]
        # Cluster: sharded pub/sub, so a message only travels to the node owning its slot.
        return shard.command("SPUBLISH" if shard.cluster else "PUBLISH", pubsub, data)

    async def eval(self, index: int, script: Any, key: str, *args: Any) -> Any:
        """Run a Lua script through the shard's coalescing pipeline (EVALSHA, loading it
        once if the server does not know it, e.g. after a restart)."""
        return await script.run(self.shards[index], (key,), *args)

    # -- local delivery -------------------------------------------------------

    @property
    def queues(self) -> dict[str, LocalQueue]:
        return self.local.queues

    @property
    def backlog(self) -> deque[list[Any]]:
        return self.local.backlog

    def queue(self, channel: str) -> LocalQueue:
        return self.local.queue(channel)

    def is_local(self, channel: str) -> bool:
        return process_token(channel) in self.tokens

    def on_subscribed(self, pubsub_channel: bytes) -> None:
        """A process channel is (again) subscribed: sends that found nobody listening before,
        as after a Redis restart, wait in the mailboxes of its consumer channels."""
        if pubsub_channel not in self.routes or self.routes[pubsub_channel] is not None:
            return  # a group, or no longer wanted
        prefix = f"{self.layer.prefix}:p:".encode()
        token = pubsub_channel[len(prefix) :].decode()
        channels = [name for name in self.queues if process_token(name) == token]
        if channels:
            self.spawn(self.layer._collect_mailboxes(self, channels))

    def on_message(self, pubsub_channel: bytes, data: bytes) -> None:
        try:
            group = self.routes[pubsub_channel]
        except KeyError:
            return  # unsubscribed a moment ago
        if group is None and data.startswith(MAILBOX_NOTICE):
            channel = data[len(MAILBOX_NOTICE) :].decode()
            self.spawn(self.layer._collect_mailboxes(self, [channel]))
            return
        echoes = self.echoes.get(pubsub_channel)
        if echoes and echoes[0][0] == data:
            # Delivered below, in this same callback, before the waiting group_send resumes.
            fut = echoes.popleft()[1]
            if not echoes:
                del self.echoes[pubsub_channel]
            if not fut.done():
                fut.set_result(None)
        target, expires, message = self.layer._serializer.loads(data)
        if expires < time.time():
            self.layer.drops.note("expired", target)
            return
        if group is None:
            members = [target]
        else:
            members = self.groups.members(group)
            if not members and self.groups.is_empty(group):
                # Every membership expired (group_expiry): stop listening to the group.
                self.spawn(self.layer._unsubscribe_group(self, group, only_if_empty=True))
        # One deserialized dict shared by every local member (see fanout.py).
        self.local.fan_out(members, expires, message, direct=group is None)

    def _forward(self, member: str, expires: float, message: dict[str, Any]) -> None:
        # A member of a local group that another process reads (group_add made here).
        self.spawn(self.layer.send(member, message))

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("Forwarding a group message failed: %r", task.exception())

    def _sweep(self) -> None:
        self.local.sweep()
        if not self.closed:
            self._sweeper = self.loop.call_later(sweep_interval(self.layer.expiry), self._sweep)

    async def close(self) -> None:
        self.closed = True
        self.local.closed = True
        if self.guard is not asyncio.current_task():
            self.guard.cancel()
        self._sweeper.cancel()
        for task in list(self.tasks):
            task.cancel()
        for q in self.queues.values():
            for waiter in q.waiters:
                waiter.cancel()
        # Unsubscribed first: from now on senders find nobody listening and use the mailbox.
        for sub in self.subscribers.values():
            await sub.close()
        try:
            await self._hand_over()
        except Exception as exc:  # noqa: BLE001 - closing must finish; the messages expire
            logger.warning("Could not hand over undelivered messages: %r", exc)
        for shard in self.shards:
            await shard.close()

    async def _hand_over(self) -> None:
        """Put messages still queued for this process's channels back in Redis (at the head
        of each channel's mailbox, keeping their order) for the next loop that receives."""
        layer = self.layer
        now = time.time()
        pending = []
        for name, q in self.queues.items():
            if not q.messages or process_token(name) not in self.tokens:
                continue
            sealed = [
                layer._serializer.pack(layer.codec, name, expires, message, checked=False)
                for expires, message in q.messages
                if expires > now
            ]
            if sealed:
                shard = self.shards[self.shard_for(name)]
                key = layer._key("c", name)
                pending.append(shard.command("LPUSH", key, *reversed(sealed)))
                pending.append(shard.command("EXPIRE", key, int(layer.expiry) + 1))
        if pending:
            await asyncio.gather(*pending)


class RedisChannelLayer(StoresMixin, BaseChannelLayer):
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

    extensions = ("groups", "flush", "presence", "history", "receive_future")

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
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        # Sync code reaches the layer from many threads, each async_to_sync on its own loop.
        self._states_lock = threading.Lock()
        # Process tokens of loops that ended: their channels go to the first loop receiving.
        self._orphans: set[str] = set()
        self.presence_timeout = presence_timeout

    # -- per-loop state ---------------------------------------------------------

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

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            # redis.asyncio connections belong to one loop; each loop gets its own set.
            with self._states_lock:
                for old_loop, old in list(self._states.items()):
                    if old_loop.is_closed():  # closed without cancelling its tasks first
                        del self._states[old_loop]
                        self._orphans.update(old.tokens)
                state = self._states[loop] = _LoopState(self, loop)
        return state

    async def _retire(self, state: _LoopState) -> None:
        """``state``'s loop is shutting down: let other loops take its channels over."""
        with self._states_lock:
            if self._states.get(state.loop) is state:
                del self._states[state.loop]
        await state.close()
        with self._states_lock:
            self._orphans.update(state.tokens)

    def _adopt(self, state: _LoopState, token: str) -> None:
        """Make ``state`` deliver the channels of ``token``, a loop of this layer that ended;
        raises ValueError if the token is another process's or a running loop's."""
        with self._states_lock:
            for other in list(self._states.values()):
                if token in other.tokens:
                    if not other.loop.is_closed():
                        raise ValueError(
                            f"Channel with token {token!r} is received on another running "
                            "event loop of this layer; receive it there"
                        )
                    del self._states[other.loop]
                    self._orphans.update(other.tokens)
            if token not in self._orphans:
                raise ValueError(
                    f"Channels of {token!r} belong to another process; only the layer that "
                    "created them with new_channel() can receive from them"
                )
            self._orphans.discard(token)
            state.tokens.add(token)

    def _durable(self, channel: str) -> bool:
        return any(p.match(channel) for p in self.at_least_once)

    def shard(self, routing_key: str) -> Shard:
        """The running event loop's connection to the shard owning ``routing_key`` (what the
        presence and history stores write through)."""
        state = self._state()
        return state.shards[state.shard_for(routing_key)]

    def _key(self, kind: str, name: str) -> str:
        # The name is a Cluster hash tag: a channel's list and stream share one slot, and
        # the slot depends on the channel alone (never on the prefix).
        return f"{self.prefix}:{kind}:{{{name}}}"

    # -- optional stores (switchboard.realtime.presence, .history) ----------------

    def _new_presence_store(self) -> RedisPresenceStore:
        """See :mod:`switchboard.layers.redis.presence`."""
        from switchboard.layers.redis.presence import RedisPresenceStore

        return RedisPresenceStore(self, self.presence_timeout)

    def _new_history_store(self) -> RedisHistoryStore:
        """See :mod:`switchboard.layers.redis.history`."""
        from switchboard.layers.redis.history import RedisHistoryStore

        return RedisHistoryStore(self)

    # -- the API ----------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        state = self._state()
        await state.ensure_process_subscription()
        name = f"{prefix}.{state.pid}!{secrets.token_hex(6)}"
        self.require_valid_channel_name(name)
        state.queue(name)
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Raises ChannelFull when the channel is at capacity (for another process's channel
        that is only known at the receiver, which drops and logs), UnserializableMessage or
        ChannelMessageTooLarge when the message cannot be carried, wherever it is going."""
        self.require_valid_channel_name(channel)
        self.require_valid_message(message)
        state = self._state()
        codec = self.codec
        now = time.time()
        expires = now + self.expiry
        token = process_token(channel)
        if token is not None:
            if token in state.tokens:
                # Encoded and decoded although it never leaves the process: the same checks
                # as a remote send, and the receiver's copy is its own.
                message = self._serializer.copy(codec, message)
                # Behind fan-outs still being delivered, so it cannot overtake them.
                if not state.local.put(channel, expires, message):
                    raise ChannelFull(channel)
                self.stats.sends += 1
                return
            data = self._serializer.pack(codec, channel, expires, message)
            self._check_pubsub_size(data)
            pubsub = f"{self.prefix}:p:{token}"
            if await state.publish(token, pubsub, data):
                self.stats.sends += 1
                return
            # Nobody listens for that token right now: its loop ended (sync code runs each
            # async_to_sync on a loop of its own) or its process is gone. Keep the message in
            # the channel's mailbox list for the next receive; unread, it expires there.
            ttl = int(self.expiry) + 1
            index = state.shard_for(channel)
            key = self._key("c", channel)
            stored = await state.eval(
                index, state.list_script, key, data, self.get_capacity(channel), ttl
            )
            if not stored:
                raise ChannelFull(channel)
            self.stats.sends += 1
            # The receiver may have subscribed between that PUBLISH and this store (a Redis
            # restart): tell it. If it has not yet, it reads its mailboxes once it has.
            try:
                await state.publish(token, pubsub, MAILBOX_NOTICE + channel.encode())
            except _DISCONNECTS:
                pass
            return
        data = self._serializer.pack(codec, channel, expires, message)
        index = state.shard_for(channel)
        ttl = int(self.expiry) + 1
        if self._durable(channel):
            key = self._key("s", channel)
            await self._ensure_stream(state, index, key)
            script = state.stream_script
        else:
            key = self._key("c", channel)
            script = state.list_script
        stored = await state.eval(index, script, key, data, self.get_capacity(channel), ttl)
        if not stored:
            raise ChannelFull(channel)
        self.stats.sends += 1

    def _check_pubsub_size(self, data: bytes) -> None:
        if len(data) > self.pubsub_max_message_size:
            raise PubSubMessageTooLarge(len(data), self.pubsub_max_message_size)

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel, receive=True)
        state = self._state()
        token = process_token(channel)
        if token is not None:
            if token not in state.tokens:
                self._adopt(state, token)
            if token != state.pid:
                return await self._receive_adopted(state, channel, token)
            return await self._receive_local(state, channel)
        if self._durable(channel):
            return await self._receive_stream(state, channel)
        return await self._receive_list(state, channel)

    def receive_future(self, channel: str) -> asyncio.Future[dict[str, Any]]:
        """Like ``receive``, as a future; for this process's channels it waits without a task
        (consumers use it to wait on their channel and the client at once cheaply)."""
        self.require_valid_channel_name(channel, receive=True)
        state = self._state()
        # A channel from new_channel(), which has already subscribed this process.
        if process_token(channel) == state.pid and state.process_pubsub.encode() in state.routes:
            return state.queue(channel).next_future(time.time())
        return asyncio.ensure_future(self.receive(channel))

    async def _receive_local(self, state: _LoopState, channel: str) -> dict[str, Any]:
        await state.ensure_process_subscription()
        return await state.queue(channel).get(time.time, self.expiry)

    async def _receive_adopted(self, state: _LoopState, channel: str, token: str) -> dict[str, Any]:
        """A channel made on a loop that ended: subscribed anew, it also reads what was sent
        while no loop listened (the mailbox), now and every BLOCK_SECONDS while it waits, for
        a sender that found nobody listening just before the subscription was made."""
        await state.ensure_process_subscription(token)
        q = state.queue(channel)
        shard = state.shards[state.shard_for(channel)]
        key = self._key("c", channel)
        while True:
            if not q.messages:
                raws = await shard.command("LPOP", key, q.capacity)
                now = time.time()
                for raw in raws or ():
                    _target, expires, message = self._serializer.loads(raw)
                    if expires <= now:
                        self.drops.note("expired", channel)
                    elif not q.put(expires, message, now):
                        self.drops.note("full", channel)
            try:
                return await asyncio.wait_for(q.get(time.time, self.expiry), BLOCK_SECONDS)
            except TimeoutError:
                continue

    async def _collect_mailboxes(self, state: _LoopState, channels: list[str]) -> None:
        """Move what waits in these local channels' mailboxes into their queues. Around a
        Redis restart such messages may arrive after newer ones that came over pub/sub."""
        mailboxes = [
            state.shards[state.shard_for(name)].command(
                "LPOP", self._key("c", name), self.get_capacity(name)
            )
            for name in channels
        ]
        results = await asyncio.gather(*mailboxes, return_exceptions=True)
        now = time.time()
        for name, raws in zip(channels, results, strict=True):
            if isinstance(raws, BaseException):
                # Still in Redis (or gone with it): collected on the next re-subscribe.
                logger.warning("Could not read the mailbox of %s: %r", name, raws)
                continue
            for raw in raws or ():
                _target, expires, message = self._serializer.loads(raw)
                if expires <= now:
                    self.drops.note("expired", name)
                else:
                    state.local.fan_out([name], expires, message, direct=True)

    async def _fetch(self, state: _LoopState, fetch: Any, on_orphan: Any) -> Any:
        """Run a blocking Redis read in its own task and wait for it.

        The read is never cancelled mid-flight (a cancelled BLPOP can lose the message it
        just popped, and redis-py may swallow the cancellation of a blocking read). If the
        caller is cancelled, the read stops after its current short wait and whatever it
        fetched is handed to ``on_orphan`` (pushed back / left pending), not dropped.
        """
        stop = [False]
        task = state.loop.create_task(fetch(stop))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            stop[0] = True

            def orphan(done: asyncio.Task) -> None:
                if done.cancelled() or done.exception() is not None:
                    return
                if done.result() is not None:
                    on_orphan(done.result())

            task.add_done_callback(orphan)
            raise

    async def _receive_list(self, state: _LoopState, channel: str) -> dict[str, Any]:
        index = state.shard_for(channel)
        shard = state.shards[index]
        key = self._key("c", channel)

        async def fetch(stop: list[bool]) -> bytes | None:
            delays = None
            while not stop[0]:
                try:
                    # Short server-side waits stay below the socket timeout, so a quiet
                    # channel never looks like a dead connection.
                    reply = await shard.blocking.blpop([key], timeout=BLOCK_SECONDS)
                except _DISCONNECTS as exc:
                    delays = delays or backoff_delays()
                    delay = next(delays)
                    logger.warning(
                        "BLPOP on %s failed (%s); retrying in %.2fs", channel, exc, delay
                    )
                    await asyncio.sleep(delay)
                    continue
                delays = None
                if reply is not None:
                    return cast(bytes, reply[1])  # the layer's clients never decode replies
            return None

        def push_back(raw: bytes) -> None:
            # Nobody waits for it any more: back to the head of the list for the next reader.
            state.spawn(shard.command("LPUSH", key, raw))

        while True:
            raw = await self._fetch(state, fetch, push_back)
            _target, expires, message = self._serializer.loads(raw)
            if expires >= time.time():
                return message
            self.drops.note("expired", channel)

    async def _ensure_stream(self, state: _LoopState, index: int, key: str) -> None:
        if key not in state.streams_ready:
            await streams.ensure_group(state.shards[index].client, key)
            state.streams_ready.add(key)

    async def _receive_stream(self, state: _LoopState, channel: str) -> dict[str, Any]:
        index = state.shard_for(channel)
        shard = state.shards[index]
        key = self._key("s", channel)
        previous = state.last_durable.pop(channel, None)
        if previous is not None and previous in state.unacked:
            await self.ack(channel, state.unacked[previous][2])
        idle_ms = max(1, int(self.redelivery_timeout * 1000))
        block_ms = max(1, min(idle_ms, BLOCK_SECONDS * 1000))

        async def fetch(stop: list[bool]) -> tuple[bytes, bytes] | None:
            while not stop[0]:
                try:
                    await self._ensure_stream(state, index, key)
                    got = await streams.claim_one(shard.client, key, state.pid, idle_ms)
                    if got is None:
                        got = await streams.read_one(shard.blocking, key, state.pid, block_ms)
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                        raise
                    # The stream expired or was flushed while we waited: recreate it.
                    state.streams_ready.discard(key)
                    continue
                if got is not None:
                    return got
            return None

        while True:
            # An orphaned entry stays pending: XAUTOCLAIM hands it out again later.
            entry_id, data = await self._fetch(state, fetch, lambda got: None)
            _target, expires, message = self._serializer.loads(data)
            if expires < time.time():
                self.drops.note("expired", channel)
                await streams.ack(shard.client, key, entry_id)
                continue
            state.unacked[id(message)] = (channel, entry_id, message)
            state.last_durable[channel] = id(message)
            return message

    async def ack(self, channel: str, message: dict[str, Any]) -> None:
        """Acknowledge a message received from an at-least-once channel (no-op otherwise)."""
        state = self._state()
        entry = state.unacked.pop(id(message), None)
        if entry is None:
            return
        if state.last_durable.get(channel) == id(message):
            del state.last_durable[channel]
        shard = state.shards[state.shard_for(channel)]
        await streams.ack(shard.client, self._key("s", channel), entry[1])

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        state.groups.add(group, channel)
        pubsub = self._key("g", group)
        state.routes[pubsub.encode()] = group
        # Subscribes on the group's first local member; later calls return at once (or wait
        # for a subscribe still in flight, so a group_send right after never goes unseen).
        sub = await state.subscriber(pubsub, group_routing_key(group))
        await sub.subscribe(pubsub)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        if state.groups.discard(group, channel):
            await self._unsubscribe_group(state, group)

    async def release_channel(self, channel: str) -> None:
        """Forget ``channel`` in this process: out of every group it joined here (groups left
        without local members are unsubscribed) and its waiting messages dropped."""
        state = self._state()
        emptied = state.groups.release(channel)
        state.local.release(channel)
        for group in emptied:
            # Routes go first, synchronously: even if this is cancelled half-way, no message
            # reaches the released channel, and a group left subscribed unsubscribes itself
            # on its next message (see on_message).
            await self._unsubscribe_group(state, group, only_if_empty=True)

    async def _unsubscribe_group(
        self, state: _LoopState, group: str, only_if_empty: bool = False
    ) -> None:
        if only_if_empty and not state.groups.is_empty(group):
            return  # someone joined meanwhile
        pubsub = self._key("g", group)
        state.routes.pop(pubsub.encode(), None)
        sub = await state.subscriber(pubsub, group_routing_key(group))
        await sub.unsubscribe(pubsub)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.require_valid_group_name(group)
        self.require_valid_message(message)
        state = self._state()
        # Checked here, whoever receives it: Redis would accept a message no process can use
        # (or one so large it cuts every subscriber's connection) and say nothing.
        data = self._serializer.pack(self.codec, None, time.time() + self.expiry, message)
        self._check_pubsub_size(data)
        routing_key = group_routing_key(group)
        pubsub = self._key("g", group)
        name = pubsub.encode()
        echo = state.expect_echo(name, data, routing_key)
        # Wait for Redis to accept the PUBLISH: returning earlier lost messages whenever the
        # caller's loop ended right after (async_to_sync from views, tasks, commands).
        try:
            await state.publish(routing_key, pubsub, data)
        except BaseException:
            if echo is not None:
                state.forget_echo(name, echo)
            raise
        self.stats.group_sends += 1
        if echo is not None and not echo.done():
            # This process has members: their copy comes back on the subscriber connection,
            # usually before the reply above but not always. Waiting for it keeps a send
            # made after group_send returns behind the group message, as in one mailbox.
            await state.await_echo(name, echo)

    def queued_messages(self) -> int:
        # Copies before iterating: a scrape may run in another thread.
        return sum(
            len(q) for state in list(self._states.values()) for q in list(state.queues.values())
        )

    async def flush(self) -> None:
        """Delete this prefix's keys on every shard and empty this process's queues/groups."""
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
