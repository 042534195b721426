"""Control frames of the browser protocol (``{"sb": kind, ...}``) apart from application JSON.

The base of :class:`~switchboard.realtime.presence.PresenceMixin` and
:class:`~switchboard.realtime.history.ReliableMixin`; the protocol itself is described in
:mod:`switchboard.realtime`.
"""

from __future__ import annotations

from typing import Any

from switchboard.exceptions import InvalidChannelLayerError

__all__ = ["FrameMixin", "layer_store"]


def layer_store(layer: Any, kind: str) -> Any:
    """``layer.presence_store()`` / ``layer.history_store()``, or a clear error."""
    if kind not in getattr(layer, "extensions", ()):
        raise InvalidChannelLayerError(
            f"{type(layer).__name__} has no {kind} support: use a layer whose extensions "
            f"include {kind!r} (in-memory, IPC or Redis)"
        )
    return getattr(layer, f"{kind}_store")()


class FrameMixin:
    """For :class:`~switchboard.generic.websocket.AsyncJsonWebsocketConsumer` subclasses:
    a text frame holding a JSON object with a string ``"sb"`` goes to ``sb_frame_<kind>``;
    anything else to ``receive_json`` as usual (so overriding ``receive_json`` is safe)."""

    # Which topics a client may subscribe to (history) or watch (presence); see topic_allowed.
    allowed_topics: set[str] | None = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kw):
        if text_data is None:
            return await super().receive(text_data, bytes_data, **kw)  # type: ignore[misc]
        content = await self.decode_json(text_data)  # type: ignore[attr-defined]
        kind = content.get("sb") if isinstance(content, dict) else None
        if not isinstance(kind, str):
            return await self.receive_json(content, **kw)  # type: ignore[attr-defined]
        handler = getattr(self, "sb_frame_" + kind, None) if kind.isidentifier() else None
        if handler is None:
            await self.sb_error(f"unknown frame {kind!r}")
            return None
        return await handler(content)

    async def sb_error(self, error: str, topic: str | None = None) -> None:
        frame: dict[str, Any] = {"sb": "error", "error": error}
        if topic is not None:
            frame["topic"] = topic
        await self.send_json(frame)  # type: ignore[attr-defined]

    async def topic_allowed(self, topic: str, action: str) -> bool:
        """May this client ``action`` (``"subscribe"`` or ``"presence"``) ``topic``?

        Default: only topics in ``allowed_topics`` (set it in ``connect``). Override for
        rules of your own (the user in ``self.scope``, say).
        """
        return topic in (self.allowed_topics or ())

    async def sb_topic(self, content: dict[str, Any], action: str) -> str | None:
        """The frame's topic if it is a string this client may use; else an error is sent."""
        topic = content.get("topic")
        if not isinstance(topic, str) or not await self.topic_allowed(topic, action):
            await self.sb_error(f"{action} refused", topic if isinstance(topic, str) else None)
            return None
        return topic
