"""Channels 1's session and ordering decorators for consumers of ASGI 1 messages.

- :func:`channel_session`: a Django session that lives as long as a connection, keyed by the
  message's reply channel, at ``message.channel_session``; saved after the consumer returns.
- :func:`http_session`: the visitor's own Django session, found from the connect message's
  cookie (or a ``session_key`` query parameter), at ``message.http_session``; None if none.
- :func:`channel_and_http_session`: both, the HTTP session's key kept in the channel session
  at connect so the connection's later messages (which carry no cookies) find it too.
- :func:`enforce_ordering`: a connection's messages run in their ``order`` (strict), or only
  ``websocket.connect`` first (``slight=True``); a message that is early raises
  :class:`~switchboard.exceptions.ConsumeLater`, so the worker puts it back on its channel.

The channel session's key is derived from the reply channel name by
:func:`channel_session_key`: ``"ch"`` and the first 30 hex digits of an HMAC-SHA256 of the
name keyed by ``SECRET_KEY`` (32 characters of ``[a-z0-9]``, like Django's own keys). Every
worker of a project finds the same session for a connection, and someone who learns a reply
channel name still cannot present that session as a cookie. The engine is
``CHANNEL_SESSION_ENGINE``, else ``SESSION_ENGINE`` (not the signed-cookie one: there is no
cookie to carry it).

Nothing here reads settings at import: decorating a consumer does not either.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from types import ModuleType
from typing import Any, TypeVar, overload
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.http import parse_cookie
from django.utils.crypto import salted_hmac

from switchboard.classic.held import send_held_now
from switchboard.exceptions import ConsumeLater

__all__ = [
    "HTTP_SESSION_KEY",
    "NEXT_ORDER_KEY",
    "channel_and_http_session",
    "channel_session",
    "channel_session_key",
    "enforce_ordering",
    "http_session",
    "open_channel_session",
    "open_http_session",
    "session_for_reply_channel",
]

logger = logging.getLogger("switchboard.worker")

F = TypeVar("F", bound=Callable[..., Any])

# What the decorators keep in a channel session (names fixed: the worker and generic consumers
# may read them). The next ``order`` expected on the connection; 1 once websocket.connect ran.
NEXT_ORDER_KEY = "__channels_next_order"
# The HTTP session key seen at websocket.connect, kept by channel_and_http_session.
HTTP_SESSION_KEY = "__channels_http_session_key"

CONNECT = "websocket.connect"
_KEY_SALT = "switchboard.classic.sessions.channel_session_key"


def consumer_name(func: Any) -> str:
    """How errors name a consumer: its qualified name, or its repr."""
    return getattr(func, "__qualname__", None) or repr(func)


def channel_session_key(reply_channel: str) -> str:
    """The session key of ``reply_channel``'s channel session (see the module docs)."""
    digest = salted_hmac(_KEY_SALT, reply_channel, algorithm="sha256").hexdigest()
    return "ch" + digest[:30]


def _channel_engine() -> ModuleType:
    path = getattr(settings, "CHANNEL_SESSION_ENGINE", None) or settings.SESSION_ENGINE
    engine = import_module(path)
    from django.contrib.sessions.backends import signed_cookies

    if issubclass(engine.SessionStore, signed_cookies.SessionStore):
        raise ValueError(
            f"Channel sessions cannot use the signed-cookie session engine ({path}): a "
            "connection has no cookie to keep them in. Set CHANNEL_SESSION_ENGINE to a "
            "server-side engine (db, cache, cached_db or file)."
        )
    return engine


def _loaded(engine: ModuleType, key: str) -> SessionBase:
    store = engine.SessionStore(session_key=key)
    store.keys()  # load now: engines forget a key (session_key None) with nothing under it
    return store


def session_for_reply_channel(reply_channel: str) -> SessionBase:
    """The channel session of ``reply_channel``, created (empty, saved) if it is new."""
    engine = _channel_engine()
    key = channel_session_key(reply_channel)
    store = _loaded(engine, key)
    if store.session_key is not None:
        return store
    # Keep our key rather than let the engine pick a random one, and write it at once so a
    # later save() updates it.
    store._session_key = key  # the key setter Django's engines use themselves
    try:
        store.save(must_create=True)
    except CreateError:
        # Taken since we looked: another message of this connection created it. Or an expired
        # session is in the way (not loadable, not creatable): overwrite that one.
        again = _loaded(engine, key)
        if again.session_key is not None:
            return again
        store.save()
    return store


