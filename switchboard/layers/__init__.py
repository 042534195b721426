"""Channel layers: named channels (FIFO, one reader) and groups (broadcast)."""

from switchboard.exceptions import ChannelFull, InvalidChannelLayerError
from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.codec import ChannelMessageTooLarge, UnserializableMessage
from switchboard.layers.registry import ChannelLayerManager, channel_layers, get_channel_layer

__all__ = [
    "BaseChannelLayer",
    "ChannelFull",
    "ChannelMessageTooLarge",
    "ChannelLayerManager",
    "InMemoryChannelLayer",
    "InvalidChannelLayerError",
    "UnserializableMessage",
    "channel_layers",
    "get_channel_layer",
]


def __getattr__(name: str):
    # Channels exposes InMemoryChannelLayer here; import it lazily to keep this module light.
    if name == "InMemoryChannelLayer":
        from switchboard.layers.inmemory import InMemoryChannelLayer

        return InMemoryChannelLayer
    raise AttributeError(name)
