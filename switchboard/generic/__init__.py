"""Generic consumers for WebSocket and HTTP connections.

``BaseConsumer`` here is Channels 1's ``channels.generic.BaseConsumer``
(:mod:`switchboard.generic.base`), loaded on first use.
"""

from typing import Any

__all__ = ["BaseConsumer"]


def __getattr__(name: str) -> Any:
    if name == "BaseConsumer":
        from switchboard.generic.base import BaseConsumer

        return BaseConsumer
    raise AttributeError(f"module 'switchboard.generic' has no attribute {name!r}")
