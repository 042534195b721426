"""The messages a gateway and its workers exchange over the channel layer, as plain dicts.

Each message is a dict the layer codec carries (:mod:`switchboard.layers.codec`: str, bytes,
numbers, bools, ``None``, lists and dicts) with a ``"type"``. The prefix names the sender:
``gateway.*`` is sent by a gateway, ``worker.*`` by a worker. Each type has a constructor
here, which checks what it builds, and :func:`check` checks what arrives, raising
:class:`MalformedMessage` naming the type and the field at fault. Fields this version does not
know are carried and ignored, so a gateway and a worker one release apart still understand each
other during a rolling deploy; ``protocol`` in ``worker.hello`` is there for the day a change
cannot be made that way.

Channels and groups: a gateway and a worker each receive on a channel of their own
(``new_channel(GATEWAY_CHANNEL_PREFIX)``, ``new_channel(WORKER_CHANNEL_PREFIX)``). Gateways
join :data:`GATEWAYS_GROUP`, where workers announce themselves; workers join
:data:`WORKERS_GROUP`, where gateways say they are alive.

Per connection: ``connection`` is an id the gateway gives it, unique across gateways;
``epoch`` numbers the worker assignments, 1 for the first worker and one more at each move, so
a late message from a worker the connection has left is recognised and dropped.

``gateway.connect`` (gateway -> the worker's channel)
    The connection is this worker's now: ``gateway`` (the channel to answer on), ``scope``
    (:mod:`~switchboard.gateway.protocol.scope`), ``resumed`` (it moved here from another worker),
    ``next_seq`` (the number of the first ``gateway.event`` that follows). The worker feeds
    its consumer ``websocket.connect``: the first connect is never a ``gateway.event``.
``gateway.event`` (gateway -> the worker's channel)
    One ASGI event from the client (``websocket.receive``, ``websocket.disconnect``) as
    ``event``, with ``seq``, numbered over the connection's whole life: the events re-sent to
    the next worker keep their numbers.
``worker.event`` (worker -> the gateway's channel)
    One ASGI event from the consumer (``websocket.accept``, ``.send``, ``.close``,
    ``.http.response.start``/``.body``) as ``event``, with ``seq`` numbered from 1 in each
    epoch. With ``websocket.accept`` only: ``movable`` (False: the consumer must not move, and
    the gateway closes the socket with 1012 when its worker goes). Not acknowledged: if the
    worker dies its consumer dies with it, and if the gateway dies the socket is gone; a send
    the layer refused is sent again (:mod:`~switchboard.gateway.delivery`), and a copy that
    arrives twice is dropped by its number.
``worker.ack`` (worker -> the gateway's channel)
    The consumer has read every ``gateway.event`` up to ``seq``: the gateway forgets them.
``worker.failed`` (worker -> the gateway's channel)
    The consumer raised: ``error`` (a line for the gateway's log), ``seq`` (its place among
    this epoch's ``worker.event`` messages: it takes the next number). Closed with 1011
    (answered 500 before an accept), as in-process.
``worker.done`` (worker -> the gateway's channel)
    The consumer returned, ``seq`` numbered as ``worker.failed``: the gateway's application
    call returns too, and the server does what it does for an application that returns (a
    close with 1000 for an open socket).
``worker.release`` (worker -> the gateway's channel)
    The worker stops (SIGTERM) and hands the connection back: ``sent`` (its last
    ``worker.event`` number, 0 for none), ``acked`` (the last client event its consumer read),
    ``movable``. It follows the worker's last ``worker.event`` on the same channel; ``sent``
    tells the gateway whether one is missing.

Per process:

``worker.hello`` (worker -> ``GATEWAYS_GROUP``)
    A worker started: ``worker`` (its channel), ``name`` (for logs: host and pid),
    ``protocol``, ``capacity`` (most connections it takes, 0 for no limit), ``connections``.
    Gateways hand it waiting connections at once.
``worker.heartbeat`` (worker -> ``GATEWAYS_GROUP``)
    The same fields, every few seconds: a worker not heard from for a few beats is lost, and
    its connections move.
``worker.leaving`` (worker -> ``GATEWAYS_GROUP``)
    ``worker`` stops: give it no new connection (its ``worker.release`` messages follow).
``gateway.heartbeat`` (gateway -> ``WORKERS_GROUP``)
    ``gateway`` (its channel) and ``connections``, every few seconds: a worker ends the
    consumers of a gateway not heard from, as their sockets went with it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from switchboard.layers.base import BaseChannelLayer

__all__ = [
    "CLIENT_EVENTS",
    "CONSUMER_EVENTS",
    "GATEWAYS_GROUP",
    "GATEWAY_CHANNEL_PREFIX",
    "GATEWAY_CONNECT",
    "GATEWAY_EVENT",
    "GATEWAY_HEARTBEAT",
    "MAX_ID_LENGTH",
    "MOVABLE_KEY",
    "PROTOCOL_VERSION",
    "SPECS",
    "TO_GATEWAY",
    "TO_WORKER",
    "WORKERS_GROUP",
    "WORKER_ACK",
    "WORKER_DONE",
    "WORKER_CHANNEL_PREFIX",
    "WORKER_EVENT",
    "WORKER_FAILED",
    "WORKER_HEARTBEAT",
    "WORKER_HELLO",
    "WORKER_LEAVING",
    "WORKER_RELEASE",
    "WORKER_STREAM",
    "Field",
    "MalformedMessage",
    "Message",
    "check",
    "gateway_connect",
    "gateway_event",
    "gateway_heartbeat",
    "worker_ack",
    "worker_done",
    "worker_event",
    "worker_failed",
    "worker_heartbeat",
    "worker_hello",
    "worker_leaving",
    "worker_release",
]

Message = dict[str, Any]

# Bumped only for a change old peers cannot ignore (new fields are ignored, see above).
PROTOCOL_VERSION = 1

GATEWAYS_GROUP = "switchboard.gateways"
WORKERS_GROUP = "switchboard.workers"
GATEWAY_CHANNEL_PREFIX = "switchboard.gateway"
WORKER_CHANNEL_PREFIX = "switchboard.worker"

GATEWAY_CONNECT = "gateway.connect"
GATEWAY_EVENT = "gateway.event"
GATEWAY_HEARTBEAT = "gateway.heartbeat"
WORKER_HELLO = "worker.hello"
WORKER_HEARTBEAT = "worker.heartbeat"
WORKER_LEAVING = "worker.leaving"
WORKER_EVENT = "worker.event"
WORKER_ACK = "worker.ack"
WORKER_FAILED = "worker.failed"
WORKER_DONE = "worker.done"
WORKER_RELEASE = "worker.release"

# What each side receives: a worker on its channel and WORKERS_GROUP, a gateway on its channel
# and GATEWAYS_GROUP.
TO_WORKER = frozenset((GATEWAY_CONNECT, GATEWAY_EVENT, GATEWAY_HEARTBEAT))
TO_GATEWAY = frozenset(
    (
        WORKER_HELLO,
        WORKER_HEARTBEAT,
        WORKER_LEAVING,
        WORKER_EVENT,
        WORKER_ACK,
        WORKER_FAILED,
        WORKER_DONE,
        WORKER_RELEASE,
    )
)
# The messages of a connection's stream from its worker, numbered together (``seq``).
WORKER_STREAM = frozenset((WORKER_EVENT, WORKER_FAILED, WORKER_DONE))

# The ASGI events each direction carries (the first websocket.connect is gateway.connect).
CLIENT_EVENTS = frozenset(("websocket.receive", "websocket.disconnect"))
CONSUMER_EVENTS = frozenset(
    (
        "websocket.accept",
        "websocket.send",
        "websocket.close",
        "websocket.http.response.start",
        "websocket.http.response.body",
    )
)

# In a consumer's websocket.accept: False says the consumer must not move to another worker
# (its socket is closed with 1012 when its worker stops). The worker reads it and sends it as
# worker.event's ``movable``; servers ignore keys they do not know, so it is harmless
# in-process. switchboard's consumers set it from their ``movable`` attribute.
MOVABLE_KEY = "switchboard.movable"

# Connection ids are the gateway's to choose; bounded so a log line or a metric label stays sane.
MAX_ID_LENGTH = 200
# msgpack carries ints up to 64 bits; a sequence number past that is corrupt, not large.
_MAX_INT = 2**63 - 1


class MalformedMessage(ValueError):
    """A gateway/worker message that breaks the protocol: not a dict, an unknown ``type``, a
    missing field or a field of the wrong kind. ``message_type`` and ``field`` say which (each
    ``None`` when the fault is not in one)."""

    def __init__(self, text: str, message_type: str | None = None, field: str | None = None):
        super().__init__(text)
        self.message_type = message_type
        self.field = field


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message type: the test its value must pass, and what the error says
    the value must be when it fails."""

    ok: Callable[[Any], bool]
    wants: str
    required: bool = True


