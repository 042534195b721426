"""http.response.pathsend streams the file (issue 8, item 5): O(1) memory per response, any
length, back-pressure from slow clients, only regular files."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.server import http_apps
from tests.server.http_apps import Replay, body, start
from tests.server.wire import ask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NEXT = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"


def make_file(path, size: int, step: int) -> bytes:
    """A sparse file of ``size`` bytes with a distinct 4 KiB block every ``step``; its sha256."""
    with open(path, "wb") as f:
        f.truncate(size)
        for n, offset in enumerate(range(0, size - 4096, step)):
            f.seek(offset)
            f.write(hashlib.sha256(b"%d" % n).digest() * 128)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.digest()


async def served(running_server, app, request: bytes, methods=(b"GET", b"GET")):
    async with running_server(http_apps.ByPath({"/f": app})) as addr:
        return await ask(addr, request + NEXT, list(methods))


GET_F = b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("declared", [False, True])
async def test_pathsend_sends_the_file_and_keeps_the_connection_framed(
    running_server, tmp_path, declared
) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    app = http_apps.PathSend(str(path), len(data) if declared else None)
    parsed = await served(running_server, app, GET_F)
    first, second = parsed.answers
    assert first.body == data and first.header(b"content-length") == [b"%d" % len(data)]
    assert second.body == b"ok"


async def test_pathsend_after_streamed_body_is_the_last_chunk(running_server, tmp_path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"world")
    app = Replay(
        start(200),
        body(b"hello ", more=True),
        {"type": "http.response.pathsend", "path": str(path)},
    )
    parsed = await served(running_server, app, GET_F)
    assert parsed.answers[0].header(b"transfer-encoding") == [b"chunked"]
    assert [a.body for a in parsed.answers] == [b"hello world", b"ok"]


async def test_pathsend_empty_file(running_server, tmp_path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    parsed = await served(running_server, http_apps.PathSend(str(tmp_path / "empty")), GET_F)
    assert [a.body for a in parsed.answers] == [b"", b"ok"]


async def test_pathsend_to_head_sends_the_length_only(running_server, tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    request = b"HEAD /f HTTP/1.1\r\nHost: x\r\n\r\n"
    parsed = await served(
        running_server, http_apps.PathSend(str(tmp_path / "f")), request, [b"HEAD", b"GET"]
    )
    assert parsed.answers[0].header(b"content-length") == [b"5"]
    assert [a.body for a in parsed.answers] == [b"", b"ok"]


@pytest.mark.parametrize("declared", [4, 6])
async def test_pathsend_with_a_wrong_content_length_gives_500(running_server, tmp_path, declared):
    (tmp_path / "f").write_bytes(b"12345")
    parsed = await served(running_server, http_apps.PathSend(str(tmp_path / "f"), declared), GET_F)
    assert [a.status for a in parsed.answers] == [500] and parsed.closed


@pytest.mark.parametrize("kind", ["fifo", "directory", "missing", "device"])
async def test_pathsend_refuses_what_is_not_a_regular_file(running_server, tmp_path, kind) -> None:
    # A FIFO used to block a worker thread forever (and the request with it); /dev/zero was
    # read into memory without end.
    path = {"fifo": tmp_path / "fifo", "directory": tmp_path, "missing": tmp_path / "nope"}.get(
        kind, "/dev/zero"
    )
    if kind == "fifo":
        os.mkfifo(path)
    try:
        parsed = await served(running_server, http_apps.PathSend(str(path)), GET_F)
    finally:
        if kind == "fifo":  # let a reader blocked in open() go (the old behaviour)
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
    assert [a.status for a in parsed.answers] == [500] and parsed.closed


async def test_client_leaving_during_pathsend_is_not_an_application_error(
    running_server, tmp_path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "big"
    path.touch()
    os.truncate(path, 64 * 1024 * 1024)
    app = Replay(start(200), {"type": "http.response.pathsend", "path": str(path)})
    loop = asyncio.get_running_loop()
    async with running_server(app) as addr:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.setblocking(False)
        await loop.sock_connect(sock, addr)
        await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(loop.sock_recv(sock, 1000), 3)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.3)
        sock.close()  # unread data: the kernel resets the connection
        for _ in range(150):
            if app.errors:
                break
            await asyncio.sleep(0.02)
    assert app.errors and isinstance(app.errors[0], OSError)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records


# -- memory: a subprocess server, slow clients, a big file ---------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Download:
    """One response read off a socket: its head, and the sha256 and size of its body."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.head = b""
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, limit: int) -> bool:
        """One recv of at most ``limit`` bytes; False at EOF."""
        data = self.sock.recv(limit)
        if not self.head or not self.head.endswith(b"\r\n\r\n"):
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return bool(data)
            self.head, _, data = self.head.partition(b"\r\n\r\n")
            self.head += b"\r\n\r\n"
        self.digest.update(data)
        self.size += len(data)
        return bool(data)


# The CLI picks uvloop (no sendfile: chunks read in a thread); plain asyncio uses sendfile(2).
ASYNCIO_SERVER = (
    "import asyncio, sys\n"
    "from switchboard.server import Config, Server\n"
    "config = Config(app='tests.server.http_apps:pathsend_from_env', port=int(sys.argv[1]),"
    " lifespan='off')\n"
    "asyncio.run(Server(config).serve())\n"
)


@pytest.mark.parametrize("loop", ["uvloop-cli", "asyncio"])
def test_pathsend_memory_stays_flat_with_slow_clients(tmp_path, loop) -> None:
    size, clients = 200 * 1024 * 1024, 3
    path = tmp_path / "big.bin"
    expected = make_file(path, size, 7 * 1024 * 1024)
    port = _free_port()
    if loop == "asyncio":
        command = [sys.executable, "-c", ASYNCIO_SERVER, str(port)]
    else:
        command = [
            sys.executable,
            "-m",
            "switchboard",
            "serve",
            "tests.server.http_apps:pathsend_from_env",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ]
    env = {**os.environ, "SWITCHBOARD_TEST_FILE": str(path)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    downloads: list[Download] = []
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        baseline = _rss_kib(proc.pid)
        peak = [baseline]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_kib(proc.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            for _ in range(clients):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                sock.settimeout(10)
                sock.connect(("127.0.0.1", port))
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                downloads.append(Download(sock))
            # Slow clients: a trickle for a second, while the server has the file to send.
            for _ in range(20):
                for download in downloads:
                    download.read(16 * 1024)
                time.sleep(0.05)
            stalled_peak = peak[0]
            # Then everything, checked byte for byte.
            for download in downloads:
                while download.read(1 << 20):
                    pass
        finally:
            stop.set()
            sampler.join()
    finally:
        for download in downloads:
            download.sock.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for download in downloads:
        assert download.head.startswith(b"HTTP/1.1 200")
        assert b"content-length: %d\r\n" % size in download.head
        assert (download.size, download.digest.digest()) == (size, expected)
    growth_mib = (peak[0] - baseline) / 1024
    # The old code read the file into memory: 200 MiB per response.
    assert (stalled_peak - baseline) / 1024 < 40, f"grew {(stalled_peak - baseline) / 1024:.0f} MiB"
    assert growth_mib < 40, f"RSS grew {growth_mib:.0f} MiB for {clients} responses of 200 MiB"
