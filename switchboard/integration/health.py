"""The readiness check Switchboard's Django app gives the server (``serve --ready-path``).

:func:`channel_layer_ready` sends a message through the default channel layer and receives it
back, on a channel named for this check alone: with the Redis layer the message goes through
Redis (``LPUSH`` and ``BLPOP``), so a Redis that is down, unreachable or refusing writes makes
the server answer ``503`` until it is back. ``SwitchboardConfig.ready()`` registers it; the
server runs it (within ``--ready-timeout``) only when a readiness probe asks.

Add checks of your own (a database, a cache) with
:func:`switchboard.server.runtime.health.add_readiness_check`, e.g. from your AppConfig's
``ready()``.
"""

from __future__ import annotations

import os
import secrets

from switchboard.layers import get_channel_layer

__all__ = ["CHECK_NAME", "channel_layer_ready", "register"]

CHECK_NAME = "channel_layer"


async def channel_layer_ready() -> None:
    """Raise unless a message makes a round trip through the default channel layer."""
    layer = get_channel_layer()
    if layer is None:  # no layer configured under "default": nothing to wait for
        return
    # Not new_channel(): a process-specific channel may be delivered inside this process
    # without touching the shared backend, which is what this check is about.
    channel = f"switchboard.ready.{os.getpid()}.{secrets.token_hex(6)}"
    token = secrets.token_hex(8)
    try:
        await layer.send(channel, {"type": "switchboard.ready", "token": token})
        message = await layer.receive(channel)
    finally:
        await layer.release_channel(channel)
    if message.get("token") != token:
        raise RuntimeError(f"the channel layer returned another message: {message!r}")


def register() -> None:
    from switchboard.server.runtime.health import add_readiness_check

    add_readiness_check(CHECK_NAME, channel_layer_ready)
