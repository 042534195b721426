"""HTTP consumer: collects the request body, then ``handle(body)`` sends the response."""

from __future__ import annotations

from typing import Any

from switchboard.consumer import AsyncConsumer
from switchboard.exceptions import StopConsumer

__all__ = ["AsyncHttpConsumer"]


def _as_bytes(value: Any) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)


class AsyncHttpConsumer(AsyncConsumer):
    """Override ``handle(body)`` and answer with send_headers/send_body or send_response."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.body: list[bytes] = []

    async def send_headers(self, *, status: int = 200, headers: Any = None) -> None:
        if headers is None:
            headers = []
        elif isinstance(headers, dict):
            headers = list(headers.items())
        # ASGI wants bytes; accepting str saves every caller an encode.
        encoded = [[_as_bytes(name), _as_bytes(value)] for name, value in headers]
        await self.send({"type": "http.response.start", "status": status, "headers": encoded})

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        if not isinstance(body, (bytes, bytearray)):
            raise TypeError(f"Response body must be bytes, got {type(body).__name__}")
        await self.send({"type": "http.response.body", "body": bytes(body), "more_body": more_body})

    async def send_response(self, status: int, body: bytes, **kwargs: Any) -> None:
        await self.send_headers(status=status, **kwargs)
        await self.send_body(body)

    async def handle(self, body: bytes) -> None:
        raise NotImplementedError("Subclasses of AsyncHttpConsumer must provide handle(body)")

    async def disconnect(self) -> None:
        pass

    async def http_request(self, message: dict[str, Any]) -> None:
        if message.get("body"):
            self.body.append(message["body"])
        if not message.get("more_body"):
            try:
                await self.handle(b"".join(self.body))
            finally:
                await self.disconnect()
            raise StopConsumer()

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        await self.disconnect()
        raise StopConsumer()
