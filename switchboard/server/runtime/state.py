"""What all connections of one server process share."""

from __future__ import annotations

import asyncio
from typing import Any

from switchboard.server.runtime.counters import TrafficCounters
from switchboard.server.runtime.default_headers import DefaultHeaders

__all__ = ["ServerState"]


class ServerState(TrafficCounters, DefaultHeaders):
    """The open connections and application tasks (what a graceful shutdown waits for), the
    counters behind the metrics (:class:`TrafficCounters`), the response fields every
    response gets (:class:`DefaultHeaders`) and the budgets HTTP/2 connections share.

    One object, its parts inherited rather than held, so that the connections reach every
    counter and the default fields with one attribute lookup, as before the split.
    """

    def __init__(self, server_header: bool = True, date_header: bool = True) -> None:
        TrafficCounters.__init__(self)
        DefaultHeaders.__init__(self, server_header, date_header)
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task] = set()
        self.shutting_down = False
        # The worker slot under --workers (a metrics label), None for a single process.
        self.worker: int | None = None
        # The budgets all HTTP/2 connections share (connections/h2/limits.py H2Budgets), made
        # by the first.
        self.h2_budgets: Any = None
