"""Lua scripts run by SHA, and the reply decoding the Redis stores share."""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError


class Script:
    """A Lua script and its SHA1: run with EVALSHA, sent in full (EVAL) only when the server
    does not know it, e.g. after a restart."""

    __slots__ = ("script", "sha")

    def __init__(self, script: str) -> None:
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()

    async def run(self, shard: Any, keys: tuple[str, ...], *args: Any) -> Any:
        try:
            return await shard.command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await shard.command("EVAL", self.script, len(keys), *keys, *args)


def text(value: Any) -> str:
    """A reply value as text: bytes decoded, anything else through ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)
