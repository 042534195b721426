"""logout() with nobody logged in is a no-op: no error, no signal, the session left alone.

Django documents that ``logout()`` raises no error when the user was not logged in; Channels
only sends ``user_logged_out`` when there is a user to report. An anonymous visitor's session
(a cart, a language choice) has nothing to do with a login, so it is kept.
"""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model, user_logged_out
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore

from switchboard.auth import AuthMiddlewareStack, login, logout
from switchboard.testing import HttpCommunicator

COOKIE = settings.SESSION_COOKIE_NAME


@pytest.fixture
def logged_out_signals():
    received = []

    def receiver(sender, request, user, **kwargs):
        received.append(user)

    user_logged_out.connect(receiver, weak=False, dispatch_uid="test_logout")
    yield received
    user_logged_out.disconnect(dispatch_uid="test_logout")


@pytest.fixture
async def user():
    name = f"logout-{uuid.uuid4().hex[:8]}"
    return await sync_to_async(get_user_model().objects.create_user)(name, password="pw")


async def _anonymous_session_with(**data) -> SessionStore:
    store = SessionStore()
    store.update(data)
    await sync_to_async(store.save)()
    return store


async def test_anonymous_logout_keeps_the_session_and_sends_no_signal(logged_out_signals):
    store = await _anonymous_session_with(cart="apples")
    key = store.session_key
    scope = {"type": "websocket", "session": SessionStore(key), "user": AnonymousUser()}
    await logout(scope)
    assert logged_out_signals == []
    assert scope["session"].session_key == key
    assert await sync_to_async(SessionStore(key).get)("cart") == "apples"
    assert not scope["user"].is_authenticated


async def test_logout_without_session_or_user_is_no_error(logged_out_signals):
    # Say a token-auth middleware that sets no session, and nobody authenticated.
    for scope in ({"type": "websocket"}, {"type": "websocket", "user": AnonymousUser()}):
        await logout(scope)
    assert logged_out_signals == []


async def test_logged_in_user_without_a_session_is_still_an_error(user):
    with pytest.raises(ValueError, match="without a session in scope"):
        await logout({"type": "websocket", "user": user})


async def test_logged_in_user_is_logged_out(user, logged_out_signals):
    store = await _anonymous_session_with(cart="apples")
    scope = {"type": "websocket", "session": store}
    await login(scope, user)
    await logout(scope)
    assert logged_out_signals == [user]
    assert not scope["user"].is_authenticated
    assert await sync_to_async(store.is_empty)()


async def test_session_still_holding_a_login_is_flushed(user, logged_out_signals):
    # The scope says anonymous (say the user was deleted), the session still names someone:
    # that leftover login is removed, with no user to report in the signal.
    store = SessionStore()
    await login({"type": "websocket", "session": store}, user)
    await sync_to_async(store.save)()
    scope = {"type": "websocket", "session": store, "user": AnonymousUser()}
    await logout(scope)
    assert logged_out_signals == []
    assert SESSION_KEY not in store and await sync_to_async(store.is_empty)()


async def test_http_logout_of_an_anonymous_visitor_keeps_the_session_cookie():
    # Through the whole stack: a flushed session would make SessionMiddleware delete the
    # visitor's cookie (and their anonymous session with it).
    key = (await _anonymous_session_with(language="fr")).session_key

    async def app(scope, receive, send):
        await receive()
        await logout(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["session"]["language"].encode()})

    cookie = (b"cookie", f"{COOKIE}={key}".encode())
    communicator = HttpCommunicator(AuthMiddlewareStack(app), "POST", "/logout/", headers=[cookie])
    response = await communicator.get_response(timeout=3)
    assert response["status"] == 200 and response["body"] == b"fr"
    assert not any(name.lower() == b"set-cookie" for name, _ in response["headers"])
    assert await sync_to_async(SessionStore(key).get)("language") == "fr"
