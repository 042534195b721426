"""Channels 1's user decorators: ``message.user`` from the HTTP or the channel session.

A user is logged in over HTTP (Django's ``login()`` in a view puts ``SESSION_KEY``,
``BACKEND_SESSION_KEY`` and ``HASH_SESSION_KEY`` in the visitor's session). A WebSocket
consumer reads it from there at connect (:func:`http_session_user`), or copies it into the
connection's channel session at connect (:func:`channel_session_user_from_http`) so that the
connection's later messages, which carry no cookies, know it too (:func:`channel_session_user`).

The user is found the way Django's ``get_user`` finds it (the backend named in the session,
the session's auth hash checked against the user's, ``SECRET_KEY_FALLBACKS`` included), with
one difference: a session that no longer proves its user (password changed) gives an
``AnonymousUser`` but is left as it is. Django would flush it, which for a channel session
would cut it loose from its connection; the next HTTP request flushes the HTTP one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.utils.crypto import constant_time_compare

from switchboard.classic.sessions import (
    open_channel_and_http_session,
    open_channel_session,
    open_http_session,
)

__all__ = [
    "channel_and_http_session_user_from_http",
    "channel_session_user",
    "channel_session_user_from_http",
    "http_session_user",
    "transfer_user",
    "user_in_session",
]

F = TypeVar("F", bound=Callable[..., Any])

_AUTH_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)


def _anonymous() -> Any:
    # The models module needs the app registry: imported on first use, not at import.
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


def user_in_session(session: SessionBase | None) -> Any:
    """The user ``session`` is logged in as, or an AnonymousUser. Never changes the session."""
    if session is None:
        return _anonymous()
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError):
        return _anonymous()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return _anonymous()
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return _anonymous()
    if hasattr(user, "get_session_auth_hash") and not _hash_matches(
        user, session.get(HASH_SESSION_KEY)
    ):
        return _anonymous()
    return user


def _hash_matches(user: Any, stored: str | None) -> bool:
    if not stored:
        return False
    if constant_time_compare(stored, user.get_session_auth_hash()):
        return True
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    return fallbacks is not None and any(constant_time_compare(stored, h) for h in fallbacks())


def transfer_user(from_session: SessionBase, to_session: SessionBase) -> None:
    """Logs ``to_session`` in as the user ``from_session`` is logged in as (the three auth
    keys Django's ``login()`` writes are copied). Does nothing if ``from_session`` has no
    user."""
    if SESSION_KEY not in from_session or BACKEND_SESSION_KEY not in from_session:
        return
    for key in _AUTH_KEYS:
        if key in from_session:
            to_session[key] = from_session[key]
        else:
            to_session.pop(key, None)


def _log_out(session: SessionBase) -> None:
    for key in _AUTH_KEYS:
        if key in session:
            del session[key]


def _carries_handshake(message: Any) -> bool:
    # websocket.connect (and http.request) carry the client's headers; later messages do not.
    return "headers" in message.content


def _connect_user(message: Any, channel: SessionBase) -> None:
    # At connect: the HTTP session's user, who then owns the channel session (nobody does
    # when the visitor is not logged in, so nothing stays from an earlier user).
    message.user = user_in_session(message.http_session)
    if message.user.is_authenticated:
        transfer_user(message.http_session, channel)
    else:
        _log_out(channel)


def http_session_user(func: F) -> F:
    """Gives the consumer ``message.http_session`` and ``message.user``, the user of that
    session (an AnonymousUser without one)."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        with open_http_session(message) as session:
            message.user = user_in_session(session)
            return func(message, *args, **kwargs)

    return inner  # type: ignore[return-value]


def channel_session_user(func: F) -> F:
    """Gives the consumer ``message.channel_session`` and ``message.user``, the user the
    channel session was logged in as (by :func:`channel_session_user_from_http`)."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        with open_channel_session(message, func) as session:
            message.user = user_in_session(session)
            return func(message, *args, **kwargs)

    return inner  # type: ignore[return-value]


@contextmanager
def _user_from_http(message: Any, consumer: Any) -> Iterator[None]:
    with open_channel_session(message, consumer) as channel:
        if _carries_handshake(message):
            with open_http_session(message):
                _connect_user(message, channel)
                yield
        else:
            message.user = user_in_session(channel)
            yield


def channel_session_user_from_http(func: F) -> F:
    """For the connect consumer: ``message.user`` from the HTTP session, copied into the
    channel session (``message.http_session`` is there too). On messages without headers it
    acts as :func:`channel_session_user`."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        with _user_from_http(message, func):
            return func(message, *args, **kwargs)

    return inner  # type: ignore[return-value]


def channel_and_http_session_user_from_http(func: F) -> F:
    """As :func:`channel_and_http_session` (both sessions on every message of the
    connection), with the HTTP user copied into the channel session at connect;
    ``message.user`` is the HTTP session's user at connect, the channel session's after."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        with open_channel_and_http_session(message, func) as channel:
            if _carries_handshake(message):
                _connect_user(message, channel)
            else:
                message.user = user_in_session(channel)
            return func(message, *args, **kwargs)

    return inner  # type: ignore[return-value]
