"""WebSocket server benchmark: Switchboard vs granian vs uvicorn vs Daphne, rate and server CPU.

All serve the same raw ASGI echo app (bench.apps:ws_echo_app) as subprocesses in the same run,
one at a time under load, each with one worker and no access log: granian (Rust, --interface
asgi, uvloop), uvicorn (httptools + websockets, uvloop), Daphne (Twisted). The client runs in
this process on raw non-blocking sockets with pre-built masked frames, so per message it costs
a recv and a send: the servers' cost dominates.

Measures, median of several rounds:
  echo msg/s     --clients clients each doing request/response echo of a small text message
  µs CPU/msg     server CPU (user + system of its process tree, psutil) per echoed message
  KiB/idle conn  server RSS growth after opening --idle WebSockets, per connection
  conns/s        open + handshake + close handshake of --conns connections, 16 at once
  µs CPU/conn    server CPU per such connection
then sb/<peer> ratios of each. Issue 25's target: sb/uvicorn µs CPU/msg at most 0.50x.
A server that fails to start or to echo is reported as such and left out of the table.

Usage: ./scripts/bench server_ws [--quick] [--rounds N] [--duration S] [--idle N]
       [--servers switchboard,granian,uvicorn,daphne]
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

from bench.cpu import CpuMeter, tree_rss_kib

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
        "granian": [PY, "-m", "granian", "--interface", "asgi", *common, "--workers", "1"]
        + ["--loop", "uvloop", "--no-access-log", "--log-level", "warning", APP],
        "daphne": [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", APP],
    }


SERVERS = ("switchboard", "granian", "uvicorn", "daphne")


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
        """Resident memory of the whole process tree (granian serves from a child)."""
        return tree_rss_kib(self.proc.pid)

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
    return echo_round(port, clients, duration, size, path)[0]


def echo_round(
    port: int,
    clients: int,
    duration: float,
    size: int = 32,
    path: str = "/ws",
    pid: int | None = None,
) -> tuple[float, float]:
    """(messages per second, µs of CPU per message of process tree ``pid``, nan without one),
    each client with one message in flight; the CPU window leaves out opening and closing."""
    meter = CpuMeter(pid) if pid is not None else None
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
    if meter:
        meter.start()
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
    if meter:
        meter.stop()
    sel.close()
    for sock in socks:
        sock.close()
    return count / elapsed, meter.us_per(count) if meter else float("nan")


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


def measure_round(server: Server, args: argparse.Namespace) -> dict[str, float]:
    """One round on one server: echo rate and CPU per message, conns/s and CPU per conn."""
    rate, cpu_msg = echo_round(server.port, args.clients, args.duration, pid=server.proc.pid)
    if not rate:
        raise ConnectionError("no message was echoed back")
    meter = CpuMeter(server.proc.pid)
    meter.start()
    conns = bench_connections(server.port, args.conns, concurrency=16)
    meter.stop()
    return {
        "echo": rate,
        "echo_cpu": cpu_msg,
        "conns": conns,
        "conns_cpu": meter.us_per(args.conns),
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def report(
    med: dict[str, dict[str, float]], failed: dict[str, str], args: argparse.Namespace
) -> None:
    print()
    print(
        f"WebSocket echo ({args.clients} clients, 32 B text), idle memory ({args.idle} conns), "
        f"connections/s ({args.conns}, 16 at once); median of {args.rounds}, "
        f"{os.cpu_count()} CPUs"
    )
    cols = (("echo msg/s", "echo", 12, 0), ("µs CPU/msg", "echo_cpu", 12, 1))
    cols += (("KiB/idle conn", "mem", 15, 1), ("conns/s", "conns", 10, 0))
    cols += (("µs CPU/conn", "conns_cpu", 13, 1),)
    print(f"{'':14s}" + "".join(f"{title:>{w}s}" for title, _, w, _ in cols))
    for name, m in med.items():
        print(f"{name:14s}" + "".join(f"{m[k]:{w}.{d}f}" for _, k, w, d in cols))
    sb = med.get("switchboard")
    if sb:
        for peer, p in med.items():
            if peer != "switchboard":
                print(
                    f"{'sb/' + peer:14s}"
                    + "".join(f"{ratio(sb[k], p[k]):{w - 1}.2f}x" for _, k, w, _ in cols)
                )
        print("(msg/s, conns/s: higher is better; µs CPU and memory: lower is better)")
        # The kernel counts CPU time in clock ticks: a short conns round spans only a few.
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
        print(
            f"(CPU is counted in {tick_us / 1000:g} ms ticks: µs CPU/conn is good to about "
            f"±{tick_us / args.conns:.0f} µs with --conns {args.conns})"
        )
        if "uvicorn" in med:
            cpu = ratio(sb["echo_cpu"], med["uvicorn"]["echo_cpu"])
            verdict = "met" if cpu <= 0.5 else "not met"
            print(f"target sb/uvicorn µs CPU/msg <= 0.50x: {cpu:.2f}x, {verdict}")
    for name, why in failed.items():
        print(f"{name}: not measured: {why}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per echo round")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--idle", type=int, default=5000, help="idle connections for memory")
    parser.add_argument("--conns", type=int, default=1000, help="connections per conns/s round")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.idle, args.conns = 1, 1.5, 1000, 300

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))

    names = [n for n in args.servers.split(",") if n]
    servers: dict[str, Server] = {}
    failed: dict[str, str] = {}
    try:
        for name in names:
            try:
                servers[name] = Server(name)
            except (RuntimeError, OSError) as exc:  # e.g. a peer that cannot serve the app
                failed[name] = f"did not start: {str(exc).strip()[-300:]}"
                print(f"  {name}: {failed[name]}", flush=True)
        results: dict[str, dict[str, list[float]]] = {n: {} for n in servers}
        for rnd in range(args.rounds):
            for name, server in servers.items():
                if name in failed:
                    continue
                try:
                    one = measure_round(server, args)
                except (RuntimeError, OSError) as exc:
                    failed[name] = f"round {rnd + 1} failed: {exc!r}"[:300]
                    print(f"  {name}: {failed[name]}", flush=True)
                    continue
                for key, value in one.items():
                    results[name].setdefault(key, []).append(value)
                print(
                    f"  round {rnd + 1} {name:12s} echo {one['echo']:9.0f} msg/s "
                    f"({one['echo_cpu']:5.1f} µs CPU/msg)  conns {one['conns']:7.0f}/s "
                    f"({one['conns_cpu']:6.1f} µs CPU/conn)",
                    flush=True,
                )
        for name, server in servers.items():
            if name in failed:
                continue
            mem = bench_idle_memory(server, args.idle)
            results[name]["mem"] = [mem]
            print(f"  {name:12s} {mem:.1f} KiB per idle connection ({args.idle})", flush=True)
    finally:
        for server in servers.values():
            server.stop()

    med = {
        n: {k: statistics.median(v) for k, v in r.items()}
        for n, r in results.items()
        if n not in failed
    }
    report(med, failed, args)


if __name__ == "__main__":
    main()
