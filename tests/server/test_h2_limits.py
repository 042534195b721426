"""The HTTP/2 limits without I/O (switchboard/server/connections/h2/limits.py), and the one
``h2`` internal the server relies on, pinned against the installed ``h2``."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import ContinuationFrame, HeadersFrame, SettingsFrame

from switchboard.server.connections.h2.limits import (
    EarnedLimit,
    ResetBudget,
    ResetLimits,
    WindowBudget,
    pending_header_block,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def server_connection() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    conn.initiate_connection()
    conn.receive_data(PREFACE + SettingsFrame(0).serialize())
    return conn


def test_pending_header_block_sees_what_h2_holds() -> None:
    """h2 reports nothing of a header block until END_HEADERS; the server reads what it holds
    from a private attribute of its frame buffer. If an upgrade of h2 moves it, this fails
    (rather than the server silently losing its header block limits)."""
    conn = server_connection()
    assert pending_header_block(conn) is None
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")]
    block = hpack.Encoder().encode([*fields, (b":authority", b"x"), (b"x-pad", b"p" * 40)])
    assert len(block) > 8
    assert conn.receive_data(HeadersFrame(1, data=block[:5]).serialize()) == []
    pending = pending_header_block(conn)
    assert pending is not None
    first, size = pending
    assert size == 5
    assert conn.receive_data(ContinuationFrame(1, data=block[5:8]).serialize()) == []
    assert pending_header_block(conn) == (first, 8)
    events = conn.receive_data(
        ContinuationFrame(1, data=block[8:], flags=["END_HEADERS"]).serialize()
    )
    assert [type(e) for e in events] == [h2.events.RequestReceived]
    assert pending_header_block(conn) is None
    # A block in one frame is never held.
    events = conn.receive_data(
        HeadersFrame(3, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize()
    )
    assert h2.events.RequestReceived in [type(e) for e in events]
    assert pending_header_block(conn) is None


def test_earned_tokens_go_above_the_burst_up_to_the_cap() -> None:
    limit = EarnedLimit(rate=10, burst=5, cap=20)
    now = limit.stamp
    assert all(limit.allow(now) for _ in range(5))
    assert not limit.allow(now)
    limit.earn(30)  # what the server sent: capped
    assert sum(limit.allow(now) for _ in range(25)) == 20
    # The clock refills only up to the burst.
    assert sum(limit.allow(now + 100) for _ in range(10)) == 5


def test_window_budget_lends_what_is_left() -> None:
    budget = WindowBudget(300)
    assert budget.borrow(200) == 200
    assert budget.borrow(200) == 100
    assert budget.borrow(200) == 0
    budget.give_back(200)
    assert budget.borrow(50) == 50
    assert WindowBudget(-1).borrow(10) == 0


def test_reset_budget_per_address() -> None:
    lim = ResetLimits(address_rate=1, address_burst=3, total_rate=100, total_burst=100)
    budget = ResetBudget(lim)
    t = 1000.0
    budget.total.stamp = t
    assert budget.admits("a", t)  # never reset anything
    assert [budget.reset("a", t) for _ in range(4)] == [True, True, True, False]
    assert not budget.admits("a", t)
    assert budget.admits("b", t)  # another address has its own budget
    assert budget.admits("a", t + 1)  # refilled, one a second


def test_reset_budget_in_all_refuses_the_addresses_that_reset_lately() -> None:
    lim = ResetLimits(address_rate=100, address_burst=100, total_rate=1, total_burst=5, penalty=10)
    budget = ResetBudget(lim)
    t = 1000.0
    budget.total.stamp = t
    for address in ("a", "b", "c", "d", "e"):
        assert budget.reset(address, t)
    assert not budget.reset("f", t)  # the process-wide budget is spent
    assert not budget.admits("a", t + 0.5)  # reset lately, while the budget is spent
    assert budget.admits("quiet", t + 0.5)  # never reset anything: served
    assert budget.admits("a", t + 11)  # the budget refilled


def test_reset_budget_remembers_a_bounded_number_of_addresses() -> None:
    budget = ResetBudget(ResetLimits(addresses=3))
    for i in range(10):
        budget.reset(f"10.0.0.{i}")
    assert list(budget.addresses) == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]
