"""Reliable groups: publications with offsets, kept in a bounded history, recovered after a
reconnect.

Publish with :func:`publish` (from a consumer, a view through ``async_to_sync``, a task): the
publication is appended to the topic's history (count ``size``, age ``ttl``), then sent to the
group named after the topic as ``{"type": "sb.publication", "topic", "epoch", "offset",
"data"}``. Consumers using :class:`ReliableMixin` turn those into ``pub`` frames for the
browser (protocol: :mod:`switchboard.realtime`) and guarantee each client sees every offset
once, in order, or an explicit ``resync``:

* publications arriving out of order (two processes publishing at once) or with a gap (a
  pub/sub message lost while Redis restarted) are completed from the history;
* a client reconnecting with its last ``epoch`` and ``offset`` receives what it missed, or
  ``recovered: false`` when the history no longer covers the gap.

A plain ``group_send`` to the same group still works but is neither stored nor recoverable.
"""

from __future__ import annotations

from typing import Any

from switchboard.layers import get_channel_layer
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER
from switchboard.layers.stores.history import (
    DEFAULT_HISTORY_SIZE,
    DEFAULT_HISTORY_TTL,
    HistoryRead,
    HistoryStore,
    Position,
)
from switchboard.realtime.frames import FrameMixin, layer_store

__all__ = [
    "PUBLICATION_TYPE",
    "HistoryRead",
    "HistoryStore",
    "Position",
    "ReliableMixin",
    "history_store",
    "publish",
]

PUBLICATION_TYPE = "sb.publication"


def history_store(layer: Any = None, alias: str = DEFAULT_CHANNEL_LAYER) -> HistoryStore:
    """The history of ``layer`` (default: the configured layer ``alias``)."""
    return layer_store(layer if layer is not None else get_channel_layer(alias), "history")


async def publish(
    topic: str,
    data: dict[str, Any],
    *,
    size: int = DEFAULT_HISTORY_SIZE,
    ttl: float = DEFAULT_HISTORY_TTL,
    layer: Any = None,
    alias: str = DEFAULT_CHANNEL_LAYER,
) -> Position:
    """Store ``data`` in ``topic``'s history (at most ``size`` publications, none older than
    ``ttl`` seconds) and send it to the topic's group; returns its epoch and offset.

    Raises when the history cannot store it (the layer's backend is unreachable): a publication
    is either recoverable or reported as failed, never silently lost.
    """
    layer = layer if layer is not None else get_channel_layer(alias)
    position = await layer_store(layer, "history").append(topic, data, size, ttl)
    await layer.group_send(
        topic,
        {
            "type": PUBLICATION_TYPE,
            "topic": topic,
            "epoch": position.epoch,
            "offset": position.offset,
            "data": data,
        },
    )
    return position


def _pub_frame(topic: str, epoch: str, offset: int, data: Any) -> dict[str, Any]:
    return {"sb": "pub", "topic": topic, "epoch": epoch, "offset": offset, "data": data}


class ReliableMixin(FrameMixin):
    """Client subscriptions to reliable groups, with recovery (see :mod:`switchboard.realtime`).

    Mix into an :class:`~switchboard.generic.websocket.AsyncJsonWebsocketConsumer`; allow
    topics with ``allowed_topics`` or ``topic_allowed``.
    """

    # Most publications replayed for one recovery (larger gaps answer "resync").
    max_recovery: int = 1000
    # Most publications a client may ask for on a fresh subscribe (history on join).
    max_history: int = 1000

    _subscriptions: dict[str, list[Any]] | None = None  # topic -> [epoch, offset]

    def _reliable_store(self) -> HistoryStore:
        return layer_store(self.channel_layer, "history")  # type: ignore[attr-defined]

    async def sb_frame_sub(self, content: dict[str, Any]) -> None:
        topic = await self.sb_topic(content, "subscribe")
        if topic is None:
            return
        epoch, offset = content.get("epoch"), content.get("offset")
        history = content.get("history", 0)
        history = max(0, min(history, self.max_history)) if isinstance(history, int) else 0
        # Joined before reading: whatever is published after the read arrives live, and
        # whatever the read already covered is dropped as a duplicate.
        await self.channel_layer.group_add(topic, self.channel_name)  # type: ignore[attr-defined]
        self._track_group(topic)  # type: ignore[attr-defined]
        store = self._reliable_store()
        recovered: bool | None = None
        read: HistoryRead | None = None
        if isinstance(epoch, str) and isinstance(offset, int) and not isinstance(offset, bool):
            read = await store.recover(topic, epoch, offset, self.max_recovery)
            recovered = read.complete
            start = offset
        if read is None or not read.complete:
            read = await store.latest(topic, history)
            start = read.publications[0][0] - 1 if read.publications else read.offset
        if self._subscriptions is None:
            self._subscriptions = {}
        self._subscriptions[topic] = [read.epoch, read.offset]
        frame = {"sb": "subscribed", "topic": topic, "epoch": read.epoch, "offset": start}
        if recovered is not None:
            frame["recovered"] = recovered
        await self.send_json(frame)  # type: ignore[attr-defined]
        for pub_offset, data in read.publications:
            await self.send_json(_pub_frame(topic, read.epoch, pub_offset, data))  # type: ignore[attr-defined]

    async def sb_frame_unsub(self, content: dict[str, Any]) -> None:
        topic = content.get("topic")
        subscriptions = self._subscriptions or {}
        if not isinstance(topic, str) or topic not in subscriptions:
            await self.sb_error("not subscribed", topic if isinstance(topic, str) else None)
            return
        del subscriptions[topic]
        await self.channel_layer.group_discard(topic, self.channel_name)  # type: ignore[attr-defined]
        self._untrack_group(topic)  # type: ignore[attr-defined]
        await self.send_json({"sb": "unsubscribed", "topic": topic})  # type: ignore[attr-defined]

    async def sb_publication(self, event: dict[str, Any]) -> None:
        """A publication from the group: forwarded once, in offset order, gaps filled."""
        topic = event["topic"]
        sub = (self._subscriptions or {}).get(topic)
        if sub is None:
            return  # unsubscribed meanwhile
        epoch, offset = event["epoch"], event["offset"]
        if epoch != sub[0]:
            # The history started again under a new epoch (its backend lost the old one, as
            # Redis does restarting without persistence): what the old epoch held after our
            # position is gone, so say so; what the new one holds is replayed below, since
            # this process may have missed its first publications while it re-subscribed.
            await self._resync(topic, sub, epoch, 0)
        if offset <= sub[1]:
            return  # already sent (replayed by a recovery or a gap fill)
        if offset > sub[1] + 1:
            read = await self._reliable_store().recover(topic, epoch, sub[1], self.max_recovery)
            if read.complete:
                for pub_offset, data in read.publications:
                    if pub_offset > sub[1]:
                        await self.send_json(_pub_frame(topic, epoch, pub_offset, data))  # type: ignore[attr-defined]
                        sub[1] = pub_offset
                return
            await self._resync(topic, sub, epoch, offset - 1)
        sub[1] = offset
        await self.send_json(_pub_frame(topic, epoch, offset, event["data"]))  # type: ignore[attr-defined]

    async def _resync(self, topic: str, sub: list[Any], epoch: str, offset: int) -> None:
        sub[0], sub[1] = epoch, offset
        frame = {"sb": "resync", "topic": topic, "epoch": epoch, "offset": offset}
        await self.send_json(frame)  # type: ignore[attr-defined]
