"""Redis channel layer: per-process group fan-out over pub/sub, sharded, reconnecting."""

from switchboard.layers.redis.core import RedisChannelLayer

__all__ = ["RedisChannelLayer"]
