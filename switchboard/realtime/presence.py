"""Presence: who is in a topic, with per-connection metadata, across processes and machines.

Each connection is tracked under a *key* (the user: several tabs or devices of one user share
it) with a *meta* dict (device, status, ...). Listing a topic gives
``{key: {"metas": [meta, ...]}}`` with one meta per connection, each carrying its ``ref``;
changes are broadcast as diffs of the same shape (``joins`` and ``leaves``), which clients
apply by ``ref``. Storage and liveness are the layer's (``layer.presence_store()``: in-memory,
Redis; see :mod:`switchboard.layers.stores.presence` for the contract).

From any async code::

    from switchboard.realtime.presence import presence_store
    await presence_store().track("room.lobby", ref, "alice", {"device": "phone"})

In a consumer, :class:`PresenceMixin` tracks the connection in ``presence_topics`` once it is
accepted and untracks it however the consumer ends, and lets the browser watch a topic's
presence (protocol: :mod:`switchboard.realtime`).
"""

from __future__ import annotations

import secrets
from typing import Any

from switchboard.layers import get_channel_layer
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER
from switchboard.layers.stores.presence import (
    DIFF_TYPE,
    PresenceEntry,
    PresenceStore,
    group_by_key,
    presence_group,
)
from switchboard.realtime.frames import FrameMixin, layer_store

__all__ = [
    "DIFF_TYPE",
    "PresenceEntry",
    "PresenceMixin",
    "PresenceStore",
    "group_by_key",
    "list_presence",
    "presence_group",
    "presence_store",
]


def presence_store(layer: Any = None, alias: str = DEFAULT_CHANNEL_LAYER) -> PresenceStore:
    """The presence of ``layer`` (default: the configured layer ``alias``)."""
    return layer_store(layer if layer is not None else get_channel_layer(alias), "presence")


async def list_presence(topic: str, layer: Any = None) -> dict[str, dict[str, list[dict]]]:
    """``{key: {"metas": [...]}}`` for everyone in ``topic`` now."""
    return group_by_key(await presence_store(layer).list(topic))


class PresenceMixin(FrameMixin):
    """Track this connection in ``presence_topics`` while it is open.

    Set ``presence_topics`` (a list of topic names) in ``connect`` before accepting, or call
    :meth:`presence_track` yourself. The key is :meth:`get_presence_key` (the user name, else
    this connection's ``presence_ref``), the meta :meth:`get_presence_meta`. Clients may watch
    the topics ``topic_allowed(topic, "presence")`` admits.
    """

    presence_topics: list[str] | None = None
    _presence_ref: str | None = None
    _presence_tracked: dict[str, str] | None = None  # topic -> key
    _presence_watching: set[str] | None = None
    _sb_accepted = False  # set at the first accept()

    @property
    def presence_ref(self) -> str:
        """This connection's opaque id in presence entries."""
        if self._presence_ref is None:
            self._presence_ref = secrets.token_hex(8)
        return self._presence_ref

    def _presence(self) -> PresenceStore:
        return layer_store(self.channel_layer, "presence")  # type: ignore[attr-defined]

    async def get_presence_key(self) -> str:
        user = getattr(self, "scope", {}).get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            return user.get_username()
        return self.presence_ref

    async def get_presence_meta(self) -> dict[str, Any]:
        return {}

    # -- lifecycle ------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            # However the consumer ended (disconnect, error, cancelled): nobody stays listed.
            await self.presence_untrack_all()

    async def accept(self, *args: Any, **kwargs: Any) -> None:
        # Tracked before the client hears it is accepted: once connected, it is listed.
        if not self._sb_accepted:
            self._sb_accepted = True
            for topic in self.presence_topics or ():
                await self.presence_track(topic)
        await super().accept(*args, **kwargs)  # type: ignore[misc]

    # -- tracking -------------------------------------------------------------

    async def presence_track(
        self, topic: str, key: str | None = None, meta: dict[str, Any] | None = None
    ) -> None:
        """Track (or update the meta of) this connection in ``topic``."""
        key = key if key is not None else await self.get_presence_key()
        meta = meta if meta is not None else await self.get_presence_meta()
        if self._presence_tracked is None:
            self._presence_tracked = {}
        self._presence_tracked[topic] = key
        await self._presence().track(topic, self.presence_ref, key, meta)

    async def presence_untrack(self, topic: str) -> None:
        if self._presence_tracked and self._presence_tracked.pop(topic, None) is not None:
            await self._presence().untrack(topic, self.presence_ref)

    async def presence_untrack_all(self) -> None:
        tracked = self._presence_tracked
        while tracked:
            topic, _ = tracked.popitem()
            await self._presence().untrack(topic, self.presence_ref)

    async def presence_list(self, topic: str) -> dict[str, dict[str, list[dict]]]:
        return group_by_key(await self._presence().list(topic))

    # -- the browser's side ---------------------------------------------------

    async def sb_frame_presence(self, content: dict[str, Any]) -> None:
        """Watch a topic: its state now, then every diff."""
        topic = await self.sb_topic(content, "presence")
        if topic is None:
            return
        group = presence_group(topic)
        # Joined before listing: a change made meanwhile arrives as a diff too (idempotent).
        await self.channel_layer.group_add(group, self.channel_name)  # type: ignore[attr-defined]
        self._track_group(group)  # type: ignore[attr-defined]
        if self._presence_watching is None:
            self._presence_watching = set()
        self._presence_watching.add(topic)
        state = await self.presence_list(topic)
        await self.send_json({"sb": "presence_state", "topic": topic, "state": state})  # type: ignore[attr-defined]

    async def sb_frame_presence_off(self, content: dict[str, Any]) -> None:
        topic = content.get("topic")
        if isinstance(topic, str) and self._presence_watching and topic in self._presence_watching:
            self._presence_watching.discard(topic)
            group = presence_group(topic)
            await self.channel_layer.group_discard(group, self.channel_name)  # type: ignore[attr-defined]
            self._untrack_group(group)  # type: ignore[attr-defined]

    async def sb_presence_diff(self, event: dict[str, Any]) -> None:
        topic = event["topic"]
        if self._presence_watching and topic in self._presence_watching:
            frame = {"sb": "presence_diff", "topic": topic}
            frame["joins"], frame["leaves"] = event["joins"], event["leaves"]
            await self.send_json(frame)  # type: ignore[attr-defined]
