"""The sends a Channels 1 consumer holds until it returns (Channels 1.0's consumer atomicity).

What a consumer sends with ``Channel.send`` and ``Group.send`` waits in its :class:`HeldSends`
and the worker sends it, in order, once the consumer has finished: after it returned, and
(as Channels 1.1's worker did) after it raised too. ``immediately=True`` sends at once (and
is noted in ``sent_to``, so the worker knows a connect consumer answered).
:func:`send_held_now` sends what is held so far from the consumer's own thread:
``enforce_ordering`` does, so a message's sends are out before the next message may run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync

from switchboard.layers.base import BaseChannelLayer

__all__ = ["HeldSend", "HeldSends", "held_sends", "holding", "send_held_now"]


@dataclass(frozen=True, slots=True)
class HeldSend:
    """A send a consumer made: to a channel (``group`` False) or a group."""

    layer: BaseChannelLayer
    target: str
    content: dict[str, Any]
    group: bool = False


@dataclass(slots=True)
class HeldSends:
    """The sends of one consumer call, in order; ``sent_to`` also lists those made at once."""

    held: list[HeldSend] = field(default_factory=list)
    sent_to: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: How many of ``held``, from the first, already went out (:func:`send_held_now`).
    flushed: int = 0


_current: contextvars.ContextVar[HeldSends | None] = contextvars.ContextVar(
    "switchboard_classic_held_sends", default=None
)


def holding() -> HeldSends | None:
    """The sends of the consumer running in this context, or None outside a consumer."""
    return _current.get()


@contextmanager
def held_sends(sends: HeldSends | None = None) -> Iterator[HeldSends]:
    """Hold the sends made inside the block (a consumer call) in ``sends`` (a new one by
    default): the caller sends them after, whether or not the block raised."""
    sends = HeldSends() if sends is None else sends
    token = _current.set(sends)
    try:
        yield sends
    finally:
        _current.reset(token)


def send_held_now() -> None:
    """Send what the running consumer holds so far, in order, now (from its thread), and
    count it in ``flushed``. A send that fails raises; it and the ones after it are left for
    the worker to send."""
    sends = holding()
    if sends is None:
        return
    while sends.flushed < len(sends.held):
        held = sends.held[sends.flushed]
        if held.group:
            async_to_sync(held.layer.group_send)(held.target, held.content)
        else:
            async_to_sync(held.layer.send)(held.target, held.content)
        sends.flushed += 1
