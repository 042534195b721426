"""A strict client side for the HTTP tests: responses parsed by h11, not by eye.

``Responses`` is fed what the server wrote on one connection to a series of (pipelined)
requests and says what arrived: each response complete and correctly framed, or cut off by the
server closing. Anything h11 refuses (bad status line, fields, framing) fails the test.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import h11


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    complete: bool = False
    interim: list[int] = field(default_factory=list)  # 1xx responses before this one

    def header(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]


class Responses:
    """Incremental parse of the responses to requests with ``methods``, in order."""

    def __init__(self, methods: Sequence[bytes]) -> None:
        self.methods = list(methods)
        self.answers: list[Answer] = []
        self.closed = False  # the server closed the connection
        self.extra = b""  # bytes after a response that ended the connection (must be empty)
        self._conn = h11.Connection(h11.CLIENT)
        self._interim: list[int] = []
        self._next_request()

    @property
    def done(self) -> bool:
        """Everything expected arrived, or nothing more can."""
        return self.closed or (len(self.answers) == len(self.methods) and self.answers[-1].complete)

    def _next_request(self) -> None:
        method = self.methods[len(self.answers)]
        self._conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        self._conn.send(h11.EndOfMessage())

    def feed(self, data: bytes) -> None:
        """Bytes from the server; ``b""`` is the server closing."""
        if self.closed:
            assert not data, "data after the connection closed"
            return
        if self._conn.their_state in (h11.MUST_CLOSE, h11.CLOSED):
            self.extra += data
            self.closed = self.closed or not data
            return
        self._conn.receive_data(data)
        self._drain()

    def _drain(self) -> None:
        conn = self._conn
        while True:
            state = conn.their_state
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                # Acceptable: a body cut short by the server closing (the client can tell), or
                # a close before any byte of the next response.
                pending, closed = conn.trailing_data
                cut = state is h11.SEND_BODY and "without sending complete" in str(exc)
                nothing = state is h11.SEND_RESPONSE and closed and not pending
                assert cut or nothing, f"invalid response on the wire: {exc!r}"
                self.closed = True
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                if conn.their_state is h11.DONE and conn.our_state is h11.DONE:
                    if len(self.answers) == len(self.methods):
                        return
                    conn.start_next_cycle()
                    self._next_request()
                    continue
                # MUST_CLOSE: whatever follows is not a response.
                self.extra += conn.trailing_data[0]
                self.closed = conn.trailing_data[1]
                return
            if isinstance(event, h11.InformationalResponse):
                self._interim.append(event.status_code)
            elif isinstance(event, h11.Response):
                headers = [(bytes(n), bytes(v)) for n, v in event.headers]
                self.answers.append(Answer(event.status_code, headers, interim=self._interim))
                self._interim = []
            elif isinstance(event, h11.Data):
                self.answers[-1].body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.answers[-1].complete = True
            elif isinstance(event, h11.ConnectionClosed):
                self.closed = True
                return


async def ask(
    addr: tuple[str, int], payload: bytes, methods: Sequence[bytes], timeout: float = 5.0
) -> Responses:
    """Send ``payload`` (the requests, pipelined) and parse what comes back, until every
    response is complete or the server closes; a server that does neither fails the test."""
    reader, writer = await asyncio.open_connection(*addr)
    parsed = Responses(methods)
    try:
        writer.write(payload)
        deadline = asyncio.get_running_loop().time() + timeout
        while not parsed.done:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"server neither answered nor closed: {parsed.answers}"
            try:
                data = await asyncio.wait_for(reader.read(65536), left)
            except ConnectionResetError:
                data = b""
            parsed.feed(data)
        if not parsed.closed:
            # One more look: nothing unexpected may follow the last response.
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.05)
                parsed.feed(data)
            except TimeoutError:
                pass
    finally:
        writer.close()
    return parsed


def ask_blocking(
    addr: tuple[str, int], payload: bytes, methods: Sequence[bytes], timeout: float = 5.0
) -> Responses:
    """``ask`` for synchronous tests."""
    parsed = Responses(methods)
    with socket.create_connection(addr, timeout=timeout) as sock:
        sock.sendall(payload)
        deadline = time.monotonic() + timeout
        while not parsed.done:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            except TimeoutError as exc:
                raise AssertionError(
                    f"server neither answered nor closed: {parsed.answers}"
                ) from exc
            parsed.feed(data)
        if not parsed.closed:
            sock.settimeout(0.05)
            try:
                parsed.feed(sock.recv(65536))
            except TimeoutError:
                pass
    return parsed
