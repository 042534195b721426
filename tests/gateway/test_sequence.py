"""The in-order receiver and the resend buffer: order, duplicates, gaps, bounds, and a
connection's stream carried across a move from one worker to the next."""

from __future__ import annotations

import pytest

from switchboard.gateway.protocol.sequence import (
    OVERFLOW,
    InOrderReceiver,
    Received,
    ResendBuffer,
    SequenceError,
    Status,
)


def test_in_order_events_are_delivered_at_once() -> None:
    receiver: InOrderReceiver[str] = InOrderReceiver(window=4)
    assert receiver.receive(1, "a") == Received(Status.DELIVERED, ["a"])
    assert receiver.receive(2, "b") == Received(Status.DELIVERED, ["b"])
    assert receiver.delivered_through == 2
    assert receiver.delivered == 2
    assert receiver.waiting_for is None and receiver.gaps() == []


def test_events_ahead_are_held_until_the_gap_fills() -> None:
    receiver: InOrderReceiver[str] = InOrderReceiver(window=4)
    assert receiver.receive(3, "c") == Received(Status.HELD, [])
    assert receiver.receive(5, "e") == Received(Status.HELD, [])
    assert receiver.waiting_for == 1
    assert receiver.gaps() == [1, 2, 4]
    assert receiver.receive(2, "b") == Received(Status.HELD, [])
    assert receiver.receive(1, "a") == Received(Status.DELIVERED, ["a", "b", "c"])
    assert receiver.gaps() == [4] and receiver.waiting_for == 4
    assert receiver.receive(4, "d") == Received(Status.DELIVERED, ["d", "e"])
    assert receiver.held == {} and receiver.delivered_through == 5


def test_duplicates_are_dropped_and_counted() -> None:
    receiver: InOrderReceiver[str] = InOrderReceiver(window=4)
    receiver.receive(1, "a")
    receiver.receive(3, "c")
    assert receiver.receive(1, "a again") == Received(Status.DUPLICATE, [])  # delivered
    assert receiver.receive(3, "c again") == Received(Status.DUPLICATE, [])  # held
    assert receiver.duplicates == 2
    assert receiver.receive(2, "b") == Received(Status.DELIVERED, ["b", "c"])  # the first c


def test_too_far_ahead_is_overflow_and_not_kept() -> None:
    receiver: InOrderReceiver[str] = InOrderReceiver(window=2)
    assert receiver.receive(3, "c").status is Status.HELD  # 2 ahead of 1: inside the window
    assert receiver.receive(4, "d") == Received(Status.OVERFLOW, [])
    assert receiver.overflows == 1
    assert 4 not in receiver.held
    assert receiver.receive(1, "a").ready == ["a"]
    assert receiver.receive(2, "b").ready == ["b", "c"]
    # The window moves with the stream: 4 fits now.
    assert receiver.receive(5, "e").status is Status.HELD


def test_a_window_of_zero_holds_nothing() -> None:
    receiver: InOrderReceiver[str] = InOrderReceiver(window=0)
    assert receiver.receive(2, "b").status is Status.OVERFLOW
    assert receiver.receive(1, "a").ready == ["a"]


def test_restart_for_a_new_epoch_keeps_the_counters() -> None:
    receiver: InOrderReceiver[str] = InOrderReceiver(window=4)
    receiver.receive(1, "a")
    receiver.receive(1, "a")
    receiver.receive(3, "c")
    assert receiver.restart(1) == ["c"]
    assert receiver.expected == 1 and receiver.held == {}
    assert receiver.receive(1, "new a").ready == ["new a"]
    assert receiver.duplicates == 1


def test_receiver_starting_later() -> None:
    receiver: InOrderReceiver[str] = InOrderReceiver(window=4, start=7)
    assert receiver.delivered_through == 6
    assert receiver.receive(6, "old").status is Status.DUPLICATE
    assert receiver.receive(7, "g").ready == ["g"]


@pytest.mark.parametrize(("window", "start"), [(-1, 1), (1, 0)])
def test_receiver_refuses_nonsense(window: int, start: int) -> None:
    with pytest.raises(ValueError):
        InOrderReceiver(window=window, start=start)


