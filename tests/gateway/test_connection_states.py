"""The relayed connection's state table: every state reachable, the ways a connection goes
(new, crash, deploy, refusals, timeouts), and undefined transitions refused."""

from __future__ import annotations

import pytest

from switchboard.gateway.protocol.connection_states import (
    AFTER,
    CLOSE_CODES,
    TRANSITIONS,
    WITH_WORKER,
    ConnectionStateError,
    RelayEvent,
    RelayState,
    next_state,
)

S, E = RelayState, RelayEvent


def walk(*events: RelayEvent, start: RelayState = S.WAITING) -> list[RelayState]:
    """The states a connection passes through for ``events``."""
    states = [start]
    for event in events:
        states.append(next_state(states[-1], event))
    return states


def test_every_state_is_reachable_from_waiting() -> None:
    seen = {S.WAITING}
    frontier = [S.WAITING]
    while frontier:
        state = frontier.pop()
        for (source, _event), target in TRANSITIONS.items():
            if source is state and target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(RelayState)


def test_every_event_is_used_and_closed_is_the_end() -> None:
    assert {event for _state, event in TRANSITIONS} == set(RelayEvent)
    assert not [key for key in TRANSITIONS if key[0] is S.CLOSED]
    # Every state but CLOSED can end when the socket goes.
    for state in set(RelayState) - {S.CLOSED}:
        assert next_state(state, E.CLIENT_DISCONNECTED) is S.CLOSED


def test_a_normal_connection() -> None:
    assert walk(
        E.ASSIGNED,
        E.ACCEPTED,
        E.CLIENT_MESSAGE,
        E.WORKER_MESSAGE,
        E.WORKER_CLOSED,
        E.CLIENT_MESSAGE,  # the client's last words cross our close frame
        E.CLIENT_DISCONNECTED,
    ) == [S.WAITING, S.CONNECTING, S.OPEN, S.OPEN, S.OPEN, S.CLOSING, S.CLOSING, S.CLOSED]


def test_the_client_leaves_first() -> None:
    assert walk(E.ASSIGNED, E.ACCEPTED, E.CLIENT_DISCONNECTED)[-1] is S.CLOSED


def test_the_consumer_refuses_the_handshake() -> None:
    assert walk(E.ASSIGNED, E.REFUSED, E.WORKER_MESSAGE, E.CLIENT_DISCONNECTED) == [
        S.WAITING,
        S.CONNECTING,
        S.CLOSING,
        S.CLOSING,  # the body of a denial response
        S.CLOSED,
    ]


def test_a_move_after_a_crash() -> None:
    assert walk(
        E.ASSIGNED,
        E.ACCEPTED,
        E.WORKER_LOST,
        E.CLIENT_MESSAGE,  # kept for the next worker
        E.ASSIGNED,
        E.CLIENT_MESSAGE,
        E.ACCEPTED,  # answered by the gateway
        E.WORKER_MESSAGE,
    ) == [
        S.WAITING,
        S.CONNECTING,
        S.OPEN,
        S.MOVING,
        S.MOVING,
        S.RESUMING,
        S.RESUMING,
        S.OPEN,
        S.OPEN,
    ]


def test_a_move_after_sigterm_and_another_during_the_resume() -> None:
    assert walk(
        E.ASSIGNED,
        E.ACCEPTED,
        E.WORKER_RELEASED,
        E.ASSIGNED,
        E.WORKER_RELEASED,  # the next worker stops too, before its consumer accepted
        E.ASSIGNED,
        E.ACCEPTED,
    ) == [
        S.WAITING,
        S.CONNECTING,
        S.OPEN,
        S.MOVING,
        S.RESUMING,
        S.MOVING,
        S.RESUMING,
        S.OPEN,
    ]


def test_a_worker_lost_before_the_accept_sends_the_connection_back_to_waiting() -> None:
    # The client was never accepted: the next worker gets a first connect, not a resumed one.
    assert walk(E.ASSIGNED, E.WORKER_LOST, E.ASSIGNED, E.ACCEPTED) == [
        S.WAITING,
        S.CONNECTING,
        S.WAITING,
        S.CONNECTING,
        S.OPEN,
    ]
    assert next_state(S.CONNECTING, E.WORKER_RELEASED) is S.WAITING


def test_a_consumer_that_refuses_to_move() -> None:
    assert walk(E.ASSIGNED, E.ACCEPTED, E.MOVE_REFUSED)[-1] is S.CLOSING
    assert CLOSE_CODES[E.MOVE_REFUSED] == 1012


def test_a_resume_that_fails_or_is_refused() -> None:
    moving = walk(E.ASSIGNED, E.ACCEPTED, E.WORKER_LOST, E.ASSIGNED)
    assert moving[-1] is S.RESUMING
    assert next_state(S.RESUMING, E.FAILED) is S.CLOSING
    assert CLOSE_CODES[E.FAILED] == 1011
    assert next_state(S.RESUMING, E.REFUSED) is S.CLOSING  # with the consumer's own code


@pytest.mark.parametrize("state", [S.WAITING, S.CONNECTING, S.MOVING, S.RESUMING])
def test_waiting_too_long_closes_with_1013(state: RelayState) -> None:
    assert next_state(state, E.WAIT_TIMED_OUT) is S.CLOSING
    assert CLOSE_CODES[E.WAIT_TIMED_OUT] == 1013


def test_late_news_while_closing_changes_nothing() -> None:
    late = [e for e in RelayEvent if (S.CLOSING, e) in TRANSITIONS]
    assert E.ACCEPTED in late and E.WORKER_LOST in late  # a timed-out worker's answer
    for event in late:
        if event is not E.CLIENT_DISCONNECTED:
            assert next_state(S.CLOSING, event) is S.CLOSING


def test_with_worker_is_where_a_loss_moves_the_connection() -> None:
    assert WITH_WORKER == {
        state for state, event in TRANSITIONS if event is E.WORKER_LOST and state is not S.CLOSING
    }


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.WAITING, E.CLIENT_MESSAGE),  # no frame before the handshake is answered
        (S.CONNECTING, E.CLIENT_MESSAGE),
        (S.WAITING, E.ACCEPTED),  # an accept from no worker
        (S.OPEN, E.ACCEPTED),  # a second accept
        (S.OPEN, E.ASSIGNED),  # two workers at once
        (S.MOVING, E.WORKER_LOST),  # no worker to lose
        (S.RESUMING, E.MOVE_REFUSED),
        (S.RESUMING, E.WORKER_MESSAGE),  # a send before the accept
        (S.CLOSING, E.WAIT_TIMED_OUT),
        (S.CLOSED, E.CLIENT_DISCONNECTED),  # the end is the end
        (S.CLOSED, E.ACCEPTED),
    ],
)
def test_undefined_transitions_raise(state: RelayState, event: RelayEvent) -> None:
    assert (state, event) not in TRANSITIONS
    with pytest.raises(ConnectionStateError) as info:
        next_state(state, event)
    assert f"{event.name} ({event.value}) is not allowed in state {state.name}" in str(info.value)


def test_the_rows_are_the_table() -> None:
    by_event = {
        (state, event): after for event, row in AFTER.items() for state, after in row.items()
    }
    assert by_event == TRANSITIONS
    assert hash(S.OPEN) == object.__hash__(S.OPEN)  # identity hash, as in the HTTP/1.1 table
