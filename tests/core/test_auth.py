"""Sessions and auth over raw ASGI: login persists across WebSocket connections."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import override_settings

from switchboard.auth import AuthMiddleware, AuthMiddlewareStack, get_user, login, logout
from switchboard.sessions import CookieMiddleware, SessionMiddleware, SessionMiddlewareStack

COOKIE = settings.SESSION_COOKIE_NAME


@pytest.fixture
async def user():
    name = f"user-{uuid.uuid4().hex[:8]}"
    return await sync_to_async(get_user_model().objects.create_user)(name, password="pw")


def ws_scope(cookie: str | None = None) -> dict:
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {"type": "websocket", "path": "/ws/", "headers": headers, "subprotocols": []}


def http_scope(cookie: str | None = None) -> dict:
    headers = [(b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {"type": "http", "method": "GET", "path": "/", "headers": headers}


def websocket_app(on_receive):
    """A tiny consumer: accepts, then hands each text frame and the scope to ``on_receive``,
    replying with whatever string it returns."""

    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif message["type"] == "websocket.receive":
                reply = await on_receive(scope, message["text"])
                await send({"type": "websocket.send", "text": reply})
            else:
                return

    return app


async def talk(app, scope: dict, text: str) -> str:
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "websocket.connect"})
    assert (await comm.receive_output(timeout=3))["type"] == "websocket.accept"
    await comm.send_input({"type": "websocket.receive", "text": text})
    reply = await comm.receive_output(timeout=3)
    await comm.send_input({"type": "websocket.disconnect", "code": 1000})
    await comm.wait(timeout=3)
    return reply["text"]


async def handle(scope, text):
    """Commands: 'whoami', 'login:<username>', 'logout'; returns the session key or name."""
    if text.startswith("login:"):
        found = await sync_to_async(get_user_model().objects.get)(username=text[6:])
        await login(scope, found)
        await sync_to_async(scope["session"].save)()
        return scope["session"].session_key
    if text == "logout":
        await logout(scope)
        await sync_to_async(scope["session"].save)()
        return "bye"
    user = scope["user"]
    return user.username if user.is_authenticated else "anonymous"


async def test_login_persists_across_websocket_connections(user):
    app = AuthMiddlewareStack(websocket_app(handle))
    assert await talk(app, ws_scope(), "whoami") == "anonymous"

    key = await talk(app, ws_scope(), f"login:{user.username}")
    assert key

    # A second connection presenting the cookie is the same user.
    assert await talk(app, ws_scope(f"{COOKIE}={key}"), "whoami") == user.username
    resolved = await get_user({"session": SessionStore(key)})
    assert resolved.pk == user.pk

    assert await talk(app, ws_scope(f"{COOKIE}={key}"), "logout") == "bye"
    assert await talk(app, ws_scope(f"{COOKIE}={key}"), "whoami") == "anonymous"


async def test_login_cycles_the_session_key(user):
    # An anonymous session that already had data gets a new key at login (no fixation).
    store = SessionStore()
    store["cart"] = "apples"
    await sync_to_async(store.save)()
    old_key = store.session_key

    new_key = await talk(
        AuthMiddlewareStack(websocket_app(handle)),
        ws_scope(f"{COOKIE}={old_key}"),
        f"login:{user.username}",
    )
    assert new_key != old_key
    carried = SessionStore(new_key)
    assert await sync_to_async(carried.get)("cart") == "apples"


async def test_changed_password_invalidates_session(user):
    app = AuthMiddlewareStack(websocket_app(handle))
    key = await talk(app, ws_scope(), f"login:{user.username}")
    user.set_password("new-password")
    await sync_to_async(user.save)()
    assert await talk(app, ws_scope(f"{COOKIE}={key}"), "whoami") == "anonymous"


async def test_unknown_session_cookie_is_anonymous():
    app = AuthMiddlewareStack(websocket_app(handle))
    assert await talk(app, ws_scope(f"{COOKIE}=doesnotexist"), "whoami") == "anonymous"


async def test_auth_without_session_is_a_clear_error():
    comm = ApplicationCommunicator(
        CookieMiddleware(AuthMiddleware(websocket_app(handle))), ws_scope()
    )
    with pytest.raises(ValueError, match="SessionMiddleware"):
        await comm.wait(timeout=3)


async def test_session_without_cookies_is_a_clear_error():
    comm = ApplicationCommunicator(SessionMiddleware(websocket_app(handle)), ws_scope())
    with pytest.raises(ValueError, match="CookieMiddleware"):
        await comm.wait(timeout=3)


async def test_login_without_session_is_a_clear_error(user):
    with pytest.raises(ValueError, match="session"):
        await login({"type": "websocket"}, user)


def http_app(touch_session):
    async def app(scope, receive, send):
        await receive()
        await touch_session(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def http_call(app, cookie: str | None = None) -> dict:
    comm = ApplicationCommunicator(app, http_scope(cookie))
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(timeout=3)
    await comm.receive_output(timeout=3)
    await comm.wait(timeout=3)
    return start


def set_cookies(start: dict) -> list[str]:
    return [v.decode() for k, v in start.get("headers", []) if k.lower() == b"set-cookie"]


async def test_http_modified_session_is_saved_and_cookie_set():
    async def write(scope):
        scope["session"]["visits"] = 1

    start = await http_call(SessionMiddlewareStack(http_app(write)))
    [cookie] = set_cookies(start)
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "Path=/" in cookie
    key = cookie.split(";", 1)[0].split("=", 1)[1]
    assert await sync_to_async(SessionStore(key).get)("visits") == 1

    # The next request reads it back through the cookie, and unmodified sends no cookie.
    seen = {}

    async def read(scope):
        seen["visits"] = await sync_to_async(scope["session"].get)("visits")

    start = await http_call(SessionMiddlewareStack(http_app(read)), f"{COOKIE}={key}")
    assert seen["visits"] == 1
    assert set_cookies(start) == []


async def test_http_untouched_session_sets_no_cookie():
    async def nothing(scope):
        pass

    assert set_cookies(await http_call(SessionMiddlewareStack(http_app(nothing)))) == []


@override_settings(SESSION_SAVE_EVERY_REQUEST=True)
async def test_http_save_every_request_refreshes_cookie():
    store = SessionStore()
    store["x"] = 1
    await sync_to_async(store.save)()

    async def nothing(scope):
        pass

    start = await http_call(
        SessionMiddlewareStack(http_app(nothing)), f"{COOKIE}={store.session_key}"
    )
    [cookie] = set_cookies(start)
    assert cookie.startswith(f"{COOKIE}={store.session_key};")


async def test_http_flushed_session_deletes_cookie():
    store = SessionStore()
    store["x"] = 1
    await sync_to_async(store.save)()

    async def flush(scope):
        await sync_to_async(scope["session"].flush)()

    start = await http_call(
        SessionMiddlewareStack(http_app(flush)), f"{COOKIE}={store.session_key}"
    )
    [cookie] = set_cookies(start)
    assert "Max-Age=0" in cookie


async def test_cookie_middleware_parses_header():
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope["cookies"])

    comm = ApplicationCommunicator(CookieMiddleware(app), http_scope("a=1; b=two"))
    await comm.wait(timeout=3)
    assert seen == {"a": "1", "b": "two"}


def test_set_cookie_rejects_bad_samesite():
    with pytest.raises(ValueError):
        CookieMiddleware.set_cookie({"type": "http.response.start"}, "k", "v", samesite="bogus")


async def test_login_rotates_session_csrf_secret_and_sets_scope_user(user):
    from django.middleware.csrf import CSRF_SESSION_KEY

    store = SessionStore()
    store[CSRF_SESSION_KEY] = "old-secret"
    scope = {"type": "websocket", "session": store}
    await login(scope, user)
    assert scope["user"] == user
    assert store[CSRF_SESSION_KEY] != "old-secret"
    await logout(scope)
    assert not scope["user"].is_authenticated
    assert await sync_to_async(store.is_empty)()
