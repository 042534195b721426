"""A message as a Channels 1 consumer receives it.

A consumer is any callable taking a :class:`Message`; what it sends is held until it returns
(:mod:`~switchboard.classic.held`, re-exported here).
"""

from __future__ import annotations

from collections.abc import KeysView
from typing import Any

from switchboard.classic.channel import Channel
from switchboard.classic.held import HeldSend, HeldSends, held_sends, holding
from switchboard.layers.base import BaseChannelLayer

__all__ = ["HeldSend", "HeldSends", "Message", "held_sends", "holding"]


class Message:
    """One message from a channel: ``content`` (the dict), ``channel`` (where it came from),
    ``reply_channel`` (a :class:`~switchboard.classic.channel.Channel`, or None) and
    ``channel_layer``. Reads like its content: ``message["text"]``, ``message.get("path")``.
    Decorators add ``channel_session``, ``http_session`` and ``user``."""

    def __init__(
        self, content: dict[str, Any], channel_name: str, channel_layer: BaseChannelLayer
    ) -> None:
        self.content = content
        self.channel_layer = channel_layer
        self.channel = Channel(channel_name, channel_layer=channel_layer)
        reply = content.get("reply_channel")
        self.reply_channel: Channel | None = (
            Channel(reply, channel_layer=channel_layer) if reply else None
        )

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def __contains__(self, key: object) -> bool:
        return key in self.content

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    def keys(self) -> KeysView[str]:
        return self.content.keys()

    def items(self) -> Any:
        return self.content.items()

    def values(self) -> Any:
        return self.content.values()

    def copy(self) -> Message:
        """A message with a copy of this one's content, on the same channel."""
        return Message(dict(self.content), self.channel.name, self.channel_layer)

    def __repr__(self) -> str:
        return f"<Message on {self.channel.name!r}: {sorted(self.content)}>"
