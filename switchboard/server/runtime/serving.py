"""The states of the servers this process runs right now (``Server.startup``/``shutdown`` keep
the list), so that code inside the application (a metrics view, the WSGI adapter's scheduling)
can find them without a reference to the server."""

from __future__ import annotations

from switchboard.server.runtime.state import ServerState

__all__ = ["add_serving", "remove_serving", "serving_states", "websockets_open"]

_serving: list[ServerState] = []


def serving_states() -> list[ServerState]:
    """The states of the servers this process runs right now."""
    return list(_serving)


def websockets_open() -> bool:
    """Does any server of this process hold an open WebSocket? (Read without a lock: a stale
    answer only delays or hastens a scheduling choice.)"""
    return any(state.websockets for state in _serving)


def add_serving(state: ServerState) -> None:
    if state not in _serving:
        _serving.append(state)


def remove_serving(state: ServerState) -> None:
    if state in _serving:
        _serving.remove(state)
