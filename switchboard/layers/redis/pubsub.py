"""The per-process subscriber: one pub/sub connection per shard, re-subscribed after loss;
and the size limit on what the layer publishes.

Subscriptions live here as plain state (the set of wanted channels), so after a
Redis restart or a dropped connection the reader reconnects with jittered
exponential backoff and subscribes to every one of them again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchboard.layers.codec import ChannelMessageTooLarge
from switchboard.layers.redis.connection import Shard, backoff_delays
from switchboard.layers.stats import LayerStats

if TYPE_CHECKING:
    from redis.asyncio.connection import Connection

logger = logging.getLogger("switchboard.layers.redis")

# How long subscribe() waits for the server's confirmation before giving up on waiting
# (the subscription stays wanted and is made on the next reconnect).
CONFIRM_TIMEOUT = 5.0

_DISCONNECTS = (RedisConnectionError, RedisTimeoutError, OSError, EOFError)

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


class Subscriber:
    """Reads one shard's pub/sub connection and hands each message to ``on_message``.

    ``sharded``: use SSUBSCRIBE/SUNSUBSCRIBE (Redis Cluster sharded pub/sub).
    """

    def __init__(
        self,
        shard: Shard,
        on_message: Callable[[bytes, bytes], None],
        sharded: bool = False,
        node: tuple[str, int] | None = None,
        stats: LayerStats | None = None,
        on_subscribed: Callable[[bytes], None] | None = None,
    ) -> None:
        self.shard = shard
        # Told of each confirmed (re-)subscription: what was published before it reached nobody.
        self.on_subscribed = on_subscribed
        self.stats = stats  # the layer's: reconnects counted there too
        self.node = node
        self.on_message = on_message
        self.wanted: set[bytes] = set()
        self._sub, self._unsub = (
            ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        )
        self._sharded = sharded
        self._where = f"{node[0]}:{node[1]}" if node else repr(shard)
        self._confirm_kind = b"ssubscribe" if sharded else b"subscribe"
        self._message_kind = b"smessage" if sharded else b"message"
        self._conn: Connection | None = None
        self._task: asyncio.Task | None = None
        self._confirmations: dict[bytes, list[asyncio.Future]] = {}
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._closed = False

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait for the server's confirmation, so a publish that follows is
        seen. If Redis is unreachable it returns after logging: the channel stays wanted
        and is subscribed as soon as the reader reconnects."""
        name = channel.encode()
        if name in self.wanted:
            pending = self._confirmations.get(name)
            if pending:
                # Someone else's subscribe is in flight: the caller may rely on it too.
                await asyncio.wait(
                    [asyncio.ensure_future(asyncio.shield(pending[0]))], timeout=CONFIRM_TIMEOUT
                )
            return
        self.wanted.add(name)
        self.start()
        fut = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(name, []).append(fut)
        try:
            if self.connected.is_set() and self._conn is not None:
                # Otherwise the reader subscribes everything wanted once it (re)connects.
                await self._conn.send_command(self._sub, name)
            await asyncio.wait_for(asyncio.shield(fut), CONFIRM_TIMEOUT)
        except (TimeoutError, RedisError, OSError, AttributeError) as exc:
            # AttributeError: redis-py's connection was torn down under us by the reader.
            logger.warning(
                "Redis %s unreachable (%r); %s will be subscribed on reconnect",
                self._where,
                exc,
                channel,
            )
        finally:
            waiters = self._confirmations.get(name)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._confirmations[name]
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: no "never retrieved" noise

    async def unsubscribe(self, channel: str) -> None:
        name = channel.encode()
        if name not in self.wanted:
            return
        self.wanted.discard(name)
        if self._conn is not None and self.connected.is_set():
            try:
                await self._conn.send_command(self._unsub, name)
            except (*_DISCONNECTS, AttributeError):
                pass  # a reconnect only re-subscribes what is still wanted

    async def _run(self) -> None:
        delays = backoff_delays()
        first = True
        while not self._closed:
            try:
                self._conn = await self.shard.pubsub_connection(self.node)
                if self.wanted:
                    if self._sharded:
                        # Shard channels in one SSUBSCRIBE must share a slot: one each.
                        for name in sorted(self.wanted):
                            await self._conn.send_command(self._sub, name)
                    else:
                        await self._conn.send_command(self._sub, *sorted(self.wanted))
                self.connected.set()
                if not first:
                    self.reconnects += 1
                    if self.stats is not None:
                        self.stats.reconnects += 1
                    logger.warning(
                        "Reconnected to Redis %s; re-subscribed %d channel(s)/group(s)",
                        self._where,
                        len(self.wanted),
                    )
                first = False
                delays = backoff_delays()
                await self._read()
            except asyncio.CancelledError:
                raise
            except (*_DISCONNECTS, RedisError) as exc:
                self.connected.clear()
                for waiters in self._confirmations.values():
                    for fut in waiters:
                        if not fut.done():
                            fut.set_exception(RedisConnectionError(str(exc)))
                delay = next(delays)
                logger.warning(
                    "Lost Redis pub/sub connection to %s (%s); reconnecting in %.2fs",
                    self._where,
                    exc,
                    delay,
                )
                await self._drop_connection()
                await asyncio.sleep(delay)

    async def _read(self) -> None:
        conn = self._conn
        assert conn is not None  # _run connected it before reading
        on_message = self.on_message
        message_kind = self._message_kind
        while True:
            # math.inf: block without socket_timeout (a quiet channel is not a dead one).
            reply = await conn.read_response(disable_decoding=True, timeout=math.inf)
            kind = reply[0]
            if kind == message_kind:
                try:
                    on_message(reply[1], reply[2])
                except Exception:  # noqa: BLE001 - one bad message must not stop the reader
                    logger.exception("Dropped an undeliverable message on %r", reply[1])
            elif kind == self._confirm_kind:
                for fut in self._confirmations.get(reply[1], ()):
                    if not fut.done():
                        fut.set_result(None)
                if self.on_subscribed is not None:
                    self.on_subscribed(reply[1])

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.disconnect()
            except Exception:  # noqa: BLE001 - already broken
                pass

    async def close(self) -> None:
        self._closed = True
        self.connected.clear()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None
        await self._drop_connection()
