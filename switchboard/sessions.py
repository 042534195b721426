"""Cookie parsing and Django sessions for ASGI scopes."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.core.exceptions import SuspiciousOperation
from django.http import parse_cookie
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.functional import LazyObject, empty
from django.utils.http import http_date

# Channels 1's decorators, at their Channels 1 path (switchboard.sessions).
from switchboard.classic.sessions import (  # noqa: F401
    channel_and_http_session,
    channel_session,
    enforce_ordering,
    http_session,
    session_for_reply_channel,
)
from switchboard.integration import checks  # noqa: F401 - registers the checks even if the app is not installed
from switchboard.middleware import ASGIApp, BaseMiddleware


class CookieMiddleware(BaseMiddleware):
    """Parses the Cookie header into ``scope["cookies"]`` (a dict of str to str)."""

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> Any:
        if "headers" not in scope:
            raise ValueError("CookieMiddleware needs a scope with headers (http or websocket)")
        # Several Cookie headers are legal over HTTP/2; join them like one header.
        raw = "; ".join(
            value.decode("latin1") for name, value in scope["headers"] if name == b"cookie"
        )
        scope = dict(scope, cookies=parse_cookie(raw))
        return await self.inner(scope, receive, send)

    @classmethod
    def set_cookie(
        cls,
        message: dict[str, Any],
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: str | datetime.datetime | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        """Adds a Set-Cookie header to an ``http.response.start`` message, in place."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if isinstance(expires, datetime.datetime):
            # Turn an absolute date into max_age so both attributes agree.
            if timezone.is_naive(expires):
                expires = timezone.make_aware(expires, datetime.UTC)
            remaining = (expires - timezone.now()).total_seconds()
            max_age, expires = max(0, int(remaining) + 1), None
        if expires is not None:
            morsel["expires"] = expires
        if max_age is not None:
            morsel["max-age"] = int(max_age)
            if expires is None:
                morsel["expires"] = http_date(time.time() + int(max_age))
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite:
            if samesite.lower() not in ("lax", "none", "strict"):
                raise ValueError('samesite must be "lax", "none", or "strict".')
            morsel["samesite"] = samesite
        headers = list(message.get("headers", ()))
        headers.append((b"Set-Cookie", morsel.OutputString().encode("latin1")))
        message["headers"] = headers

    @classmethod
    def delete_cookie(
        cls, message: dict[str, Any], key: str, path: str = "/", domain: str | None = None
    ) -> None:
        """Adds a Set-Cookie header that expires ``key`` immediately."""
        cls.set_cookie(
            message,
            key,
            max_age=0,
            path=path,
            domain=domain,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
        )


class _LazySession(LazyObject):
    """Builds the SessionStore only when something touches ``scope["session"]``."""

    def __init__(self, engine: Any, session_key: str | None) -> None:
        super().__init__()
        self.__dict__["_engine"] = engine
        self.__dict__["_session_key_in"] = session_key

    def _setup(self) -> None:
        self._wrapped = self.__dict__["_engine"].SessionStore(self.__dict__["_session_key_in"])


class SessionMiddleware(BaseMiddleware):
    """Puts a lazily loaded Django session at ``scope["session"]``.

    Needs CookieMiddleware outside it. For HTTP the session is saved and its cookie set
    when the response starts; for WebSockets there is no response to carry a cookie,
    so consumers call ``scope["session"].save()`` themselves (via a thread).
    """

    def __init__(self, inner: ASGIApp) -> None:
        super().__init__(inner)
        self.cookie_name = settings.SESSION_COOKIE_NAME
        self.session_store = import_module(settings.SESSION_ENGINE)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> Any:
        if "cookies" not in scope:
            raise ValueError(
                "No cookies in scope - SessionMiddleware needs to run inside CookieMiddleware."
            )
        session_key = scope["cookies"].get(self.cookie_name)
        session = _LazySession(self.session_store, session_key)
        scope = dict(scope, session=session)
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)

        async def send_with_session(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                await self._save_and_set_cookie(session, session_key, message)
            await send(message)

        return await self.inner(scope, receive, send_with_session)

    async def _save_and_set_cookie(
        self, session: _LazySession, cookie_key: str | None, message: dict[str, Any]
    ) -> None:
        if session._wrapped is empty:
            if not settings.SESSION_SAVE_EVERY_REQUEST:
                return  # nobody touched the session: nothing to save or send
            session._setup()
        store = session._wrapped
        if cookie_key is not None and store.is_empty():
            # The session was emptied (e.g. logout): make the client drop its cookie.
            CookieMiddleware.delete_cookie(
                message,
                self.cookie_name,
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
            )
            return
        if not (store.modified or settings.SESSION_SAVE_EVERY_REQUEST) or store.is_empty():
            return
        if message.get("status", 200) >= 500:
            return  # like Django: a failed response does not commit session changes
        try:
            await sync_to_async(store.save, thread_sensitive=True)()
        except UpdateError as exc:
            raise SuspiciousOperation(
                "The session was deleted before the request completed."
            ) from exc
        max_age = None if store.get_expire_at_browser_close() else store.get_expiry_age()
        CookieMiddleware.set_cookie(
            message,
            self.cookie_name,
            force_str(store.session_key),
            max_age=max_age,
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=bool(settings.SESSION_COOKIE_SECURE),
            httponly=bool(settings.SESSION_COOKIE_HTTPONLY),
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )


def SessionMiddlewareStack(inner: ASGIApp) -> CookieMiddleware:  # noqa: N802
    """Cookies and sessions together, in the order they depend on each other."""
    return CookieMiddleware(SessionMiddleware(inner))
