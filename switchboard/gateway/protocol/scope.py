"""An ASGI WebSocket scope packed to cross the channel layer, and unpacked on the worker.

The gateway builds the scope exactly as the server does in-process; the worker's consumer must
see the same scope, so its routing, middleware (cookies, sessions, ``AuthMiddlewareStack``) and
``connect`` behave as they would in the gateway's process. What crosses the layer is plain data
(:mod:`switchboard.layers.codec`): ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``,
lists and dicts with ``str`` keys. So :func:`pack_scope`:

- turns tuples into lists, and :func:`unpack_scope` turns back the ones ASGI says are tuples:
  ``client`` and ``server`` (host, port) and each ``headers`` pair;
- drops what cannot travel, and says what it dropped (:attr:`PackedScope.dropped`, dotted
  paths such as ``"extensions.some.ext"``), never converting a value into something else:
  ``state`` always (lifespan state is one process's own objects; workers do not run the
  application's lifespan), and any entry holding a value that is not plain data (an object
  in ``extensions``, something a middleware put in the scope): the smallest dict entry that
  holds it goes, so its neighbours still travel. Only exact types count: a ``str`` subclass
  or an ``IntEnum`` would arrive as a different type, so it is dropped, not mangled.
- refuses (:class:`ScopeNotPortable`) a scope whose ``type``, ``path`` or ``headers`` cannot
  travel, as no worker could serve it.

Resumed connections: :func:`unpack_scope` adds ``scope["switchboard"]["resumed"]`` (see
:data:`RESUMED`). It is ``False`` when the consumer's ``connect`` is the connection's first, and
``True`` when the connection moved to this worker from another one (a deploy, a crash): the
client has been connected all along and never sees this connect's accept, so ``connect``
re-joins its groups and rebuilds its state from the scope, and must not greet the client as
new. A scope served in-process has no ``"switchboard"`` key; :func:`is_resumed` reads the flag
either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "BUSY",
    "CONNECTION",
    "RESUMED",
    "SWITCHBOARD_KEY",
    "PackedScope",
    "ScopeNotPortable",
    "is_resumed",
    "pack_scope",
    "report_busy",
    "unpack_scope",
]

# scope[SWITCHBOARD_KEY][RESUMED]: Switchboard's own entries live under one key of their own,
# so they never collide with a key ASGI or another server may add later.
SWITCHBOARD_KEY = "switchboard"
RESUMED = "resumed"
BUSY = "busy"
# On a worker: the connection's id, the same on every worker it moves to.
CONNECTION = "connection"

# Never sent: lifespan state is shared mutable objects of the gateway's process.
NEVER_SENT = frozenset(("state",))
# Without these no worker can route or serve the connection (ASGI's required websocket keys).
REQUIRED = ("type", "path", "headers")
# ASGI's 2-tuples, which msgpack carries as lists.
ADDRESS_KEYS = ("client", "server")

_SCALARS = frozenset((type(None), bool, int, float, str, bytes))
_INT_RANGE = (-(2**63), 2**64 - 1)  # what msgpack carries
_MISSING = object()


class ScopeNotPortable(ValueError):
    """A scope key no worker can do without could not be packed; ``key`` names it."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"The WebSocket scope cannot go to a worker: {key!r} {why}")
        self.key = key


class PackedScope(NamedTuple):
    """A scope ready for the layer, and the dotted paths of what was left out of it."""

    scope: dict[str, Any]
    dropped: list[str]


def _plain(value: Any) -> Any:
    """``value`` as plain data (tuples as lists), or ``_MISSING`` if any part of it is not."""
    kind = type(value)
    if kind in _SCALARS:
        if kind is int and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return _MISSING
        return value
    if kind is list or kind is tuple:
        items = [_plain(item) for item in value]
        return _MISSING if any(item is _MISSING for item in items) else items
    if kind is dict:
        return _plain_dict(value, "", None)
    return _MISSING


def _plain_dict(value: dict[Any, Any], path: str, dropped: list[str] | None) -> Any:
    """A dict's plain entries. With ``dropped`` (a list to report into) an entry that cannot
    travel is left out and reported; without it the whole dict cannot travel."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str:
            if dropped is None:
                return _MISSING
            dropped.append(f"{path}{key!r}")
            continue
        where = f"{path}{key}"
        if type(item) is dict:
            packed = _plain_dict(item, f"{where}.", dropped)
        else:
            packed = _plain(item)
        if packed is _MISSING:
            if dropped is None:
                return _MISSING
            dropped.append(where)
            continue
        out[key] = packed
    return out


def pack_scope(scope: dict[str, Any]) -> PackedScope:
    """``scope`` as plain data for ``gateway.connect``, and what was dropped (see the module
    docs). The scope itself is not changed."""
    dropped: list[str] = []
    sendable = {key: value for key, value in scope.items() if key not in NEVER_SENT}
    dropped.extend(key for key in scope if key in NEVER_SENT)
    packed = _plain_dict(sendable, "", dropped)
    for key in REQUIRED:
        if key not in scope:
            raise ScopeNotPortable(key, "is missing")
        if key not in packed:
            raise ScopeNotPortable(key, f"holds a value that cannot travel: {scope[key]!r:.60}")
    if packed["type"] != "websocket":
        raise ScopeNotPortable("type", f"is {packed['type']!r}, not 'websocket'")
    return PackedScope(packed, dropped)


def unpack_scope(packed: dict[str, Any], *, resumed: bool) -> dict[str, Any]:
    """The scope a worker's consumer gets from a packed one: ASGI's tuples restored, and
    ``scope["switchboard"]["resumed"]`` set. ``packed`` is not changed."""
    scope = dict(packed)
    for key in ADDRESS_KEYS:
        address = scope.get(key)
        if type(address) is list:
            scope[key] = tuple(address)
    headers = scope.get("headers")
    if type(headers) is list:
        scope["headers"] = [tuple(pair) for pair in headers]
    own = scope.get(SWITCHBOARD_KEY)
    scope[SWITCHBOARD_KEY] = {**(own if type(own) is dict else {}), RESUMED: resumed}
    return scope


def report_busy(scope: dict[str, Any]) -> Callable[[Callable[[], bool]], None] | None:
    """Where a consumer that handles messages concurrently says how to tell it is busy, on a
    worker (None elsewhere): ``scope["switchboard"]["busy"]``, a callable. The worker reads
    it before it moves the connection, as waiting in ``receive`` does not mean idle then."""
    own = scope.get(SWITCHBOARD_KEY)
    if type(own) is not dict or RESUMED not in own:
        return None
    return lambda busy: own.__setitem__(BUSY, busy)


def is_resumed(scope: dict[str, Any]) -> bool:
    """Whether this connect is a connection moving here from another worker (False for a new
    connection, and for any scope served in-process)."""
    own = scope.get(SWITCHBOARD_KEY)
    return type(own) is dict and own.get(RESUMED) is True
