"""Redis channel layer: per-process group fan-out over pub/sub, sharded, reconnecting."""

from __future__ import annotations

import logging
from typing import Any

from switchboard.layers.redis.core import RedisChannelLayer

__all__ = ["RedisChannelLayer", "RedisPubSubChannelLayer"]

logger = logging.getLogger("switchboard.layers")


class RedisPubSubChannelLayer(RedisChannelLayer):
    """The name channels_redis gives its pub/sub layer, for settings moved over unchanged.

    Switchboard's one Redis layer already carries groups and consumer channels over pub/sub
    (worker channels over lists), so this is :class:`RedisChannelLayer`. The pub/sub-only
    ``on_disconnect``/``on_reconnect`` keys are accepted and ignored: reconnecting and
    re-subscribing is automatic (channels_redis 4.3 stores them without calling them either).
    """

    def __init__(
        self, *args: Any, on_disconnect: Any = None, on_reconnect: Any = None, **kwargs: Any
    ) -> None:
        if on_disconnect is not None or on_reconnect is not None:
            logger.info(
                "RedisPubSubChannelLayer: on_disconnect/on_reconnect are ignored; "
                "Switchboard reconnects and re-subscribes by itself"
            )
        super().__init__(*args, **kwargs)
