"""Django authentication for ASGI scopes: scope["user"], login() and logout()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    _get_backends,
    get_user_model,
    load_backend,
    user_logged_in,
    user_logged_out,
)
from django.middleware.csrf import CSRF_SESSION_KEY, _get_new_csrf_string
from django.utils.crypto import constant_time_compare
from django.utils.functional import LazyObject, empty

# Channels 1's decorators, at their Channels 1 path (switchboard.auth).
from switchboard.classic.auth import (  # noqa: F401
    channel_and_http_session_user_from_http,
    channel_session_user,
    channel_session_user_from_http,
    http_session_user,
    transfer_user,
)
from switchboard.db import database_sync_to_async
from switchboard.middleware import ASGIApp, BaseMiddleware
from switchboard.sessions import CookieMiddleware, SessionMiddleware


def _anonymous() -> Any:
    # Imported on first use: the models module needs the app registry, and a project's
    # asgi.py imports this module before get_asgi_application() has set Django up.
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


def __getattr__(name: str) -> Any:
    # ``switchboard.auth.AnonymousUser`` stays Django's class (isinstance works), loaded lazily.
    if name == "AnonymousUser":
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _session_of(scope: dict[str, Any], action: str) -> Any:
    session = scope.get("session")
    if session is None:
        raise ValueError(
            f"Cannot {action} without a session in scope - wrap the application in "
            "SessionMiddleware (or use AuthMiddlewareStack)."
        )
    return session


def _get_user_sync(scope: dict[str, Any]) -> Any:
    # Same decisions as django.contrib.auth.get_user, reading the scope's session.
    session = _session_of(scope, "find the user")
    user = None
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return _anonymous()
    if backend_path in settings.AUTHENTICATION_BACKENDS:
        backend = load_backend(backend_path)
        user = backend.get_user(user_id)
        if user is not None and hasattr(user, "get_session_auth_hash"):
            stored = session.get(HASH_SESSION_KEY)
            if not stored or not _session_hash_matches(user, stored):
                session.flush()
                user = None
    return user or _anonymous()


def _session_hash_matches(user: Any, stored: str) -> bool:
    if constant_time_compare(stored, user.get_session_auth_hash()):
        return True
    # Hashes made with an older SECRET_KEY stay valid while it is listed as a fallback.
    fallback = getattr(user, "get_session_auth_fallback_hash", None)
    if fallback is None:
        return False
    return any(constant_time_compare(stored, h) for h in fallback())


async def get_user(scope: dict[str, Any]) -> Any:
    """The user the scope's session belongs to, or an AnonymousUser."""
    return await database_sync_to_async(_get_user_sync)(scope)


def _login_sync(scope: dict[str, Any], user: Any, backend: Any | None) -> None:
    session = _session_of(scope, "log in")
    if user is None:
        user = scope.get("user")
    if user is None:
        raise ValueError("login() needs a user, either passed in or already at scope['user']")
    session_auth_hash = ""
    if hasattr(user, "get_session_auth_hash"):
        session_auth_hash = user.get_session_auth_hash()
    if SESSION_KEY in session:
        if user._meta.pk.to_python(session[SESSION_KEY]) != user.pk or (
            session_auth_hash
            and not constant_time_compare(session.get(HASH_SESSION_KEY, ""), session_auth_hash)
        ):
            # Another user's session (or a stale one): never let data carry over.
            session.flush()
    else:
        session.cycle_key()  # defeat session fixation
    backend = _resolve_backend(user, backend)
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = backend
    session[HASH_SESSION_KEY] = session_auth_hash
    scope["user"] = user
    # A new login gets a new CSRF secret, as Django's rotate_token does. Over ASGI the
    # only place we can reach it is the session (CSRF_USE_SESSIONS).
    if CSRF_SESSION_KEY in session:
        session[CSRF_SESSION_KEY] = _get_new_csrf_string()
    user_logged_in.send(sender=user.__class__, request=None, user=user)


def _resolve_backend(user: Any, backend: Any | None) -> str:
    if backend is not None:
        if not isinstance(backend, str):
            backend = f"{backend.__module__}.{backend.__qualname__}"
        return backend
    if hasattr(user, "backend"):
        return user.backend
    backends = _get_backends(return_tuples=True)
    if len(backends) == 1:
        return backends[0][1]
    raise ValueError(
        "You have multiple authentication backends configured and therefore must "
        "provide the `backend` argument or set the `backend` attribute on the user."
    )


async def login(scope: dict[str, Any], user: Any, backend: Any | None = None) -> None:
    """Logs ``user`` into the scope's session and sets ``scope["user"]``.

    Does not save the session: the caller does (``await database_sync_to_async(
    scope["session"].save)()``), since only it knows when the change is complete.
    """
    await database_sync_to_async(_login_sync)(scope, user, backend)


def _logout_sync(scope: dict[str, Any]) -> None:
    user = scope.get("user")
    if user is not None and hasattr(user, "is_authenticated") and not user.is_authenticated:
        user = None
    session = scope.get("session")
    if user is None and (session is None or SESSION_KEY not in session):
        # Nobody is logged in, in the scope or in the session: nothing to undo. No signal
        # without a user to report, and an anonymous session's data stays.
        return
    session = _session_of(scope, "log out")
    if user is not None:
        user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    scope["user"] = _anonymous()


async def logout(scope: dict[str, Any]) -> None:
    """Logs out whoever is logged in: flushes the scope's session, sets an AnonymousUser.

    With nobody logged in it does nothing (and, like Django's ``logout()``, raises nothing).
    """
    await database_sync_to_async(_logout_sync)(scope)


class UserLazyObject(LazyObject):
    """Stands in for the user until ``resolve_scope`` fills it in."""

    def _setup(self) -> None:
        raise ValueError("Accessing scope['user'] before it is ready - await resolve_scope().")


class AuthMiddleware(BaseMiddleware):
    """Puts the session's user at ``scope["user"]``; needs SessionMiddleware outside it."""

    def populate_scope(self, scope: dict[str, Any]) -> None:
        if "session" not in scope:
            raise ValueError(
                "AuthMiddleware cannot find a session in scope - it must be wrapped "
                "in SessionMiddleware (AuthMiddlewareStack does both)."
            )
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        user = scope["user"]
        # Only fill in our own placeholder; a user set by an outer layer is kept.
        if isinstance(user, UserLazyObject) and user._wrapped is empty:
            user._wrapped = await get_user(scope)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> Any:
        scope = dict(scope)
        self.populate_scope(scope)
        await self.resolve_scope(scope)
        return await self.inner(scope, receive, send)


def AuthMiddlewareStack(inner: ASGIApp) -> CookieMiddleware:  # noqa: N802
    """Cookies, sessions and the user, in the order they depend on each other."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