def test_resend_buffer_numbers_and_keeps_until_acked() -> None:
    buffer: ResendBuffer[str] = ResendBuffer(max_items=10)
    assert [buffer.push(x) for x in "abc"] == [1, 2, 3]
    assert buffer.unacked() == [(1, "a"), (2, "b"), (3, "c")]
    assert buffer.ack(2) == 2
    assert buffer.unacked() == [(3, "c")]
    assert buffer.first_unacked == 3
    assert buffer.ack(1) == 0  # an older ack, arriving late: nothing to do
    assert buffer.first_unacked == 3
    assert buffer.ack(3) == 1 and len(buffer) == 0 and buffer.first_unacked == 4


def test_an_ack_for_what_was_never_sent_is_an_error() -> None:
    buffer: ResendBuffer[str] = ResendBuffer(max_items=10)
    buffer.push("a")
    with pytest.raises(SequenceError, match="ack for event 2, but only events up to 1"):
        buffer.ack(2)


def test_resend_buffer_overflow_by_count() -> None:
    buffer: ResendBuffer[str] = ResendBuffer(max_items=2)
    assert buffer.push("a") == 1 and buffer.push("b") == 2
    assert buffer.room == 0
    assert buffer.push("c") is OVERFLOW
    assert buffer.overflows == 1
    # The refused event got no number: the stream stays contiguous.
    assert buffer.unacked() == [(1, "a"), (2, "b")] and buffer.next_seq == 3
    buffer.ack(1)
    assert buffer.push("d") == 3


def test_resend_buffer_overflow_by_bytes() -> None:
    buffer: ResendBuffer[bytes] = ResendBuffer(max_items=100, max_bytes=10)
    assert buffer.push(b"x" * 6, size=6) == 1
    assert buffer.push(b"y" * 5, size=5) is OVERFLOW
    assert buffer.push(b"z" * 4, size=4) == 2
    assert buffer.pending_bytes == 10
    buffer.ack(1)
    assert buffer.pending_bytes == 4
    assert buffer.push(b"w" * 11, size=11) is OVERFLOW  # not behind another
    assert buffer.overflows == 2
    buffer.ack(2)
    assert buffer.push(b"w" * 11, size=11) == 3  # an empty buffer takes it, alone
    assert buffer.push(b"v", size=1) is OVERFLOW


@pytest.mark.parametrize(
    ("max_items", "max_bytes", "start"), [(0, None, 1), (1, 0, 1), (1, None, 0)]
)
def test_resend_buffer_refuses_nonsense(max_items: int, max_bytes: int | None, start: int) -> None:
    with pytest.raises(ValueError):
        ResendBuffer(max_items=max_items, max_bytes=max_bytes, start=start)


def test_a_move_delivers_each_event_once_in_order() -> None:
    # The gateway numbers the client's events and keeps them until acked. Worker A reads
    # m1 and m2 (m3 is lost in the layer, m4 waits behind it) and acks 2, then dies. Worker B
    # starts at the first unacked number and gets m3, m4 and what came during the move, in
    # order, each once although the layer delivers one of them twice.
    buffer: ResendBuffer[str] = ResendBuffer(max_items=100)
    worker_a: InOrderReceiver[str] = InOrderReceiver(window=8)
    read_by_a: list[str] = []
    for text in ["m1", "m2", "m3", "m4"]:
        seq = buffer.push(text)
        assert seq is not OVERFLOW
        if seq != 3:
            read_by_a += worker_a.receive(seq, text).ready
    assert read_by_a == ["m1", "m2"]  # m4 is held behind the missing m3
    buffer.ack(worker_a.delivered_through)  # worker.ack 2
    # A is lost; while the connection moves, the client goes on sending.
    buffer.push("m5")
    worker_b: InOrderReceiver[str] = InOrderReceiver(window=8, start=buffer.first_unacked)
    read_by_b: list[str] = []
    resent = buffer.unacked()
    for seq, text in resent + resent[:1]:
        read_by_b += worker_b.receive(seq, text).ready
    assert read_by_b == ["m3", "m4", "m5"]
    assert worker_b.duplicates == 1