def _is_int(value: Any, least: int) -> bool:
    return type(value) is int and least <= value <= _MAX_INT


def _is_channel(value: Any) -> bool:
    try:
        return BaseChannelLayer.require_valid_channel_name(value)
    except TypeError:
        return False


def _is_event_of(types: frozenset[str]) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        return isinstance(value, dict) and value.get("type") in types

    return ok


_ID = Field(
    lambda v: type(v) is str and 0 < len(v) <= MAX_ID_LENGTH,
    f"a non-empty str of at most {MAX_ID_LENGTH} characters",
)
_POSITIVE = Field(lambda v: _is_int(v, 1), "an int of at least 1")
_COUNT = Field(lambda v: _is_int(v, 0), "an int of at least 0")
_BOOL = Field(lambda v: type(v) is bool, "a bool")
_CHANNEL = Field(_is_channel, "a valid channel name")
_TEXT = Field(lambda v: type(v) is str, "a str")
_SCOPE = Field(
    lambda v: isinstance(v, dict) and v.get("type") == "websocket",
    "a packed WebSocket scope (a dict with type 'websocket')",
)


def _event(types: frozenset[str]) -> Field:
    return Field(_is_event_of(types), f"an ASGI event dict of type {' or '.join(sorted(types))}")


_PER_CONNECTION = {"connection": _ID, "epoch": _POSITIVE}
_WORKER_PROCESS = {
    "worker": _CHANNEL,
    "name": _TEXT,
    "protocol": _POSITIVE,
    "capacity": _COUNT,
    "connections": _COUNT,
}

