"""Signed stream tests: the real server in the test's loop, the in-memory layer or a real
redis-server (the Redis layer tests' fixtures), real sockets, Django's real sessions."""

from __future__ import annotations

import pytest

from switchboard.layers import channel_layers
from switchboard.layers.inmemory import InMemoryChannelLayer
from tests.layers.conftest import (  # noqa: F401 - fixtures, found by name
    _shared_redis_servers,
    redis_server,
)


@pytest.fixture(params=["inmemory", "redis"])
def layer(request):
    """The default channel layer, in-memory or on a real redis-server."""
    if request.param == "inmemory":
        built = InMemoryChannelLayer()
    else:
        from switchboard.layers.redis import RedisChannelLayer

        built = RedisChannelLayer(hosts=[request.getfixturevalue("redis_server").url])
    channel_layers.set("default", built)
    return built


@pytest.fixture
def memory_layer():
    built = InMemoryChannelLayer()
    channel_layers.set("default", built)
    return built
