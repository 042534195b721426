"""HTTP consumer: collects the request body, then ``handle(body)`` sends the response."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from switchboard.consumer import AsyncConsumer
from switchboard.exceptions import StopConsumer

__all__ = ["AsyncHttpConsumer"]


def _as_bytes(value: Any) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)


def _as_asgi_header(header: Sequence[Any]) -> Any:
    # ASGI-ready pairs go out exactly as given (a tuple stays a tuple, Channels does the same);
    # only str needs encoding.
    name, value = header
    if isinstance(name, bytes) and isinstance(value, bytes):
        return header
    return (_as_bytes(name), _as_bytes(value))


class AsyncHttpConsumer(AsyncConsumer):
    """Override ``handle(body)`` and answer with send_headers/send_body or send_response."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.body: list[bytes] = []

    async def send_headers(
        self,
        *,
        status: int = 200,
        headers: Iterable[Sequence[bytes | str]] | Mapping[bytes | str, bytes | str] | None = None,
    ) -> None:
        """Starts the response; ``headers`` is a dict or an iterable of ``(name, value)`` pairs.

        Pairs go out in the order given and as given (tuples stay tuples); only str names or
        values are encoded, since ASGI wants bytes.
        """
        if headers is None:
            headers = []
        elif isinstance(headers, Mapping):
            headers = headers.items()
        pairs = [_as_asgi_header(header) for header in headers]
        await self.send({"type": "http.response.start", "status": status, "headers": pairs})

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
