"""WebSocket protocol of the server, end to end: real server, real clients, raw frames."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import struct

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

try:
    from tests.server import ws_apps
except ImportError:  # tests/server imported as rootdir-relative modules
    import ws_apps  # type: ignore[no-redef]

APP = ws_apps.app
TIMEOUT = 5


def url(addr: tuple[str, int], path: str) -> str:
    return f"ws://{addr[0]}:{addr[1]}{path}"


async def report(addr: tuple[str, int], key: str) -> object:
    async with connect(url(addr, f"/report?key={key}")) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


# -- raw client ---------------------------------------------------------------------------------


class RawClient:
    """Speaks the handshake and frames by hand, to send what a correct client never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, addr: tuple[str, int], path: str = "/echo") -> RawClient:
        reader, writer = await asyncio.open_connection(*addr)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), key)
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_frame(
        self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0
    ) -> None:
        first = (0x80 if fin else 0) | rsv << 4 | opcode
        size = len(payload)
        if size < 126:
            head = bytes((first, (0x80 if mask else 0) | size))
        else:
            head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, size)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.writer.write(head + payload)

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        assert not second & 0x80, "server frames are never masked"
        return first & 0x0F, await self.reader.readexactly(size)

    async def expect_close(self, code: int) -> str:
        """Reads until the close frame (skipping pings), checks its code, expects EOF after."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x8:
                break
            assert opcode in (0x9, 0x1, 0x2), opcode
        (got,) = struct.unpack("!H", payload[:2])
        assert got == code, (got, payload[2:])
        assert await asyncio.wait_for(self.reader.read(), TIMEOUT) == b""  # server closes TCP
        return payload[2:].decode()

    def close(self) -> None:
        self.writer.close()


# -- messages -----------------------------------------------------------------------------------


async def test_echo_text_and_binary(running_server) -> None:
    async with running_server(APP) as addr, connect(url(addr, "/echo")) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xffbinary")
        assert await ws.recv() == b"\x00\xffbinary"
        big = os.urandom(200_000)  # 64-bit length frames both ways
        await ws.send(big)
        assert await ws.recv() == big
        await ws.send(["frag", "mented ", "text"])  # fragmented by the client
        assert await ws.recv() == "fragmented text"
        await ws.send([b"ab", b"cd"])
        assert await ws.recv() == b"abcd"


async def test_many_messages_in_one_read_keep_order(running_server) -> None:
    async with running_server(APP) as addr:
        raw = await RawClient.open(addr)
        for i in range(50):
            raw.send_frame(0x1, str(i).encode())
        for i in range(50):
            assert await raw.read_frame() == (0x1, str(i).encode())
        raw.close()


async def test_scope_subprotocol_and_accept_headers(running_server) -> None:
    async with running_server(APP) as addr:
        async with connect(url(addr, "/scope?x=1"), subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.response.headers["x-switchboard-test"] == "accepted"
            info = json.loads(await ws.recv())
        assert info["type"] == "websocket"
        assert info["path"] == "/scope"
        assert info["query_string"] == "x=1"
        assert info["subprotocols"] == ["chat.v1", "chat.v2"]
        assert info["extensions"] == ["websocket.http.response"]
        names = [name for name, _ in info["headers"]]
        assert "sec-websocket-key" in names and names == [n.lower() for n in names]
        async with connect(url(addr, "/scope")) as ws:
            assert ws.subprotocol is None
            assert json.loads(await ws.recv())["subprotocols"] == []


async def test_close_before_accept_is_403(running_server) -> None:
    async with running_server(APP) as addr:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(addr, "/reject?key=rej"))
        assert info.value.response.status_code == 403
        assert await report(addr, "rej") == "websocket.disconnect"


async def test_custom_denial_response(running_server) -> None:
    async with running_server(APP) as addr:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(addr, "/deny"))
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Token"
        assert response.body == b"no entry"


async def test_final_denial_body_send_returns_normally(running_server, caplog) -> None:
    # ASGI spec, websocket.http.response.body: the last body message ends the denial response;
    # sending it is not an error for the application.
    async with running_server(APP) as addr:
        with pytest.raises(InvalidStatus):
            await connect(url(addr, "/deny?key=denied"))
        assert await report(addr, "denied") == "sent"
    assert "Exception in ASGI application" not in caplog.text


async def test_invalid_handshake_never_reaches_the_app(running_server) -> None:
    async with running_server(APP) as addr:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(
            b"GET /record?key=bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.read(), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 400"), head
        writer.close()


# -- closing ------------------------------------------------------------------------------------


async def test_server_close_code_and_reason(running_server) -> None:
    async with running_server(APP) as addr:
        async with connect(url(addr, "/close?code=4001&reason=see+you")) as ws:
            assert await ws.recv() == "bye soon"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4001
        assert ws.close_reason == "see you"


async def test_client_close_code_reaches_app_and_send_after_raises(running_server) -> None:
    async with running_server(APP) as addr:
        async with connect(url(addr, "/record?key=c1")) as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
            await ws.close(4321, "client leaving")
        assert ws.close_code == 4321  # the server echoed it
        result = await report(addr, "c1")
        assert result == {
            "code": 4321,
            "reason": "client leaving",
            "send_after": "OSError:ClientDisconnected",
            # ASGI www spec, "Disconnect - receive event": sent when the connection is lost,
            # one event; receive() after it has nothing new to return, so it waits.
            "again": "waits",
        }


async def test_dropped_tcp_connection_is_1006_for_the_app(running_server) -> None:
    async with running_server(APP) as addr:
        raw = await RawClient.open(addr, "/record?key=drop")
        raw.send_frame(0x1, b"hi")
        assert await raw.read_frame() == (0x1, b"hi")
        raw.writer.transport.abort()
        result = await report(addr, "drop")
        assert result["code"] == 1006
        assert result["send_after"].startswith("OSError:")


async def test_invalid_close_code_is_protocol_error(running_server) -> None:
    async with running_server(APP) as addr:
        raw = await RawClient.open(addr, "/record?key=badclose")
        raw.send_frame(0x8, struct.pack("!H", 999))
        await raw.expect_close(1002)
        assert (await report(addr, "badclose"))["code"] == 1002


# -- protocol violations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"opcode": 0x1, "payload": b"\xff\xfe bad utf-8"}, 1007),
        ({"opcode": 0x3, "payload": b"reserved opcode"}, 1002),
        ({"opcode": 0x9, "payload": b"ping", "fin": False}, 1002),  # fragmented control frame
        ({"opcode": 0x1, "payload": b"unmasked", "mask": False}, 1002),
        ({"opcode": 0x1, "payload": b"rsv bit", "rsv": 0b100}, 1002),
        ({"opcode": 0x0, "payload": b"lone continuation"}, 1002),
    ],
    ids=["invalid-utf8", "bad-opcode", "fragmented-control", "unmasked", "rsv", "continuation"],
)
async def test_protocol_violations_close_the_connection(running_server, frame, code) -> None:
    async with running_server(APP) as addr:
        raw = await RawClient.open(addr)
        raw.send_frame(**frame)
        await raw.expect_close(code)


async def test_invalid_utf8_across_fragments_is_1007(running_server) -> None:
    async with running_server(APP) as addr:
        raw = await RawClient.open(addr)
        raw.send_frame(0x1, "é".encode()[:1], fin=False)  # half a character is fine so far
        raw.send_frame(0x0, b"\xffrest", fin=False)
        await raw.expect_close(1007)


async def test_oversized_message_is_1009(running_server) -> None:
    async with running_server(APP, ws_max_size=1024) as addr:
        raw = await RawClient.open(addr)
        raw.send_frame(0x2, b"x" * 1024)  # exactly the limit is fine
        assert await raw.read_frame() == (0x2, b"x" * 1024)
        raw.send_frame(0x2, b"x" * 1025)
        await raw.expect_close(1009)
        # the limit applies to the whole message, not each fragment
        raw = await RawClient.open(addr)
        raw.send_frame(0x2, b"x" * 600, fin=False)
        raw.send_frame(0x0, b"x" * 600)
        await raw.expect_close(1009)


# -- keepalive, timeouts, errors ----------------------------------------------------------------


async def test_keepalive_pings_keep_a_responsive_client(running_server) -> None:
    async with running_server(APP, ws_ping_interval=0.1, ws_ping_timeout=0.3) as addr:
        async with connect(url(addr, "/echo"), ping_interval=None) as ws:
            await asyncio.sleep(0.8)  # several pings, answered by the client library
            await ws.send("still here")
            assert await ws.recv() == "still here"


async def test_keepalive_timeout_closes_a_silent_client(running_server) -> None:
    async with running_server(APP, ws_ping_interval=0.1, ws_ping_timeout=0.2) as addr:
        raw = await RawClient.open(addr, "/record?key=silent")
        opcode, payload = await raw.read_frame()
        assert opcode == 0x9  # a ping, which this client ignores
        assert "keepalive" in await raw.expect_close(1011)
        assert (await report(addr, "silent"))["code"] == 1011


async def test_client_ping_gets_pong(running_server) -> None:
    async with running_server(APP, ws_ping_interval=None) as addr:
        raw = await RawClient.open(addr)
        raw.send_frame(0x9, b"are you there")
        assert await raw.read_frame() == (0xA, b"are you there")
        raw.send_frame(0xA, b"unsolicited pong is ignored")
        raw.send_frame(0x1, b"after")
        assert await raw.read_frame() == (0x1, b"after")
        raw.close()


async def test_app_exception_before_accept_is_500(running_server, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="switchboard.server.error")
    async with running_server(APP) as addr:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(addr, "/raise-before"))
        assert info.value.response.status_code == 500
    assert "boom before accept" in caplog.text


async def test_app_exception_after_accept_is_1011(running_server, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="switchboard.server.error")
    async with running_server(APP) as addr:
        async with connect(url(addr, "/raise-after")) as ws:
            await ws.send("trigger")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1011
    assert "boom after accept" in caplog.text


async def test_handshake_timeout_is_500(running_server) -> None:
    async with running_server(APP, ws_handshake_timeout=0.2) as addr:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(addr, "/never"), open_timeout=TIMEOUT)
        assert info.value.response.status_code == 500


async def test_app_ignoring_disconnect_is_cancelled(running_server) -> None:
    async with running_server(APP, application_close_timeout=0.2) as addr:
        async with connect(url(addr, "/linger?key=linger")) as ws:
            await ws.send("anything")
        assert await report(addr, "linger") == "cancelled after websocket.receive"


# -- flow control, shutdown, compression --------------------------------------------------------


async def test_slow_app_loses_nothing_with_small_queue(running_server) -> None:
    async with running_server(APP, ws_max_queue=2) as addr:
        async with connect(url(addr, "/stall?sleep=0.3")) as ws:
            for i in range(200):
                await ws.send(f"m{i}")
            for i in range(200):
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == f"m{i}"


async def test_send_waits_for_a_client_that_does_not_read(running_server) -> None:
    async with running_server(APP) as addr:
        raw = await RawClient.open(addr, "/flood?key=flood&count=64")  # 16 MiB
        await asyncio.sleep(0.5)
        received = 0
        while True:
            opcode, payload = await raw.read_frame()
            if opcode == 0x8:
                break
            received += len(payload)
        assert received == 64 * 256 * 1024
        raw.close()
        # send() had to wait for this client to read: it did not buffer 16 MiB at once
        assert await report(addr, "flood") >= 0.4


async def test_graceful_shutdown_sends_1001(running_server) -> None:
    async with running_server(APP, timeout_graceful_shutdown=3) as addr:
        ws = await connect(url(addr, "/echo"))
        await ws.send("hello")
        assert await ws.recv() == "hello"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1001


@pytest.mark.parametrize("enabled", [True, False])
async def test_permessage_deflate(running_server, enabled: bool) -> None:
    async with running_server(APP, ws_per_message_deflate=enabled) as addr:
        async with connect(url(addr, "/echo"), compression="deflate") as ws:
            header = ws.response.headers.get("Sec-WebSocket-Extensions")
            if enabled:
                assert header is not None and "permessage-deflate" in header
            else:
                assert header is None
            text = "compress me " * 1000
            await ws.send(text)
            assert await ws.recv() == text
            await ws.send(b"\x01" * 5000)
            assert await ws.recv() == b"\x01" * 5000


async def test_frames_split_at_every_byte(running_server) -> None:
    async with running_server(APP) as addr:
        raw = await RawClient.open(addr)
        frames = [(0x1, "dribbled ✓".encode()), (0x2, os.urandom(300)), (0x9, b"p")]
        for opcode, payload in frames:  # all in one write first
            raw.send_frame(opcode, payload)
        # then the same frames again, one byte per TCP write
        wire = bytearray()
        for opcode, payload in frames:
            key = os.urandom(4)
            size = len(payload)
            head = (
                bytes((0x80 | opcode, 0x80 | size))
                if size < 126
                else (struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size))
            )
            wire += head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        for i in range(len(wire)):
            raw.writer.write(wire[i : i + 1])
            await raw.writer.drain()
            await asyncio.sleep(0)
        got = [await raw.read_frame() for _ in range(6)]
        # pongs go out at once, echoes when the app has run: compare each kind in order
        assert [f for f in got if f[0] != 0xA] == [(0x1, frames[0][1]), (0x2, frames[1][1])] * 2
        assert [f for f in got if f[0] == 0xA] == [(0xA, b"p")] * 2
        raw.close()


async def test_mixed_frames_in_one_write(running_server) -> None:
    async with running_server(APP) as addr:
        raw = await RawClient.open(addr, "/record?key=mixed")
        raw.send_frame(0x1, b"one")
        raw.send_frame(0x9, b"ping")
        raw.send_frame(0x1, b"tw", fin=False)  # fragments: parsed by websockets from here on
        raw.send_frame(0x9, b"between fragments")
        raw.send_frame(0x0, b"o")
        raw.send_frame(0x1, b"three")
        got = [await raw.read_frame() for _ in range(5)]
        assert [f for f in got if f[0] == 0x1] == [(0x1, b"one"), (0x1, b"two"), (0x1, b"three")]
        assert [f for f in got if f[0] == 0xA] == [(0xA, b"ping"), (0xA, b"between fragments")]
        raw.send_frame(0x8, struct.pack("!H", 4000) + b"done")
        assert await raw.expect_close(4000) == "done"
        result = await report(addr, "mixed")
        assert (result["code"], result["reason"]) == (4000, "done")
