"""Channels on Redis: send and receive for process channels (pub/sub, with a mailbox list
for a receiver between loops or re-subscribing), worker channels (lists, one reader per
message) and at-least-once worker channels (Streams, see streams.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchboard.exceptions import ChannelFull
from switchboard.layers.naming import process_token
from switchboard.layers.redis import streams
from switchboard.layers.redis.connection import backoff_delays
from switchboard.layers.redis.loops import MAILBOX_NOTICE, LoopStates

if TYPE_CHECKING:
    from switchboard.layers.redis.loops import LoopState

__all__ = ["RedisChannels"]

logger = logging.getLogger("switchboard.layers.redis")

_DISCONNECTS = (RedisConnectionError, RedisTimeoutError, OSError)

# Longest single BLPOP / XREADGROUP BLOCK wait, in seconds.
BLOCK_SECONDS = 1


class RedisChannels(LoopStates):
    """Send, receive and acknowledge: the channel half of
    :class:`~switchboard.layers.redis.core.RedisChannelLayer`."""

    # Set by RedisChannelLayer.__init__ (core.py).
    at_least_once: list[re.Pattern[str]]
    redelivery_timeout: float

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

    async def _receive_local(self, state: LoopState, channel: str) -> dict[str, Any]:
        await state.ensure_process_subscription()
        return await state.queue(channel).get(time.time, self.expiry)

    async def _receive_adopted(self, state: LoopState, channel: str, token: str) -> dict[str, Any]:
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

    async def _collect_mailboxes(self, state: LoopState, channels: list[str]) -> None:
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

    async def _fetch(self, state: LoopState, fetch: Any, on_orphan: Any) -> Any:
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

    async def _receive_list(self, state: LoopState, channel: str) -> dict[str, Any]:
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

    async def _ensure_stream(self, state: LoopState, index: int, key: str) -> None:
        if key not in state.streams_ready:
            await streams.ensure_group(state.shards[index].client, key)
            state.streams_ready.add(key)

    async def _receive_stream(self, state: LoopState, channel: str) -> dict[str, Any]:
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

    def _durable(self, channel: str) -> bool:
        return any(p.match(channel) for p in self.at_least_once)
