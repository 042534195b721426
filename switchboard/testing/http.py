"""HttpCommunicator: send one HTTP request to an application and collect the response."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from switchboard.testing.application import ApplicationCommunicator

__all__ = ["HttpCommunicator"]


class HttpCommunicator(ApplicationCommunicator):
    def __init__(
        self,
        application: Any,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        parts = urlsplit(path)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": unquote(parts.path),
            "raw_path": parts.path.encode("latin-1"),
            "query_string": parts.query.encode("utf-8"),
            "root_path": "",
            "headers": list(headers or []),
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        if not isinstance(body, bytes):
            raise TypeError("body must be bytes")
        super().__init__(application, scope)
        self.body = body
        self.sent_request = False

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:
        """``{"status", "headers", "body"}`` once the application has sent the whole body."""
        if not self.sent_request:
            self.sent_request = True
            await self.send_input({"type": "http.request", "body": self.body})
        start = await self.receive_output(timeout)
        if start["type"] != "http.response.start":
            raise AssertionError(f"Expected http.response.start, got {start}")
        response = {"status": start["status"], "headers": start.get("headers", []), "body": b""}
        chunks = []
        while True:
            message = await self.receive_output(timeout)
            if message["type"] != "http.response.body":
                raise AssertionError(f"Expected http.response.body, got {message}")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        response["body"] = b"".join(chunks)
        await self.wait(timeout)
        return response
