"""tests/support/tcp_proxy.py on real loopback sockets, in the test's loop and as a subprocess."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.tcp_proxy import TcpProxy, is_websocket_upgrade, proxy_thread

ROOT = Path(__file__).resolve().parent.parent
UPGRADE = b"GET /ws/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
PLAIN = b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    """A target that sends back whatever it gets, and ends its side when the client does."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()
        except OSError:
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.fixture
async def proxy(echo: int) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy("127.0.0.1", echo, refuse_websocket=True).start()
    yield proxy
    await proxy.close()


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _ended(reader: asyncio.StreamReader) -> bool:
    """True once the connection is over: an end of stream or a reset."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionError:
        return True


def _ended_sync(sock: socket.socket) -> bool:
    try:
        return sock.recv(10) == b""
    except ConnectionError:
        return True


def test_what_counts_as_a_websocket_upgrade():
    assert is_websocket_upgrade(UPGRADE)
    assert is_websocket_upgrade(b"GET / HTTP/1.1\nupgrade:WebSocket\n\n")
    assert not is_websocket_upgrade(PLAIN)
    assert not is_websocket_upgrade(b"GET / HTTP/1.1\r\nX-Upgrade: websocket\r\n\r\n")
    assert not is_websocket_upgrade(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n")


async def test_pipes_both_ways_and_passes_the_end_on(proxy):
    reader, writer = await _connect(proxy.port)
    big = bytes(range(256)) * 2000  # more than one read's worth
    writer.write(PLAIN + big)
    assert await reader.readexactly(len(PLAIN) + len(big)) == PLAIN + big
    writer.write_eof()  # the echo server ends its side in turn, through the proxy
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_refuses_a_websocket_upgrade_and_inspects_only_the_first_request(proxy):
    reader, writer = await _connect(proxy.port)
    writer.write(UPGRADE)
    answer = await asyncio.wait_for(reader.read(), 5)  # then closed
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"\r\n\r\nno WebSockets past here\n")
    writer.close()
    assert proxy.refused_websockets == 1

    # A keep-alive connection: what follows its first request is piped, an upgrade included.
    reader, writer = await _connect(proxy.port)
    writer.write(PLAIN)
    assert await reader.readexactly(len(PLAIN)) == PLAIN
    writer.write(UPGRADE)
    assert await reader.readexactly(len(UPGRADE)) == UPGRADE
    writer.close()
    assert proxy.refused_websockets == 1


async def test_cut_closes_every_piped_connection_and_new_ones_still_work(proxy):
    pairs = [await _connect(proxy.port) for _ in range(3)]
    for reader, writer in pairs:
        writer.write(PLAIN)
        assert await reader.readexactly(len(PLAIN)) == PLAIN
    assert proxy.cut() == 3
    for reader, writer in pairs:
        assert await _ended(reader)
        writer.close()
    reader, writer = await _connect(proxy.port)
    writer.write(PLAIN)
    assert await reader.readexactly(len(PLAIN)) == PLAIN
    writer.close()


async def test_refuse_for_resets_new_connections_until_the_time_is_up(proxy):
    reader, writer = await _connect(proxy.port)
    writer.write(PLAIN)
    await reader.readexactly(len(PLAIN))
    loop = asyncio.get_running_loop()
    assert proxy.refuse_for(0.5) == 1
    refused_until = loop.time() + 0.5
    assert await _ended(reader)
    reader, writer = await _connect(proxy.port)  # accepted by the kernel, reset by the proxy
    assert await _ended(reader)
    assert proxy.reset == 1
    while True:  # a connection made after the window is piped again
        reader, writer = await _connect(proxy.port)
        writer.write(PLAIN)
        try:
            assert await asyncio.wait_for(reader.readexactly(len(PLAIN)), 5) == PLAIN
            break
        except (ConnectionError, asyncio.IncompleteReadError):
            assert loop.time() < refused_until + 2, "still refusing long after the window"
            await asyncio.sleep(0.05)
    assert loop.time() >= refused_until - 0.05  # not before it either
    writer.close()


async def test_cut_every_cuts_on_schedule(proxy):
    reader, writer = await _connect(proxy.port)
    writer.write(PLAIN)
    await reader.readexactly(len(PLAIN))
    loop = asyncio.get_running_loop()
    start = loop.time()
    proxy.cut_every(0.3, 0.1)
    assert await _ended(reader)
    assert 0.25 <= loop.time() - start < 3
    assert proxy.cuts == 1


def test_in_a_thread_for_synchronous_tests():
    with socket.create_server(("127.0.0.1", 0)) as target:
        with proxy_thread("127.0.0.1", target.getsockname()[1]) as proxy:
            client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            accepted, _ = target.accept()
            client.sendall(b"ping")
            assert accepted.recv(4) == b"ping"
            assert proxy.cut() == 1
            assert _ended_sync(client)  # the proxy closed it
            client.close()
            accepted.close()


def test_as_a_subprocess_cuts_on_sigusr1_and_exits_on_sigterm(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as target:
        command = [sys.executable, "-m", "tests.support.tcp_proxy", "--refuse-websocket"]
        command += ["--target", f"127.0.0.1:{target.getsockname()[1]}"]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            line = process.stdout.readline()
            assert line.startswith("listening on 127.0.0.1:"), line
            port = int(line.rsplit(":", 1)[1])
            refused = socket.create_connection(("127.0.0.1", port), timeout=5)
            refused.sendall(UPGRADE)
            assert refused.makefile("rb").readline() == b"HTTP/1.1 400 Bad Request\r\n"
            refused.close()

            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(PLAIN)
            accepted, _ = target.accept()
            assert accepted.recv(len(PLAIN)) == PLAIN
            process.send_signal(signal.SIGUSR1)
            assert _ended_sync(client)
            assert _ended_sync(accepted)
            client.close()
            accepted.close()
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