def _save(session: SessionBase, key: str) -> None:
    if session.session_key != key:
        return  # flush() or cycle_key() inside the consumer: that session is gone from our key
    try:
        session.save()
    except UpdateError:
        session.save(must_create=True)  # it expired and was cleared meanwhile


@contextmanager
def open_channel_session(message: Any, consumer: Any) -> Iterator[SessionBase]:
    """``message.channel_session`` for the block; saved after it if modified and the block
    did not raise. Inside a block that already opened it, the outer one saves."""
    existing = getattr(message, "channel_session", None)
    if existing is not None:
        yield existing
        return
    reply = getattr(message, "reply_channel", None)
    if reply is None:
        raise ValueError(
            f"{consumer_name(consumer)} uses a channel session, but the message it got on "
            f"{message.channel.name!r} has no reply_channel; channel sessions only exist for "
            "messages of a connection (websocket.*, http.request)."
        )
    key = channel_session_key(reply.name)
    session = session_for_reply_channel(reply.name)
    message.channel_session = session
    yield session
    if session.modified:
        _save(session, key)


def channel_session(func: F) -> F:
    """Gives the consumer ``message.channel_session``, one per reply channel, kept between
    the connection's messages; saved after the consumer returns if it changed."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        with open_channel_session(message, func):
            return func(message, *args, **kwargs)

    return inner  # type: ignore[return-value]


# -- the HTTP session -----------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)


def http_session_key_of(content: dict[str, Any]) -> str | None:
    """The HTTP session key a message names: its ``session_key`` query parameter, else its
    session cookie (``SESSION_COOKIE_NAME``); None if neither."""
    query = content.get("query_string")
    if query:
        found = parse_qs(_text(query)).get("session_key")
        if found and found[0]:
            return found[0]
    cookies = "; ".join(
        _text(value)
        for name, value in content.get("headers") or ()
        if _text(name).lower() == "cookie"
    )
    if not cookies:
        return None
    return parse_cookie(cookies).get(settings.SESSION_COOKIE_NAME) or None


def _http_session(key: str | None) -> SessionBase | None:
    if not key:
        return None
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)


@contextmanager
def open_http_session(message: Any) -> Iterator[SessionBase | None]:
    """``message.http_session`` for the block: the session the message's cookie or
    ``session_key`` names, or None. Never creates one; changes to one that exists are saved
    after the block if it did not raise (as Channels 1 did)."""
    if hasattr(message, "http_session"):
        yield message.http_session
        return
    session = _http_session(http_session_key_of(message.content))
    message.http_session = session
    yield session
    _save_http(session)


def _save_http(session: SessionBase | None) -> None:
    # A key with no session behind it loads as a new session (key None): saving that would
    # make a session nobody's cookie names, so only an existing one is written.
    if session is not None and session.modified and session.session_key is not None:
        session.save()


def http_session(func: F) -> F:
    """Gives the consumer ``message.http_session``: the Django session of the cookie (or the
    ``session_key`` query parameter) in a connect or request message, or None."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        with open_http_session(message):
            return func(message, *args, **kwargs)

    return inner  # type: ignore[return-value]


@contextmanager
def open_channel_and_http_session(message: Any, consumer: Any) -> Iterator[SessionBase]:
    """Both sessions for the block. At connect (a message with headers) the HTTP session's
    key goes into the channel session; on later messages the HTTP session comes from it."""
    with open_http_session(message) as http, open_channel_session(message, consumer) as channel:
        if http is not None:
            if http.session_key and channel.get(HTTP_SESSION_KEY) != http.session_key:
                channel[HTTP_SESSION_KEY] = http.session_key
        elif channel.get(HTTP_SESSION_KEY):
            restored = _http_session(channel[HTTP_SESSION_KEY])
            message.http_session = restored
            yield channel
            _save_http(restored)
            return
        yield channel


