"""The data connections between nodes: one outgoing :class:`Peer` per process we write to,
one :class:`Incoming` per process writing to us. Messages only; the hub link is hub_client.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from switchboard.layers.ipc import wire
from switchboard.layers.ipc.runtime import peer_is_us

if TYPE_CHECKING:
    from switchboard.layers.ipc.node import Node

__all__ = ["Incoming", "Peer", "PeerUnreachable"]

logger = logging.getLogger("switchboard.layers.ipc")


class PeerUnreachable(ConnectionError):
    """No process listens on that token's socket (gone, or between event loops)."""


class Peer(asyncio.Protocol):
    """An outgoing data connection; frames written in one loop turn leave in one write."""

    __slots__ = ("_out", "loop", "node", "paused", "resumed", "token", "transport")

    def __init__(self, node: Node, token: str) -> None:
        self.node = node
        self.token = token
        self.loop = node.loop
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self.paused = False
        self.resumed: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, frame: bytes) -> None:
        out = self._out
        out.append(frame)
        if len(out) == 1:
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        out, self._out = self._out, []
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)
        self.resumed = None

    async def drain(self) -> None:
        """Wait while the peer reads slower than we write (bounds our buffers)."""
        if self.paused:
            if self.resumed is None:
                self.resumed = self.loop.create_future()
            await asyncio.shield(self.resumed)

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        self.node.peer_lost(self)

    def data_received(self, data: bytes) -> None:
        pass  # data connections are one-way


class Incoming(asyncio.Protocol):
    """A peer's data connection to us."""

    __slots__ = ("node", "reader", "transport")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.reader = wire.FrameReader(node.layer.max_message_size)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is None or not peer_is_us(sock):
            logger.warning("IPC channel layer refused a connection from another user")
            transport.close()
            return
        self.node.incoming.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except wire.ProtocolError as exc:
            logger.warning("IPC channel layer: closing a connection that sent %s", exc)
            self.transport.close()  # type: ignore[union-attr]
            return
        self.node.on_data(frames)

    def connection_lost(self, exc: Exception | None) -> None:
        self.node.incoming.discard(self)
