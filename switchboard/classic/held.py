"""The sends a Channels 1 consumer holds until it returns (Channels 1.0's consumer atomicity).

What a consumer sends with ``Channel.send`` and ``Group.send`` waits in its :class:`HeldSends`
and the worker sends it, in order, once the consumer has finished: after it returned, and
(as Channels 1.1's worker did) after it raised too. ``immediately=True`` sends at once (and
is noted in ``sent_to``, so the worker knows a connect consumer answered).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from switchboard.layers.base import BaseChannelLayer

__all__ = ["HeldSend", "HeldSends", "held_sends", "holding"]


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