def channel_and_http_session(func: F) -> F:
    """Gives the consumer both ``message.channel_session`` and ``message.http_session``,
    the latter on every message of the connection (its key is kept at connect)."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        with open_channel_and_http_session(message, func):
            return func(message, *args, **kwargs)

    return inner  # type: ignore[return-value]


# -- ordering -------------------------------------------------------------------------------


def _advance_after_failure(message: Any, next_order: int) -> None:
    # The consumer raised: its session changes are dropped, but the connection must not wait
    # for a message that will never run again, so only the counter is written. What it sent
    # before it raised goes first (the worker would send it, but after the next one could run).
    with contextlib.suppress(Exception):
        send_held_now()
    fresh = session_for_reply_channel(message.reply_channel.name)
    fresh[NEXT_ORDER_KEY] = max(next_order, int(fresh.get(NEXT_ORDER_KEY, 0)))
    _save(fresh, channel_session_key(message.reply_channel.name))


def _run_in_turn(
    message: Any, session: SessionBase, consumer: Any, next_order: int, call: Callable[[], Any]
) -> Any:
    try:
        result = call()
    except ConsumeLater:
        raise  # it comes back: its turn is not over
    except Exception:
        _advance_after_failure(message, next_order)
        raise
    # Its sends go out before the session lets the next message run: held until the worker
    # flushes them, they could follow the next message's (another thread, another worker).
    send_held_now()
    session[NEXT_ORDER_KEY] = max(next_order, int(session.get(NEXT_ORDER_KEY, 0)))
    return result


def _order_of(message: Any, consumer: Any) -> int:
    if "order" not in message.content:
        raise ValueError(
            f"{consumer_name(consumer)} enforces ordering, but the message it got on "
            f"{message.channel.name!r} has no 'order'."
        )
    try:
        return int(message.content["order"])
    except (TypeError, ValueError):
        raise ValueError(
            f"{consumer_name(consumer)} enforces ordering, but the message it got on "
            f"{message.channel.name!r} has an order that is not a number: "
            f"{message.content['order']!r}"
        ) from None


def _strict(message: Any, session: SessionBase, consumer: Any, call: Callable[[], Any]) -> Any:
    order = _order_of(message, consumer)
    expected = int(session.get(NEXT_ORDER_KEY, 0))
    if order > expected:
        logger.debug("Message %d on %s is early (next is %d)", order, message.channel, expected)
        raise ConsumeLater()
    if order < expected:
        # Its turn has passed (it already ran: a redelivered copy). Running it again would
        # break the order the decorator promises.
        logger.warning(
            "Dropped message %d on %r for %s: the connection is already at %d",
            order,
            message.channel.name,
            message.reply_channel.name,
            expected,
        )
        return None
    return _run_in_turn(message, session, consumer, order + 1, call)


def _slight(message: Any, session: SessionBase, consumer: Any, call: Callable[[], Any]) -> Any:
    if message.channel.name == CONNECT:
        return _run_in_turn(message, session, consumer, 1, call)
    if int(session.get(NEXT_ORDER_KEY, 0)) < 1:
        logger.debug("A message on %s came before its connect ran", message.channel)
        raise ConsumeLater()
    return call()


@overload
def enforce_ordering(func: F, slight: bool = False) -> F: ...


@overload
def enforce_ordering(func: None = None, slight: bool = False) -> Callable[[F], F]: ...


def enforce_ordering(func: F | None = None, slight: bool = False) -> F | Callable[[F], F]:
    """Runs a connection's messages in order: ``@enforce_ordering`` (strict) or
    ``@enforce_ordering(slight=True)``.

    Strict: a message runs only when its ``order`` is the next one the connection expects
    (kept in the channel session under :data:`NEXT_ORDER_KEY`, 0 at first, ``order + 1``
    after each message ran, also when its consumer raised); an early one raises
    ``ConsumeLater``; one whose turn has passed (a copy) is dropped. Slight: only
    ``websocket.connect`` must run first (:data:`NEXT_ORDER_KEY` is 1 after it); other
    messages before that raise ``ConsumeLater``, after it they run as they come.
    What a message in turn sent goes out before the session lets the next one run (not when
    the worker would send it), so the sends keep the order too. Implies
    :func:`channel_session`.
    """

    def decorate(consumer: F) -> F:
        check = _slight if slight else _strict

        @functools.wraps(consumer)
        def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
            with open_channel_session(message, consumer) as session:
                return check(message, session, consumer, lambda: consumer(message, *args, **kwargs))

        return inner  # type: ignore[return-value]

    if func is not None:
        return decorate(func)
    return decorate
