"""What a proxy in front tells the server, as Daphne reads it (Daphne-Root-Path, X-Forwarded-Port
into the client address), over HTTP/1.1, WebSocket, HTTP/2 and WebSocket over HTTP/2, against
the real server on a loopback port."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.server.h2_support import RawH2, websocket_stream
from tests.server.test_h2_websocket import frames, stream_data
from tests.server.wire import ask


def _view(scope: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "type": scope["type"],
            "root_path": scope["root_path"],
            "path": scope["path"],
            "client": list(scope["client"]),
            "server": list(scope["server"]),
            "headers": [n.decode("latin-1") for n, _ in scope["headers"]],
        }
    ).encode()


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers (HTTP) or sends once accepted (WebSocket) the parts of its scope tested here."""
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": _view(scope)})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": _view(scope).decode()})
        await send({"type": "websocket.close", "code": 1000})


async def http11(addr: tuple[str, int], path: str, *fields: bytes) -> dict[str, Any]:
    head = (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\n"
        + b"".join(f + b"\r\n" for f in fields)
    )
    parsed = await ask(addr, head + b"\r\n", [b"GET"])
    return json.loads(parsed.answers[0].body)


async def websocket11(addr: tuple[str, int], path: str, headers: dict[str, str]) -> dict[str, Any]:
    async with ws_connect(f"ws://{addr[0]}:{addr[1]}{path}", additional_headers=headers) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def http2(addr: tuple[str, int], path: str, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        response = await client.get(f"http://{addr[0]}:{addr[1]}{path}", headers=headers)
    assert response.http_version == "HTTP/2"
    return response.json()


def _websocket2(port: int, path: str, headers: dict[str, str]) -> dict[str, Any]:
    client = RawH2(port)
    try:
        extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        sid = websocket_stream(client, path, extra)
        client.read_until(lambda ev: len(frames(stream_data(client, sid))) >= 1)
        return json.loads(frames(stream_data(client, sid))[0][1])
    finally:
        client.close()


async def websocket2(addr: tuple[str, int], path: str, headers: dict[str, str]) -> dict[str, Any]:
    return await asyncio.to_thread(_websocket2, addr[1], path, headers)


TRANSPORTS = ["http/1.1", "websocket", "http/2", "websocket over http/2"]


async def request(transport: str, addr: tuple[str, int], path: str, headers: dict[str, str]):
    if transport == "http/1.1":
        return await http11(addr, path, *(f"{k}: {v}".encode() for k, v in headers.items()))
    if transport == "websocket":
        return await websocket11(addr, path, headers)
    if transport == "http/2":
        return await http2(addr, path, headers)
    return await websocket2(addr, path, headers)


# -- Daphne-Root-Path ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("path", "value", "root_path", "full_path"),
    [
        ("/x", "/forum", "/forum", "/forum/x"),  # the proxy stripped the prefix: put back
        ("/forum/x", "/forum", "/forum", "/forum/x"),  # the proxy kept it: kept as it is
        ("/x", "/my%20forum", "/my forum", "/my forum/x"),  # URL-decoded, as Daphne does
        ("/x", "/forum/", "/forum", "/forum/x"),  # one mount point with or without the slash
    ],
)
async def test_daphne_root_path_sets_root_path_and_is_not_passed_on(
    running_server, transport, path, value, root_path, full_path
) -> None:
    """Daphne's README: a ``Daphne-Root-Path`` header carries the root path (the WSGI
    SCRIPT_NAME) as URL-encoded ASCII, takes precedence over ``--root-path``, and is not
    passed down to applications. Daphne's HTTP and WebSocket protocols both read it
    (``unquote`` of the value). Here it is read from trusted proxies under
    ``--proxy-headers``, on every transport, and ``path`` starts with ``root_path`` as the
    ASGI spec has it."""
    async with running_server(scope_app, proxy_headers=True, root_path="/configured") as addr:
        scope = await request(transport, addr, path, {"Daphne-Root-Path": value})
    assert (scope["root_path"], scope["path"]) == (root_path, full_path)
    assert "daphne-root-path" not in scope["headers"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("setup", ["no --proxy-headers", "untrusted peer"])
async def test_daphne_root_path_from_a_peer_not_trusted_is_an_ordinary_header(
    running_server, transport, setup
) -> None:
    """Unlike Daphne, which believes any client: the header changes the URLs an application
    builds (Django's reverse(), redirects), so it gets the trust X-Forwarded-* get, and a
    client talking to the server directly cannot move the application's mount point."""
    options: dict[str, Any] = {"root_path": "/configured"}
    if setup == "untrusted peer":
        options.update(proxy_headers=True, forwarded_allow_ips="10.9.9.9")
    async with running_server(scope_app, **options) as addr:
        scope = await request(transport, addr, "/x", {"Daphne-Root-Path": "/evil"})
    assert (scope["root_path"], scope["path"]) == ("/configured", "/configured/x")
    assert "daphne-root-path" in scope["headers"]


@pytest.mark.parametrize("value", ["", "/"])
async def test_an_empty_daphne_root_path_means_no_root(running_server, value) -> None:
    """As in Daphne, the header wins over ``--root-path``, an empty one included."""
    async with running_server(scope_app, proxy_headers=True, root_path="/configured") as addr:
        scope = await http11(addr, "/x", b"Daphne-Root-Path: " + value.encode())
    assert (scope["root_path"], scope["path"]) == ("", "/x")


# -- X-Forwarded-Port ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_forwarded_port_is_the_forwarded_clients_port(running_server, transport) -> None:
    """Daphne's ``--proxy-headers`` reads X-Forwarded-For and X-Forwarded-Port "as the client
    address": the port goes into ``client`` with the address, and only when X-Forwarded-For
    gave one. ``server`` takes the port too, as before."""
    async with running_server(scope_app, proxy_headers=True) as addr:
        forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Port": "8443"}
        scope = await request(transport, addr, "/", forwarded)
        assert scope["client"] == ["203.0.113.7", 8443]
        assert scope["server"][1] == 8443
        alone = await request(transport, addr, "/", {"X-Forwarded-Port": "8443"})
        assert alone["client"][0] == "127.0.0.1" and alone["client"][1] not in (0, 8443)
        assert alone["server"][1] == 8443


async def test_forwarded_port_from_an_untrusted_peer_changes_nothing(running_server) -> None:
    async with running_server(
        scope_app, proxy_headers=True, forwarded_allow_ips="10.9.9.9"
    ) as addr:
        scope = await http11(addr, "/", b"X-Forwarded-For: 203.0.113.7", b"X-Forwarded-Port: 8443")
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] != 8443
    assert scope["server"] == [addr[0], addr[1]]
