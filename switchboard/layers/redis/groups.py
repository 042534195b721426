"""Groups on Redis: one pub/sub channel per group, subscribed by every process with local
members, which hands each message to all of them (see core.py's module docstring).

A membership lives in the process that reads the channel: a ``group_add`` made elsewhere for
another process's channel (a Channels 1 worker adding an interface server's reply channel, a
script) is sent to that process, which applies it and says so; ``group_add`` returns then. So
the membership outlives the process that made it, and group messages go straight to the
channel's process. When that process does not answer in :data:`DELEGATE_TIMEOUT` (gone, or
between a Redis restart and its re-subscribe) the membership is kept here instead, as before:
this process forwards what the group receives.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from switchboard.layers.naming import new_token, process_token
from switchboard.layers.redis.channels import _DISCONNECTS
from switchboard.layers.redis.loops import MEMBERSHIP_NOTICE, LoopStates
from switchboard.layers.redis.sharding import group_routing_key

if TYPE_CHECKING:
    from switchboard.layers.redis.loops import LoopState

__all__ = ["DELEGATE_TIMEOUT", "RedisGroups"]

# How long a group_add for another process's channel waits for that process to apply it.
DELEGATE_TIMEOUT = 1.0


class RedisGroups(LoopStates):
    """Group membership and group_send: the group half of
    :class:`~switchboard.layers.redis.core.RedisChannelLayer`."""

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        if not state.is_local(channel) and process_token(channel) is not None:
            if await self._delegate(state, "add", group, channel):
                return
        await self._add_here(state, group, channel)

    async def _add_here(self, state: LoopState, group: str, channel: str) -> None:
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
        if not state.is_local(channel) and process_token(channel) is not None:
            await self._delegate(state, "discard", group, channel)
        # And here: a membership kept here when its owner did not answer.
        if state.groups.discard(group, channel):
            await self._unsubscribe_group(state, group)

    async def _delegate(self, state: LoopState, op: str, group: str, channel: str) -> bool:
        """Have the process owning ``channel`` apply ``op``; True once it has."""
        await state.ensure_process_subscription()  # where its answer comes
        request = new_token()
        done = state.loop.create_future()
        state.delegations[request] = done
        token = process_token(channel)
        assert token is not None
        notice = {"op": op, "group": group, "channel": channel}
        notice.update(reply=state.process_pubsub, request=request)
        try:
            heard = await state.publish(
                token, f"{self.prefix}:p:{token}", MEMBERSHIP_NOTICE + json.dumps(notice).encode()
            )
            if not heard:
                return False
            await asyncio.wait_for(done, DELEGATE_TIMEOUT)
            return True
        except (TimeoutError, *_DISCONNECTS):
            return False
        finally:
            state.delegations.pop(request, None)

    async def _apply_membership(self, state: LoopState, notice: dict[str, Any]) -> None:
        """Another process's group_add or group_discard for a channel of this one."""
        group, channel = notice["group"], notice["channel"]
        if notice["op"] == "add":
            await self._add_here(state, group, channel)
        elif state.groups.discard(group, channel):
            await self._unsubscribe_group(state, group)
        reply = notice["reply"]
        answer = MEMBERSHIP_NOTICE + json.dumps({"done": notice["request"]}).encode()
        token = reply.rsplit(":", 1)[-1]
        await state.publish(token, reply, answer)

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
