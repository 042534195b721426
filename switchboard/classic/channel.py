"""``Channel`` and ``Group``: named destinations for messages, as Channels 1 had them.

Their methods are synchronous, as Channels 1 consumers are: inside a consumer a send is held
until the consumer returns (:mod:`~switchboard.classic.held`); elsewhere (a view, a model's
``save``, a script) it goes out at once through the layer.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from switchboard.classic.held import HeldSend, holding
from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER

__all__ = ["Channel", "Group"]


def _layer(alias: str, channel_layer: BaseChannelLayer | None) -> BaseChannelLayer:
    if channel_layer is not None:
        return channel_layer
    from switchboard.layers import channel_layers

    return channel_layers[alias]


def _check_content(content: Any) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise TypeError(f"You can only send dicts as content, not {type(content).__name__}")
    return content


def _name_of(channel: Any) -> str:
    name = getattr(channel, "name", channel)
    if not isinstance(name, str):
        raise TypeError(f"A channel is a Channel or a channel name, not {type(channel).__name__}")
    return name


class _OnLayer:
    """A name on the layer ``alias`` (or the ``channel_layer`` given), built on first use."""

    def __init__(
        self,
        name: str,
        alias: str = DEFAULT_CHANNEL_LAYER,
        channel_layer: BaseChannelLayer | None = None,
    ) -> None:
        self.name = name
        self.alias = alias
        self._channel_layer = channel_layer

    @property
    def channel_layer(self) -> BaseChannelLayer:
        if self._channel_layer is None:
            self._channel_layer = _layer(self.alias, None)
        return self._channel_layer


class Channel(_OnLayer):
    """The channel ``name`` on the layer ``alias`` (or the ``channel_layer`` given)."""

    def send(self, content: dict[str, Any], immediately: bool = False) -> None:
        """Send ``content`` on this channel: when the consumer returns, or now."""
        content = _check_content(content)
        layer = self.channel_layer
        sends = holding()
        if sends is None or immediately:
            async_to_sync(layer.send)(self.name, content)
            if sends is not None:
                sends.sent_to.append((self.name, content))
        else:
            sends.held.append(HeldSend(layer, self.name, content))

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Channel({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Channel) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Group(_OnLayer):
    """The group ``name`` on the layer ``alias`` (or the ``channel_layer`` given)."""

    def add(self, channel: Channel | str) -> None:
        """Add ``channel`` (a :class:`Channel` or its name) to the group, now."""
        async_to_sync(self.channel_layer.group_add)(self.name, _name_of(channel))

    def discard(self, channel: Channel | str) -> None:
        """Take ``channel`` out of the group, now."""
        async_to_sync(self.channel_layer.group_discard)(self.name, _name_of(channel))

    def send(self, content: dict[str, Any], immediately: bool = False) -> None:
        """Send ``content`` to every channel in the group: when the consumer returns, or now."""
        content = _check_content(content)
        layer = self.channel_layer
        sends = holding()
        if sends is None or immediately:
            async_to_sync(layer.group_send)(self.name, content)
        else:
            sends.held.append(HeldSend(layer, self.name, content, group=True))

    def __repr__(self) -> str:
        return f"Group({self.name!r})"
