"""Presence and history tests use the Redis layer tests' real redis-server fixtures."""

from tests.layers.conftest import (  # noqa: F401 - fixtures, found by name
    _shared_redis_servers,
    fresh_redis_server,
    redis_server,
)
