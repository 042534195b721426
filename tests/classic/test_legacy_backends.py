"""Channels 1's backend paths in CHANNEL_LAYERS build Switchboard's layers, with their CONFIG
translated, and a system check names the new path."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from switchboard.exceptions import InvalidChannelLayerError
from switchboard.integration.checks import check_channel_layers
from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.layers.ipc import IPCChannelLayer
from switchboard.layers.redis import RedisChannelLayer
from switchboard.layers.registry import ChannelLayerManager


def build(entry: dict[str, Any]) -> Any:
    return ChannelLayerManager(lambda: {"default": entry})["default"]


def test_asgi_redis_builds_the_redis_layer_with_its_config() -> None:
    layer = build(
        {
            "BACKEND": "asgi_redis.RedisChannelLayer",
            "CONFIG": {"hosts": [("localhost", 6379)], "prefix": "old", "capacity": 7},
            "ROUTING": "myproject.routing.channel_routing",
        }
    )
    assert type(layer) is RedisChannelLayer
    assert (layer.prefix, layer.capacity) == ("old", 7)
    local = build({"BACKEND": "asgi_redis.RedisLocalChannelLayer", "CONFIG": {"expiry": 5}})
    assert type(local) is RedisChannelLayer and local.expiry == 5


def test_asgi_redis_sentinel_follows_its_one_service() -> None:
    config = {"hosts": [["127.0.0.1", 26379]], "services": ["mymaster"]}
    layer = build({"BACKEND": "asgi_redis.RedisSentinelChannelLayer", "CONFIG": config})
    assert type(layer) is RedisChannelLayer
    with pytest.raises(InvalidChannelLayerError, match="one Sentinel service; CONFIG lists 2"):
        build(
            {
                "BACKEND": "asgi_redis.RedisSentinelChannelLayer",
                "CONFIG": {**config, "services": ["a", "b"]},
            }
        )


def test_asgi_ipc_and_asgiref_inmemory(tmp_path: Any) -> None:
    ipc = build(
        {
            "BACKEND": "asgi_ipc.IPCChannelLayer",
            "CONFIG": {"prefix": "proj", "channel_memory": 1 << 20, "group_expiry": 60},
        }
    )
    assert type(ipc) is IPCChannelLayer and ipc.prefix == "proj" and ipc.group_expiry == 60
    memory = build({"BACKEND": "asgiref.inmemory.ChannelLayer", "CONFIG": {"capacity": 3}})
    assert type(memory) is InMemoryChannelLayer and memory.capacity == 3


def test_the_check_names_the_new_path() -> None:
    layers = {"default": {"BACKEND": "asgi_redis.RedisChannelLayer", "CONFIG": {}}}
    with override_settings(CHANNEL_LAYERS=layers):
        messages = check_channel_layers()
    assert [m.id for m in messages] == ["switchboard.W003"]
    assert "switchboard.layers.redis.RedisChannelLayer" in messages[0].hint
