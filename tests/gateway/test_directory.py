"""The workers a gateway knows: who takes the next connection, and who is lost when."""

from __future__ import annotations

import pytest

from switchboard.gateway.protocol import messages as m
from switchboard.gateway.protocol.directory import WorkerDirectory

A = "switchboard.worker.a!1"
B = "switchboard.worker.b!2"


def beat(channel: str, capacity: int = 0, connections: int = 0) -> dict:
    return m.worker_heartbeat(channel, channel[-1], capacity, connections)


def test_a_worker_is_new_once_then_refreshed() -> None:
    directory = WorkerDirectory(lost_after=3.0)
    assert directory.heard(m.worker_hello(A, "a"), now=0.0) is not None
    assert directory.heard(beat(A, connections=5), now=1.0) is None
    assert directory.workers[A].last_seen == 1.0 and directory.workers[A].reported == 5


def test_the_worker_with_fewest_connections_from_this_gateway_takes_the_next() -> None:
    directory = WorkerDirectory(lost_after=3.0)
    directory.heard(beat(A), 0.0)
    directory.heard(beat(B), 0.0)
    directory.workers[A].connections.update({"c1", "c2"})
    directory.workers[B].connections.add("c3")
    assert directory.choose().channel == B
    # Ties go to the one serving fewer connections overall (other gateways' included).
    directory.workers[B].connections.add("c4")
    directory.heard(beat(A, connections=90), 1.0)
    directory.heard(beat(B, connections=2), 1.0)
    assert directory.choose().channel == B


def test_leaving_and_full_workers_take_nothing() -> None:
    directory = WorkerDirectory(lost_after=3.0)
    directory.heard(beat(A, capacity=1), 0.0)
    directory.heard(beat(B), 0.0)
    directory.leaving(B)
    assert directory.choose().channel == A
    directory.workers[A].connections.add("c1")
    assert directory.choose() is None and not directory.can_take()
    assert directory.leaving("switchboard.worker.unknown!9") is None


def test_silence_counts_only_while_the_gateway_could_hear() -> None:
    directory = WorkerDirectory(lost_after=3.0)
    directory.heard(beat(A), 0.0)
    directory.heard(beat(B), 2.0)
    # The gateway's own layer came back at 4.0: A's silence counts from then.
    assert directory.lost(now=6.0, heard_since=4.0) == []
    lost = directory.lost(now=7.5, heard_since=4.0)
    assert [w.channel for w in lost] == [A, B] and len(directory) == 0


def test_lost_after_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WorkerDirectory(lost_after=0)


def test_a_leaving_worker_gets_longer_before_it_counts_as_lost() -> None:
    directory = WorkerDirectory(lost_after=3.0)
    directory.heard(beat(A), 0.0)
    directory.heard(beat(B), 0.0)
    directory.leaving(A)
    assert [w.channel for w in directory.lost(now=5.0, heard_since=0.0)] == [B]
    assert directory.lost(now=11.0, heard_since=0.0) == []
    assert [w.channel for w in directory.lost(now=12.5, heard_since=0.0)] == [A]
