"""The chat's WebSocket clients for bench/channels1.py: raw sockets, pre-built masked frames.

``ChatClients`` holds rooms x members connected to ``/chat/<room>/`` and runs the closed loop:
each member sends a text, waits until that text comes back through the room's group (counting
every text the group delivers meanwhile), and sends the next.
"""

from __future__ import annotations

import selectors
import socket
import time
from typing import Any

from bench.server_ws import handshake_request, masked_frame


def connect_ws(port: int, path: str, timeout: float = 10.0) -> tuple[socket.socket, bytes]:
    """A handshaken WebSocket and whatever the server sent after its 101."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(handshake_request(port, path))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            sock.close()
            raise ConnectionError(f"closed during the handshake of {path}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        raise ConnectionError(head[:80])
    return sock, rest


def split_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Whole server frames (opcode, payload) at the start of buf, and the rest."""
    frames, i = [], 0
    while len(buf) - i >= 2:
        opcode, length, start = buf[i] & 0x0F, buf[i + 1] & 0x7F, i + 2
        if length == 126:
            if len(buf) - i < 4:
                break
            length, start = int.from_bytes(buf[i + 2 : i + 4], "big"), i + 4
        elif length == 127:
            if len(buf) - i < 10:
                break
            length, start = int.from_bytes(buf[i + 2 : i + 10], "big"), i + 10
        if len(buf) - start < length:
            break
        frames.append((opcode, buf[start : start + length]))
        i = start + length
    return frames, buf[i:]


class ChatClients:
    """rooms x per_room chat members; run() is the closed loop (see the module docs)."""

    def __init__(self, port: int, rooms: int, per_room: int, prefix: str = "r") -> None:
        self.port = port
        self.paths = [f"/chat/{prefix}{r}/" for r in range(rooms) for _ in range(per_room)]
        self.socks: list[socket.socket] = []
        self.bufs: list[bytes] = []

    def connect(self, timeout: float = 10.0) -> None:
        for path in self.paths:
            sock, rest = connect_ws(self.port, path, timeout)
            self.socks.append(sock)
            self.bufs.append(rest)

    def run(self, duration: float, stall: float = 10.0) -> dict[str, Any]:
        sel = selectors.DefaultSelector()
        index = {}
        for i, sock in enumerate(self.socks):
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
            index[sock] = i
        seq = [0] * len(self.socks)
        sent_at = [0.0] * len(self.socks)
        latencies: list[float] = []
        deliveries = closed = 0
        perf = time.perf_counter

        def tag(i: int) -> bytes:
            return b"%d:%d" % (i, seq[i])

        def send(i: int) -> None:
            seq[i] += 1
            sent_at[i] = perf()
            self.socks[i].send(masked_frame(0x1, tag(i)))

        start = perf()
        for i in range(len(self.socks)):
            send(i)
        end, progress = start + duration, start
        while (now := perf()) < end and now - progress < stall:
            for key, _ in sel.select(0.2):
                i = index[key.fileobj]
                data = self.socks[i].recv(65536)
                if not data:
                    sel.unregister(key.fileobj)
                    closed += 1
                    continue
                frames, self.bufs[i] = split_frames(self.bufs[i] + data)
                for opcode, payload in frames:
                    if opcode != 0x1:
                        continue
                    deliveries += 1
                    if payload == tag(i):
                        progress = perf()
                        latencies.append(progress - sent_at[i])
                        send(i)
        elapsed = perf() - start
        sel.close()
        waiting = sum(1 for i in range(len(self.socks)) if perf() - sent_at[i] > stall)
        return {
            "sends": len(latencies),
            "deliveries": deliveries,
            "elapsed": elapsed,
            "lat": latencies,
            "stalled": waiting,
            "closed": closed,
        }

    def close(self) -> None:
        close = masked_frame(0x8, (1000).to_bytes(2, "big"))
        for sock in self.socks:
            try:
                sock.setblocking(True)
                sock.sendall(close)
            except OSError:
                pass
            sock.close()
        self.socks.clear()
