"""Per event loop: the Redis layer's connections, subscribers, local queues and groups.

redis.asyncio connections belong to one event loop, and sync code reaches the layer through
``async_to_sync`` on a loop of its own each time, so the layer keeps one :class:`LoopState` per
loop (:class:`LoopStates`). When a loop ends, its state closes its connections and hands its
channels over: the next loop that receives one of them adopts it, with what was sent meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.fanout import LocalDelivery, sweep_interval
from switchboard.layers.local import LocalQueue
from switchboard.layers.naming import new_token, process_token
from switchboard.layers.redis import streams
from switchboard.layers.redis.connection import Shard
from switchboard.layers.redis.pubsub import PubSubMessageTooLarge, Subscriber
from switchboard.layers.redis.scripts import Script
from switchboard.layers.redis.sharding import shard_index

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster

    from switchboard.layers.redis.core import RedisChannelLayer
    from switchboard.layers.redis.serializer import Serializer

__all__ = ["MAILBOX_NOTICE", "MEMBERSHIP_NOTICE", "LoopState", "LoopStates"]

logger = logging.getLogger("switchboard.layers.redis")

# Longest wait in group_send for this process's own copy of a group message to come back
# over pub/sub (it normally arrives before PUBLISH's reply; this bounds a lost connection).
ECHO_TIMEOUT = 1.0

# Published on a process channel after a message was left in a channel's mailbox because the
# PUBLISH reached nobody (the receiver was between a Redis restart and its re-subscribe): the
# receiver, if it listens by then, collects the mailbox. No serialized envelope starts so.
MAILBOX_NOTICE = b"\x00switchboard:mailbox\x00"

# Published on a process channel: a group_add or group_discard for one of that process's
# channels, made in another process, which the owner applies (see groups.py).
MEMBERSHIP_NOTICE = b"\x00switchboard:membership\x00"

# Worker-channel send: capacity checked, message stored, expiry renewed in one round trip.
LIST_SEND_SCRIPT = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class LoopState:
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
        # group_add/group_discard this loop asked another process to apply, by request id.
        self.delegations: dict[str, asyncio.Future[None]] = {}
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
        if group is None and data.startswith(MEMBERSHIP_NOTICE):
            self._membership_notice(data[len(MEMBERSHIP_NOTICE) :])
            return
        echoes = self.echoes.get(pubsub_channel)
        if echoes:
            self._echoed(pubsub_channel, echoes, data)
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

    def _membership_notice(self, body: bytes) -> None:
        notice = json.loads(body)
        if "done" in notice:  # the owner applied our group_add or group_discard
            fut = self.delegations.pop(notice["done"], None)
            if fut is not None and not fut.done():
                fut.set_result(None)
            return
        self.spawn(self.layer._apply_membership(self, notice))

    def _echoed(
        self, pubsub_channel: bytes, echoes: deque[tuple[bytes, asyncio.Future]], data: bytes
    ) -> None:
        # This process's own group_send coming back. Not necessarily the oldest one waiting:
        # PUBLISHes leave on several connections, so Redis may apply two of them in either
        # order; matching only the head made every later send wait out ECHO_TIMEOUT (1 s).
        for index, (expected, fut) in enumerate(echoes):
            if expected == data:
                del echoes[index]
                if not echoes:
                    del self.echoes[pubsub_channel]
                # Delivered below, in this same callback, before the group_send resumes.
                if not fut.done():
                    fut.set_result(None)
                return

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


class LoopStates(BaseChannelLayer):
    """What the parts of :class:`~switchboard.layers.redis.core.RedisChannelLayer` share: one
    :class:`LoopState` per event loop, the Redis key of a channel or group, and the pub/sub
    message size check."""

    # Set by RedisChannelLayer.__init__ (core.py).
    prefix: str
    pubsub_max_message_size: int
    _serializer: Serializer

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}
        # Sync code reaches the layer from many threads, each async_to_sync on its own loop.
        self._states_lock = threading.Lock()
        # Process tokens of loops that ended: their channels go to the first loop receiving.
        self._orphans: set[str] = set()

    def _state(self) -> LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            # redis.asyncio connections belong to one loop; each loop gets its own set.
            with self._states_lock:
                for old_loop, old in list(self._states.items()):
                    if old_loop.is_closed():  # closed without cancelling its tasks first
                        del self._states[old_loop]
                        self._orphans.update(old.tokens)
                # self is the RedisChannelLayer these parts make up (core.py).
                state = self._states[loop] = LoopState(cast("RedisChannelLayer", self), loop)
        return state

    async def _retire(self, state: LoopState) -> None:
        """``state``'s loop is shutting down: let other loops take its channels over."""
        with self._states_lock:
            if self._states.get(state.loop) is state:
                del self._states[state.loop]
        await state.close()
        with self._states_lock:
            self._orphans.update(state.tokens)

    def _adopt(self, state: LoopState, token: str) -> None:
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

    def shard(self, routing_key: str) -> Shard:
        """The running event loop's connection to the shard owning ``routing_key`` (what the
        presence and history stores write through)."""
        state = self._state()
        return state.shards[state.shard_for(routing_key)]

    def _key(self, kind: str, name: str) -> str:
        # The name is a Cluster hash tag: a channel's list and stream share one slot, and
        # the slot depends on the channel alone (never on the prefix).
        return f"{self.prefix}:{kind}:{{{name}}}"

    def _check_pubsub_size(self, data: bytes) -> None:
        if len(data) > self.pubsub_max_message_size:
            raise PubSubMessageTooLarge(len(data), self.pubsub_max_message_size)
