"""The gateway's list of the workers it knows, and which one takes the next connection.

Workers say they are alive (``worker.hello``, ``worker.heartbeat``) and that they are leaving
(``worker.leaving``); a worker not heard from for ``lost_after`` seconds is lost, and its
connections move (a leaving worker gets :data:`LEAVING_GRACE` times longer). Silence only
counts while the gateway could hear: a gateway whose own layer sends were failing (a Redis
restart) did not hear anyone, so :meth:`WorkerDirectory.lost` takes the time the layer came
back as the earliest moment silence can start.

Connections go to the worker with the fewest connections from this gateway, among those not
leaving and under their ``capacity`` (0: no limit); the worker's own count across all gateways
(``connections`` in its heartbeat) breaks ties, so that gateways spread load between them too.
Plain code over plain data: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard.gateway.protocol.messages import Message

__all__ = ["LEAVING_GRACE", "KnownWorker", "WorkerDirectory"]

# A worker that said it is leaving stops its heartbeats once its releases are sent; a gateway
# busy enough to read them late must not take it for dead meanwhile (its connections would
# move twice). It gets this many times the usual silence.
LEAVING_GRACE = 4


@dataclass(slots=True)
class KnownWorker:
    """A worker as this gateway knows it."""

    channel: str
    name: str
    capacity: int
    last_seen: float
    reported: int = 0  # connections it serves, from every gateway (its heartbeat)
    leaving: bool = False
    gone: bool = False  # lost: sends to it are abandoned
    connections: set[str] = field(default_factory=set)  # this gateway's, by connection id

    @property
    def full(self) -> bool:
        return bool(self.capacity) and len(self.connections) >= self.capacity


class WorkerDirectory:
    """The workers one gateway knows (see the module docs)."""

    def __init__(self, lost_after: float) -> None:
        if not lost_after > 0:
            raise ValueError("lost_after must be a positive number of seconds")
        self.lost_after = lost_after
        self.workers: dict[str, KnownWorker] = {}

    def heard(self, message: Message, now: float) -> KnownWorker | None:
        """A ``worker.hello`` or ``worker.heartbeat``; returns the worker when it is new to
        this gateway (it may take waiting connections), else None."""
        channel = message["worker"]
        known = self.workers.get(channel)
        if known is None:
            known = self.workers[channel] = KnownWorker(
                channel, message["name"], message["capacity"], now, message["connections"]
            )
            return known
        known.last_seen = now
        known.capacity = message["capacity"]
        known.reported = message["connections"]
        return None

    def leaving(self, channel: str) -> KnownWorker | None:
        """``worker.leaving``: the worker takes no new connection; None if unknown."""
        known = self.workers.get(channel)
        if known is not None:
            known.leaving = True
        return known

    def choose(self) -> KnownWorker | None:
        """The worker for the next connection, or None when no worker can take one."""
        best: KnownWorker | None = None
        for known in self.workers.values():
            if known.leaving or known.full:
                continue
            if best is None or (len(known.connections), known.reported) < (
                len(best.connections),
                best.reported,
            ):
                best = known
        return best

    def lost(self, now: float, heard_since: float) -> list[KnownWorker]:
        """Remove and return the workers silent for ``lost_after`` seconds, silence counted
        from ``heard_since`` at the earliest (when the gateway's layer last came back)."""
        gone = [
            known
            for known in self.workers.values()
            if now - max(known.last_seen, heard_since)
            > self.lost_after * (LEAVING_GRACE if known.leaving else 1)
        ]
        for known in gone:
            del self.workers[known.channel]
        return gone

    def remove(self, channel: str) -> KnownWorker | None:
        return self.workers.pop(channel, None)

    def can_take(self) -> bool:
        """Whether some worker would take a connection now."""
        return self.choose() is not None

    def __len__(self) -> int:
        return len(self.workers)
