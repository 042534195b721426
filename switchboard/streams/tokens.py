"""Stream tokens: a stream name signed by the server, so a browser may subscribe to exactly it.

A token is ``django.core.signing.dumps(payload, salt="switchboard.streams")``: signed with
``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` still verify, so keys can be rotated) and stamped with
the time it was made. The payload is a JSON object:

``"s"``
    the stream name;
``"u"`` (optional)
    the primary key of the one user who may use it;
``"e"`` (optional)
    its lifetime in seconds, counted from the stamp (checked with signing's ``max_age``).

The token is signed, not encrypted: whoever holds it can read the stream name and the user's
key (base64 JSON), so don't put secrets in stream names. Expiry is checked when a token is
used to subscribe; a subscription already running is not cut when its token expires.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core import signing

from switchboard.streams.names import InvalidStreamName, validate_stream_name

__all__ = [
    "SALT",
    "StreamTokenError",
    "signed_stream_name",
    "stream_for",
    "verify_stream_token",
]

SALT = "switchboard.streams"
# Far more than any honest token (a 200-character name, a user key, a lifetime).
MAX_TOKEN_LENGTH = 2000

_MESSAGES = {
    "forged": "stream token invalid (forged, mangled or signed with another key)",
    "expired": "stream token expired",
    "user": "stream token belongs to another user",
}


class StreamTokenError(Exception):
    """A token that may not be used. ``reason``: ``"forged"`` (bad signature or payload),
    ``"expired"`` or ``"user"`` (bound to another user, or to a user while nobody is logged
    in); ``str(error)`` is a sentence for people. (The consumer adds ``"refused"`` when its
    ``stream_allowed`` hook says no.)"""

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or _MESSAGES[reason])


def _user_key(user: Any) -> Any:
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        raise ValueError("a stream can only be bound to a logged-in user (got an anonymous one)")
    pk = user.pk
    return pk if isinstance(pk, (int, str)) and not isinstance(pk, bool) else str(pk)


def _seconds(expires: float | timedelta) -> float:
    seconds = expires.total_seconds() if isinstance(expires, timedelta) else float(expires)
    if not seconds > 0:
        raise ValueError(f"expires must be a positive number of seconds, not {expires!r}")
    return seconds


def signed_stream_name(
    name: str, *, user: Any = None, expires: float | timedelta | None = None
) -> str:
    """A token for stream ``name``: usable by anyone, or by ``user`` only when given (an
    authenticated user; :class:`ValueError` for an anonymous one), for ``expires`` seconds
    when given (else until ``SECRET_KEY`` changes)."""
    payload: dict[str, Any] = {"s": validate_stream_name(name)}
    if user is not None:
        payload["u"] = _user_key(user)
    if expires is not None:
        seconds = _seconds(expires)
        payload["e"] = int(seconds) if seconds.is_integer() else seconds
    return signing.dumps(payload, salt=SALT)


def verify_stream_token(token: Any, *, user: Any = None) -> str:
    """The stream name in ``token`` if ``user`` (the connection's user; None or anonymous
    for nobody) may use it now, else :class:`StreamTokenError`."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise StreamTokenError("forged")
    try:
        payload = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        raise StreamTokenError("forged") from None
    name, bound, lifetime = _parse(payload)
    if lifetime is not None:
        try:
            signing.loads(token, salt=SALT, max_age=lifetime)
        except signing.SignatureExpired:
            raise StreamTokenError("expired") from None
    if bound is not None:
        authenticated = user is not None and getattr(user, "is_authenticated", False)
        if not authenticated:
            raise StreamTokenError("user", "stream token belongs to a user: log in to use it")
        if str(user.pk) != str(bound):
            raise StreamTokenError("user")
    return name


def _parse(payload: Any) -> tuple[str, Any, float | None]:
    # Only this module signs with the salt, so a bad shape means a key shared with code
    # signing something else: refused as forged all the same.
    if not isinstance(payload, dict):
        raise StreamTokenError("forged")
    try:
        name = validate_stream_name(payload.get("s"))
    except InvalidStreamName:
        raise StreamTokenError("forged") from None
    lifetime = payload.get("e")
    if lifetime is not None and (
        isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0
    ):
        raise StreamTokenError("forged")
    return name, payload.get("u"), lifetime


def stream_for(user: Any, name: str) -> str:
    """The name of ``user``'s own stream ``name``: ``f"{name}.user.{user.pk}"``. Sign it
    bound to the user (``signed_stream_name(stream_for(u, "inbox"), user=u)``) so that only
    they can subscribe; publish to the same name."""
    return validate_stream_name(f"{validate_stream_name(name)}.user.{_user_key(user)}")