# Every message type and its fields, as data: check() reads this, the constructors obey it.
SPECS: dict[str, dict[str, Field]] = {
    GATEWAY_CONNECT: {
        **_PER_CONNECTION,
        "gateway": _CHANNEL,
        "scope": _SCOPE,
        "resumed": _BOOL,
        "next_seq": _POSITIVE,
    },
    GATEWAY_EVENT: {**_PER_CONNECTION, "seq": _POSITIVE, "event": _event(CLIENT_EVENTS)},
    GATEWAY_HEARTBEAT: {"gateway": _CHANNEL, "connections": _COUNT},
    WORKER_HELLO: _WORKER_PROCESS,
    WORKER_HEARTBEAT: _WORKER_PROCESS,
    WORKER_LEAVING: {"worker": _CHANNEL},
    WORKER_EVENT: {
        **_PER_CONNECTION,
        "seq": _POSITIVE,
        "event": _event(CONSUMER_EVENTS),
        "movable": Field(_BOOL.ok, _BOOL.wants, required=False),
    },
    WORKER_ACK: {**_PER_CONNECTION, "seq": _POSITIVE},
    WORKER_FAILED: {**_PER_CONNECTION, "seq": _POSITIVE, "error": _TEXT},
    WORKER_DONE: {**_PER_CONNECTION, "seq": _POSITIVE},
    WORKER_RELEASE: {**_PER_CONNECTION, "sent": _COUNT, "acked": _COUNT, "movable": _BOOL},
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(message: Any, accept: Collection[str] | None = None) -> Message:
    """``message`` itself once it is a well-formed gateway/worker message (of one of the
    ``accept`` types, when given: :data:`TO_WORKER` or :data:`TO_GATEWAY`); raises
    :class:`MalformedMessage` naming what is wrong otherwise."""
    if not isinstance(message, dict):
        raise MalformedMessage(f"A gateway message must be a dict, not {type(message).__name__}")
    kind = message.get("type")
    spec = SPECS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise MalformedMessage(
            f"Unknown gateway message type {_shown(kind)}: expected one of {', '.join(SPECS)}",
            field="type",
        )
    if accept is not None and kind not in accept:
        raise MalformedMessage(
            f"{kind} is not sent to this side (it receives {', '.join(sorted(accept))})",
            message_type=kind,
            field="type",
        )
    for name, field in spec.items():
        if name not in message:
            if field.required:
                raise MalformedMessage(f"{kind}: missing {name!r}", kind, name)
            continue
        value = message[name]
        if not field.ok(value):
            raise MalformedMessage(
                f"{kind}: {name!r} must be {field.wants}, not {_shown(value)}", kind, name
            )
    if kind == WORKER_EVENT and "movable" in message:
        if message["event"]["type"] != "websocket.accept":
            raise MalformedMessage(
                f"{kind}: 'movable' goes with websocket.accept only", kind, "movable"
            )
    return message


def _build(kind: str, **fields: Any) -> Message:
    # The constructors check what they build: a bad value fails in the sender's hands.
    return check({"type": kind, **fields})


# -- sent by a gateway -----------------------------------------------------------------------


def gateway_connect(
    connection: str,
    epoch: int,
    gateway: str,
    scope: dict[str, Any],
    *,
    resumed: bool,
    next_seq: int = 1,
) -> Message:
    """Hand ``connection`` to a worker (``resumed``: it moved from another one)."""
    return _build(
        GATEWAY_CONNECT,
        connection=connection,
        epoch=epoch,
        gateway=gateway,
        scope=scope,
        resumed=resumed,
        next_seq=next_seq,
    )


def gateway_event(connection: str, epoch: int, seq: int, event: dict[str, Any]) -> Message:
    """One client event for the worker serving ``connection``."""
    return _build(GATEWAY_EVENT, connection=connection, epoch=epoch, seq=seq, event=event)


def gateway_heartbeat(gateway: str, connections: int) -> Message:
    """The gateway on channel ``gateway`` is alive and holds ``connections`` sockets."""
    return _build(GATEWAY_HEARTBEAT, gateway=gateway, connections=connections)


# -- sent by a worker ------------------------------------------------------------------------


def worker_hello(worker: str, name: str, capacity: int = 0, connections: int = 0) -> Message:
    """A worker on channel ``worker`` started and takes connections."""
    return _build(
        WORKER_HELLO,
        worker=worker,
        name=name,
        protocol=PROTOCOL_VERSION,
        capacity=capacity,
        connections=connections,
    )


def worker_heartbeat(worker: str, name: str, capacity: int, connections: int) -> Message:
    """The worker on channel ``worker`` is alive and serves ``connections`` connections."""
    return {**worker_hello(worker, name, capacity, connections), "type": WORKER_HEARTBEAT}


def worker_leaving(worker: str) -> Message:
    """The worker on channel ``worker`` stops: no new connections for it."""
    return _build(WORKER_LEAVING, worker=worker)


def worker_event(
    connection: str,
    epoch: int,
    seq: int,
    event: dict[str, Any],
    *,
    movable: bool | None = None,
) -> Message:
    """One consumer event for the socket; ``movable`` goes with ``websocket.accept``."""
    extra = {} if movable is None else {"movable": movable}
    return _build(WORKER_EVENT, connection=connection, epoch=epoch, seq=seq, event=event, **extra)


def worker_ack(connection: str, epoch: int, seq: int) -> Message:
    """The consumer read every client event up to ``seq``."""
    return _build(WORKER_ACK, connection=connection, epoch=epoch, seq=seq)


def worker_failed(connection: str, epoch: int, seq: int, error: str) -> Message:
    """The consumer raised ``error`` (a line for the log, not a traceback)."""
    return _build(WORKER_FAILED, connection=connection, epoch=epoch, seq=seq, error=error)


def worker_done(connection: str, epoch: int, seq: int) -> Message:
    """The consumer returned."""
    return _build(WORKER_DONE, connection=connection, epoch=epoch, seq=seq)


def worker_release(
    connection: str, epoch: int, *, sent: int, acked: int, movable: bool = True
) -> Message:
    """The stopping worker hands ``connection`` back to its gateway."""
    return _build(
        WORKER_RELEASE,
        connection=connection,
        epoch=epoch,
        sent=sent,
        acked=acked,
        movable=movable,
    )
