"""channels_redis' pub/sub layer name resolves to Switchboard's Redis layer (issue 9)."""

from __future__ import annotations

import asyncio

from django.test import override_settings

from switchboard.layers import get_channel_layer
from switchboard.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer


async def test_pubsub_layer_name_from_settings_is_the_redis_layer(redis_server) -> None:
    config = {
        "hosts": [redis_server.url],
        # channels_redis.pubsub keys a moved-over settings file still carries:
        "on_disconnect": "redis.disconnect",
        "on_reconnect": "redis.reconnect",
    }
    backend = {"BACKEND": "switchboard.layers.redis.RedisPubSubChannelLayer", "CONFIG": config}
    with override_settings(CHANNEL_LAYERS={"default": backend}):
        layer = get_channel_layer()
        try:
            assert isinstance(layer, RedisPubSubChannelLayer)
            assert isinstance(layer, RedisChannelLayer)
            channel = await layer.new_channel()
            await layer.group_add("room", channel)
            await layer.group_send("room", {"type": "chat.message", "text": "hi"})
            message = await asyncio.wait_for(layer.receive(channel), 3)
            assert message == {"type": "chat.message", "text": "hi"}
        finally:
            await layer.close()
