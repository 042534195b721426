"""State machines written as data: a table of ``(state, event) -> next state``.

A protocol keeps its allowed transitions in one dict (its ``TRANSITIONS``) and looks each one up
by event, then state: ``AFTER[event][state]``, one dict lookup per transition. A transition the
table does not have raises the protocol's own error instead of answering, so a state machine
can never drift into a state nobody wrote down. Used by the HTTP/1.1 connection
(``server/connections/http11_states.py``) and by gateway mode's relayed connections
(``gateway/protocol/connection_states.py``); a shared leaf, importing nothing of Switchboard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

__all__ = ["Row", "by_event"]

S = TypeVar("S")
E = TypeVar("E")


class Row(dict[S, S], Generic[S, E]):
    """The transitions of one event, by state; a state the event is not allowed in raises
    what ``refuse(event, state)`` returns."""

    __slots__ = ("event", "refuse")

    def __init__(
        self,
        event: E,
        transitions: Mapping[tuple[S, E], S],
        refuse: Callable[[E, S], Exception],
    ) -> None:
        super().__init__(
            (state, after) for (state, on), after in transitions.items() if on is event
        )
        self.event = event
        self.refuse = refuse

    def __missing__(self, state: S) -> S:
        raise self.refuse(self.event, state)


def by_event(
    transitions: Mapping[tuple[S, E], S],
    events: Iterable[E],
    refuse: Callable[[E, S], Exception],
) -> dict[E, Row[S, E]]:
    """``transitions`` again, by event: what a protocol looks up as ``AFTER[event][state]``."""
    return {event: Row(event, transitions, refuse) for event in events}
