"""Origin checks on WebSocket handshakes, driven with raw ASGI messages."""

from __future__ import annotations

import pytest
from asgiref.testing import ApplicationCommunicator
from django.test import override_settings

from switchboard.security.websocket import AllowedHostsOriginValidator, OriginValidator


async def accepting_app(scope, receive, send):
    """Accepts any WebSocket; answers HTTP with 200 'ok'."""
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.disconnect":
            return


def ws_scope(origin: str | None) -> dict:
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "path": "/ws/", "headers": headers, "subprotocols": []}


async def handshake(app, origin: str | None) -> str:
    """Sends websocket.connect and returns the type of the app's answer."""
    comm = ApplicationCommunicator(app, ws_scope(origin))
    await comm.send_input({"type": "websocket.connect"})
    reply = await comm.receive_output(timeout=2)
    await comm.send_input({"type": "websocket.disconnect", "code": 1000})
    await comm.wait(timeout=2)
    return reply["type"]


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://allowed.com", "websocket.accept"),
        ("https://allowed.com:8443", "websocket.accept"),
        ("http://evil.com", "websocket.close"),
        ("http://allowed.com.evil.com", "websocket.close"),
        (None, "websocket.close"),
        ("null", "websocket.close"),
        ("not a url", "websocket.close"),
        ("http://chat.example.com", "websocket.accept"),
        ("http://example.com", "websocket.accept"),
        ("http://deep.chat.example.com", "websocket.accept"),
        ("http://badexample.com", "websocket.close"),
        ("https://pinned.test:9000", "websocket.accept"),
        ("http://pinned.test:9000", "websocket.close"),
        ("https://pinned.test", "websocket.close"),
        ("https://pinned.test:9001", "websocket.close"),
        ("https://default.test", "websocket.accept"),
        ("https://default.test:443", "websocket.accept"),
        ("https://default.test:8443", "websocket.close"),
    ],
)
async def test_origin_patterns(origin, expected):
    app = OriginValidator(
        accepting_app,
        ["allowed.com", ".example.com", "https://pinned.test:9000", "https://default.test"],
    )
    assert await handshake(app, origin) == expected


async def test_denied_socket_is_closed_before_any_accept():
    app = OriginValidator(accepting_app, ["good.com"])
    comm = ApplicationCommunicator(app, ws_scope("http://bad.com"))
    await comm.send_input({"type": "websocket.connect"})
    assert await comm.receive_output(timeout=2) == {"type": "websocket.close"}
    # Nothing else follows: the inner app never ran, so it never accepted.
    assert await comm.receive_nothing(timeout=0.1)
    await comm.send_input({"type": "websocket.disconnect", "code": 1006})
    await comm.wait(timeout=2)


async def test_wildcard_allows_missing_origin():
    assert await handshake(OriginValidator(accepting_app, ["*"]), None) == "websocket.accept"


async def test_http_passes_through_without_origin():
    app = OriginValidator(accepting_app, ["good.com"])
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(timeout=2)
    body = await comm.receive_output(timeout=2)
    await comm.wait(timeout=2)
    assert start["status"] == 200
    assert body["body"] == b"ok"


def test_single_string_is_rejected():
    with pytest.raises(TypeError):
        OriginValidator(accepting_app, "good.com")


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://localhost:8000", "websocket.accept"),
        ("http://127.0.0.1", "websocket.accept"),
        ("https://allowed.example.com", "websocket.accept"),
        ("https://other.example.com", "websocket.close"),
        ("http://evil.com", "websocket.close"),
        (None, "websocket.close"),
    ],
)
async def test_allowed_hosts_validator_uses_settings(origin, expected):
    # the suite's settings: ["localhost", "127.0.0.1", "testserver", "allowed.example.com"]
    assert await handshake(AllowedHostsOriginValidator(accepting_app), origin) == expected


@override_settings(DEBUG=True, ALLOWED_HOSTS=[])
async def test_allowed_hosts_debug_fallback_is_local_only():
    app = AllowedHostsOriginValidator(accepting_app)
    assert await handshake(app, "http://localhost:3000") == "websocket.accept"
    assert await handshake(app, "http://sub.localhost") == "websocket.accept"
    assert await handshake(app, "http://127.0.0.1:8000") == "websocket.accept"
    assert await handshake(app, "http://[::1]:8000") == "websocket.accept"
    assert await handshake(app, "http://example.com") == "websocket.close"


@override_settings(DEBUG=False, ALLOWED_HOSTS=[])
async def test_allowed_hosts_empty_without_debug_denies_everything():
    app = AllowedHostsOriginValidator(accepting_app)
    assert await handshake(app, "http://localhost") == "websocket.close"


async def test_allowed_hosts_are_read_at_each_handshake_not_when_the_app_is_built():
    # asgi.py builds the validator at import; the live-server test case and override_settings
    # change ALLOWED_HOSTS afterwards, and the running app must follow.
    with override_settings(ALLOWED_HOSTS=["old.example"], DEBUG=False):
        app = AllowedHostsOriginValidator(accepting_app)
    with override_settings(ALLOWED_HOSTS=["new.example"], DEBUG=False):
        assert await handshake(app, "https://new.example") == "websocket.accept"
        assert await handshake(app, "https://old.example") == "websocket.close"


def test_auth_anonymous_user_is_djangos_class():
    from django.contrib.auth.models import AnonymousUser

    import switchboard.auth

    assert switchboard.auth.AnonymousUser is AnonymousUser


async def _origin_seen(**options) -> tuple[bool, bytes | None]:
    """Connects a WebsocketCommunicator through AllowedHostsOriginValidator to an app that
    records the handshake's Origin header."""
    from switchboard.testing import WebsocketCommunicator

    seen: dict = {}

    async def recording_app(scope, receive, send):
        seen["origin"] = dict(scope["headers"]).get(b"origin")
        await accepting_app(scope, receive, send)

    client = WebsocketCommunicator(AllowedHostsOriginValidator(recording_app), "/ws/", **options)
    connected, _ = await client.connect()
    if connected:
        await client.disconnect()
    return connected, seen.get("origin")


async def test_the_communicator_is_a_page_of_the_test_server_unless_told_otherwise():
    """A browser's handshake carries its page's Origin (RFC 6455 section 4.1, point 8); the
    communicator's scope is served by "testserver", which Django's test runner adds to
    ALLOWED_HOSTS, so it sends that server's origin (Channels' communicator sends none, and a
    project's AllowedHostsOriginValidator refused it)."""
    # the suite's settings: ["localhost", "127.0.0.1", "testserver", "allowed.example.com"]
    assert await _origin_seen() == (True, b"http://testserver")
    assert await _origin_seen(origin="http://evil.com") == (False, None)
    assert await _origin_seen(origin=None) == (False, None)
    # An Origin header of the test's own wins.
    headers = [(b"origin", b"https://allowed.example.com")]
    assert await _origin_seen(headers=headers, origin="http://evil.com") == (
        True,
        b"https://allowed.example.com",
    )
