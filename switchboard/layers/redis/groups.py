"""Groups on Redis: one pub/sub channel per group, subscribed by every process with local
members, which hands each message to all of them (see core.py's module docstring)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from switchboard.layers.redis.loops import LoopStates
from switchboard.layers.redis.sharding import group_routing_key

if TYPE_CHECKING:
    from switchboard.layers.redis.loops import LoopState

__all__ = ["RedisGroups"]


class RedisGroups(LoopStates):
    """Group membership and group_send: the group half of
    :class:`~switchboard.layers.redis.core.RedisChannelLayer`."""

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
        self, state: LoopState, group: str, only_if_empty: bool = False
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
