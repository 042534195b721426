"""Sending gateway/worker messages over a layer that may be away for a while.

A layer send can fail for a moment (Redis restarting, a full channel): the message is sent
again, after a pause that grows to :data:`MAX_PAUSE`, until it goes through. Messages carry
sequence numbers, so a copy that did arrive before the error is dropped by the receiver. The
sender waits meanwhile, which is what a relayed connection should do: its events stay in
order, and the socket's own reading stops while its buffer is full.

:class:`LayerHealth` remembers when the layer last failed, so that silence from a peer is
only taken for its death while this process could have heard it (the directory's ``lost``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from switchboard.exceptions import ChannelFull
from switchboard.gateway.protocol.messages import GATEWAY_CHANNEL_PREFIX, WORKER_CHANNEL_PREFIX
from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.codec import ChannelMessageTooLarge, UnserializableMessage

__all__ = [
    "FIRST_PAUSE",
    "MAX_PAUSE",
    "LayerHealth",
    "receive_until_received",
    "reserve_capacity",
    "send_until_sent",
]

logger = logging.getLogger("switchboard.gateway")

FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0

# Gateway and worker channels carry every relayed connection's events: a burst arriving in one
# read must not overflow them (the layer drops what does not fit a process channel).
PROCESS_CHANNEL_CAPACITY = 100_000

# A message the layer can never carry: sending it again would fail again.
_NEVER = (ChannelMessageTooLarge, UnserializableMessage, TypeError)


class LayerHealth:
    """When this process's layer last failed (``time.monotonic()``), and since when it works."""

    def __init__(self) -> None:
        self.failing_since: float | None = None
        self.healthy_since = time.monotonic()
        self.failures = 0

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            logger.warning("Channel layer unavailable (%s); retrying", _describe(error))

    def ok(self) -> None:
        if self.failing_since is not None:
            now = time.monotonic()
            logger.warning("Channel layer available again after %.1fs", now - self.failing_since)
            self.failing_since = None
            self.healthy_since = now

    @property
    def healthy(self) -> bool:
        return self.failing_since is None


def reserve_capacity(layer: BaseChannelLayer) -> None:
    """Give gateway and worker channels room for bursts, unless CHANNEL_LAYERS says else."""
    for prefix in (GATEWAY_CHANNEL_PREFIX, WORKER_CHANNEL_PREFIX):
        layer.add_capacity_default(f"{prefix}*", PROCESS_CHANNEL_CAPACITY)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def send_until_sent(
    layer: BaseChannelLayer,
    channel: str,
    message: dict[str, Any],
    health: LayerHealth,
    abandon: Callable[[], bool] | None = None,
) -> bool:
    """Send ``message`` to ``channel``, again and again while the layer fails; True once
    sent, False when ``abandon()`` says the message is no longer wanted (its receiver is
    gone: the connection moves, and its events go to the next worker).

    A full channel is waited on, not counted as the layer failing: its receiver is slow or
    gone, which the heartbeats tell. Raises what can never be sent (too large, not
    serializable) at once."""
    pause = FIRST_PAUSE
    while True:
        try:
            await layer.send(channel, message)
        except _NEVER:
            raise
        except ChannelFull:
            pass
        except Exception as exc:  # the layer's own errors (redis', OSError)
            health.failed(exc)
        else:
            if health.failing_since is not None:
                health.ok()
            return True
        if abandon is not None and abandon():
            return False
        await asyncio.sleep(pause)
        if abandon is not None and abandon():
            return False
        pause = min(pause * 2, MAX_PAUSE)


async def receive_until_received(
    layer: BaseChannelLayer, channel: str, health: LayerHealth
) -> dict[str, Any]:
    """The next message on ``channel``, receiving again, after a pause that grows to
    :data:`MAX_PAUSE`, while the layer fails (each failure is noted in ``health``)."""
    pause = FIRST_PAUSE
    while True:
        try:
            return await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the layer's own errors (redis', OSError)
            health.failed(exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
