"""WebsocketCommunicator: connect to, talk to and disconnect from a WebSocket application."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit

from switchboard.testing.application import ApplicationCommunicator

__all__ = ["WebsocketCommunicator"]


# The scope's server is ("testserver", 80), a host Django's test runner (and pytest-django) adds
# to ALLOWED_HOSTS: a browser's page from that server would send this Origin.
TEST_ORIGIN = "http://testserver"


class WebsocketCommunicator(ApplicationCommunicator):
    """Runs ``application`` with a websocket scope for ``path`` (which may hold a query).

    The handshake carries ``Origin: http://testserver``, as a page of the scope's own server
    would, so an application behind ``AllowedHostsOriginValidator`` accepts it under Django's
    test runner. Pass ``origin`` for another one, ``origin=None`` for none; an ``origin``
    header in ``headers`` wins over both.
    """

    def __init__(
        self,
        application: Any,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        subprotocols: list[str] | None = None,
        spec_version: str | None = None,
        *,
        origin: str | None = TEST_ORIGIN,
    ) -> None:
        if not isinstance(path, str):
            raise TypeError(f"Expected str path, got {type(path).__name__}")
        parts = urlsplit(path)
        headers = list(headers or [])
        if origin is not None and not any(name.lower() == b"origin" for name, _ in headers):
            headers.append((b"origin", origin.encode("latin-1")))
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": spec_version or "2.3"},
            "scheme": "ws",
            "path": unquote(parts.path),
            "raw_path": parts.path.encode("latin-1"),
            "query_string": parts.query.encode("utf-8"),
            "root_path": "",
            "headers": headers,
            "subprotocols": list(subprotocols or []),
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        super().__init__(application, scope)
        self.response_headers: list[Any] | None = None

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """``(True, subprotocol)`` when accepted, else ``(False, close code or HTTP status)``."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        kind = response["type"]
        if kind == "websocket.close":
            return (False, response.get("code", 1000))
        if kind == "websocket.http.response.start":
            # Denial-response extension: the app answered the handshake with plain HTTP.
            return (False, response["status"])
        if kind != "websocket.accept":
            raise AssertionError(f"Expected websocket.accept or websocket.close, got {response}")
        self.response_headers = response.get("headers")
        return (True, response.get("subprotocol"))

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if (text_data is None) == (bytes_data is None):
            raise ValueError("Pass exactly one of text_data or bytes_data")
        if text_data is not None:
            if not isinstance(text_data, str):
                raise TypeError("text_data must be str")
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            if not isinstance(bytes_data, bytes):
                raise TypeError("bytes_data must be bytes")
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> str | bytes:
        response = await self.receive_output(timeout)
        if response["type"] != "websocket.send":
            raise AssertionError(f"Expected a websocket.send message, got {response}")
        if response.get("text") is not None:
            return response["text"]
        return response["bytes"]

    async def receive_json_from(self, timeout: float = 1) -> Any:
        payload = await self.receive_from(timeout)
        if not isinstance(payload, str):
            raise AssertionError(f"Expected a text frame holding JSON, got bytes {payload!r}")
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
