"""WebSocket server benchmark: Switchboard vs uvicorn (httptools + websockets, uvloop) vs Daphne.

All three serve the same raw ASGI echo app (bench.apps:ws_echo_app) as subprocesses in the same
run, one at a time under load. The client runs in this process on raw non-blocking sockets with
pre-built masked frames, so per message it costs a recv and a send: the servers' cost dominates.

Measures, median of several rounds:
  echo msgs/s    --clients clients each doing request/response echo of a small text message
  KiB/idle conn  server RSS growth (VmRSS) after opening --idle WebSockets, per connection
  conns/s        open + handshake + close handshake of --conns connections, 16 at once

Usage: ./scripts/bench server_ws [--quick] [--rounds N] [--duration S] [--idle N]
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
APP = "bench.apps:ws_echo_app"
MASK = b"\x37\xfa\x21\x3d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_commands(port: int) -> dict[str, list[str]]:
    common = ["--host", "127.0.0.1", "--port", str(port)]
    return {
        "switchboard": [PY, "-m", "switchboard", "serve", APP, *common, "--no-access-log"]
        + ["--log-level", "warning"],
        "uvicorn": [PY, "-m", "uvicorn", APP, *common, "--http", "httptools", "--ws"]
        + ["websockets", "--loop", "uvloop", "--no-access-log", "--log-level", "warning"],
        "daphne": [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", APP],
    }


def handshake_request(port: int, path: str = "/ws") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (path.encode(), port, key)
    )


def masked_frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + MASK + masked


CLOSE_FRAME = masked_frame(0x8, struct.pack("!H", 1000))


class Server:
    """One server process on a free port, ready once it completes a WebSocket handshake.

    ``command(port)`` gives its command line (default: ``name``'s entry in
    ``server_commands``), ``path`` the WebSocket path to probe and measure, ``env`` extra
    environment variables.
    """

    def __init__(
        self,
        name: str,
        command: Callable[[int], list[str]] | None = None,
        path: str = "/ws",
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.port = free_port()
        if command is None:
            cmd = server_commands(self.port)[name]
            override = os.environ.get(f"BENCH_{name.upper()}_CMD")  # e.g. to try a branch
            if override:
                cmd = override.format(py=PY, app=APP, port=self.port).split()
        else:
            cmd = command(self.port)
        # A file, not a pipe: a pipe nobody reads would block the server once it fills.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})),
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                err = self.log.read().decode(errors="replace")
                raise RuntimeError(f"{self.name} exited early:\n{err[-2000:]}")
            try:
                sock = open_ws(self.port, path=self.path)
            except OSError:
                time.sleep(0.1)
                continue
            sock.close()
            return
        raise RuntimeError(f"{self.name} did not start listening on {self.port}")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read_response_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during handshake")
        data += chunk
    if not data.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(data[:100])
    return data.split(b"\r\n\r\n", 1)[1]


def open_ws(port: int, timeout: float = 5.0, path: str = "/ws") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(handshake_request(port, path))
    extra = read_response_head(sock)
    if extra:
        raise ConnectionError("unexpected data after the handshake")
    return sock


def bench_echo(
    port: int, clients: int, duration: float, size: int = 32, path: str = "/ws"
) -> float:
    """Messages per second, each client with one message in flight."""
    payload = b"x" * size
    frame = masked_frame(0x1, payload)
    expected = 2 + size
    socks = [open_ws(port, path=path) for _ in range(clients)]
    sel = selectors.DefaultSelector()
    pending = {}
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        pending[sock] = 0
    count = 0
    for sock in socks:
        sock.send(frame)
    start = time.perf_counter()
    end = start + duration
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in sel.select(0.5):
            sock = key.fileobj
            got = pending[sock] + len(sock.recv(65536))
            while got >= expected:
                got -= expected
                count += 1
                sock.send(frame)
            pending[sock] = got
    elapsed = time.perf_counter() - start
    sel.close()
    for sock in socks:
        sock.close()
    return count / elapsed


def bench_idle_memory(server: Server, count: int) -> float:
    """KiB of server RSS per idle, open WebSocket connection."""
    warm = [open_ws(server.port, path=server.path) for _ in range(50)]
    for sock in warm:
        sock.close()
    time.sleep(0.5)
    before = server.rss_kib()
    socks = []
    request = handshake_request(server.port, server.path)
    try:
        # Send every handshake first, then collect the answers: the server works in bulk.
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            sock.sendall(request)
            socks.append(sock)
        for sock in socks:
            read_response_head(sock)
        time.sleep(1.0)
        after = server.rss_kib()
    finally:
        for sock in socks:
            sock.close()
    time.sleep(1.0)
    return (after - before) / count


def bench_connections(port: int, total: int, concurrency: int) -> float:
    """Connections per second: TCP connect, handshake, close handshake, TCP close."""
    sel = selectors.DefaultSelector()
    request = handshake_request(port)
    started = done = 0
    state: dict[socket.socket, list] = {}

    def start_one() -> None:
        nonlocal started
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        state[sock] = [0, b""]  # phase 0: connecting, 1: handshake sent, 2: close sent
        sel.register(sock, selectors.EVENT_WRITE)
        started += 1

    t0 = time.perf_counter()
    for _ in range(min(concurrency, total)):
        start_one()
    deadline = t0 + 120
    while done < total and time.perf_counter() < deadline:
        for key, _ in sel.select(1.0):
            sock = key.fileobj
            st = state[sock]
            if st[0] == 0:
                sock.send(request)
                st[0] = 1
                sel.modify(sock, selectors.EVENT_READ)
                continue
            data = sock.recv(4096)
            if st[0] == 1:
                st[1] += data
                if b"\r\n\r\n" in st[1]:
                    if not st[1].startswith(b"HTTP/1.1 101"):
                        raise ConnectionError(st[1][:80])
                    sock.send(CLOSE_FRAME)
                    st[0], st[1] = 2, b""
            elif not data:  # the server closed TCP after the close handshake
                sel.unregister(sock)
                sock.close()
                del state[sock]
                done += 1
                if started < total:
                    start_one()
    elapsed = time.perf_counter() - t0
    for sock in state:
        sock.close()
    sel.close()
    if done < total:
        raise RuntimeError(f"only {done}/{total} connections completed")
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per echo round")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--idle", type=int, default=5000, help="idle connections for memory")
    parser.add_argument("--conns", type=int, default=1000, help="connections per conns/s round")
    parser.add_argument("--servers", default="switchboard,uvicorn,daphne")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.idle, args.conns = 1, 1.5, 1000, 300

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))

    names = args.servers.split(",")
    servers = {}
    try:
        for name in names:
            servers[name] = Server(name)
        results: dict[str, dict[str, list[float]]] = {n: {} for n in names}
        for rnd in range(args.rounds):
            for name, server in servers.items():
                r = results[name]
                r.setdefault("echo", []).append(
                    bench_echo(server.port, args.clients, args.duration)
                )
                r.setdefault("conns", []).append(
                    bench_connections(server.port, args.conns, concurrency=16)
                )
                print(
                    f"  round {rnd + 1} {name:12s} echo {r['echo'][-1]:9.0f} msg/s  "
                    f"conns {r['conns'][-1]:7.0f}/s",
                    flush=True,
                )
        for name, server in servers.items():
            mem = bench_idle_memory(server, args.idle)
            results[name]["mem"] = [mem]
            print(f"  {name:12s} {mem:.1f} KiB per idle connection ({args.idle})", flush=True)
    finally:
        for server in servers.values():
            server.stop()

    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    print()
    print(
        f"WebSocket echo ({args.clients} clients, 32 B text), idle memory ({args.idle} conns), "
        f"connections/s ({args.conns}, 16 at once); median of {args.rounds}"
    )
    header = f"{'':14s}{'echo msg/s':>12s}{'KiB/idle conn':>15s}{'conns/s':>10s}"
    print(header)
    for name in names:
        m = med[name]
        print(f"{name:14s}{m['echo']:12.0f}{m['mem']:15.1f}{m['conns']:10.0f}")
    sb = med.get("switchboard")
    if sb:
        for peer in names:
            if peer == "switchboard":
                continue
            p = med[peer]
            print(
                f"{'sb/' + peer:14s}{sb['echo'] / p['echo']:11.2f}x"
                f"{sb['mem'] / p['mem'] if p['mem'] else float('nan'):14.2f}x"
                f"{sb['conns'] / p['conns']:9.2f}x"
            )
        print("(echo and conns/s: higher is better; memory: lower is better)")


if __name__ == "__main__":
    main()
