"""HTTP/2 hardening probe (issue 19): the two costs an abusive HTTP/2 client could once run up.

Usage: ./scripts/bench h2_hardening [--quick] [--connections 50] [--requests 25000]
(or .venv/bin/python -m bench.h2_hardening: it needs only the server's own dependencies)

1. HPACK: one connection whose client advertises SETTINGS_HEADER_TABLE_SIZE = 2^31-1 asks for
   responses that each carry a field no other response has (a request id). The server's CPU
   time per 100 responses is measured over 2,000 responses after the first 1,000 and again
   after ``--requests``; a server whose encoder table follows the client grows with every
   response (target: at most 2x from 1k to 25k).
2. Unread request bodies: ``--connections`` connections each open 10 POST streams (then 100)
   and send as much body as the server's flow-control windows let them, to an application
   that never reads it. The server's resident memory per connection (target: at most 0.5 MB),
   and, for comparison, that of 100 streams that send no body at all: each stream is a
   running application task, whose cost is the stream's, not its body's.

The server is Switchboard serving bench.apps:h2_probe_app in a subprocess over h2c, with one
worker and no access log; the client is the ``h2`` library over blocking sockets. Linux only
(CPU and RSS come from /proc). It is a probe, not a race: one run, no peers.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = "bench.apps:h2_probe_app"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "switchboard", "serve", APP, "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "error", "--timeout-graceful-shutdown", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not start")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Client:
    """A blocking HTTP/2 client connection (prior knowledge, h2c)."""

    def __init__(self, port: int, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def read(self, timeout: float) -> list[h2.events.Event]:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (TimeoutError, BlockingIOError):
            return []
        if not data:
            raise ConnectionError("the server closed the connection")
        events = self.conn.receive_data(data)
        for e in events:
            if isinstance(e, h2.events.DataReceived) and e.flow_controlled_length:
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        self.flush()
        return events

    def start(self, path: str, method: str = "GET", end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"http")]
        fields += [(b":authority", b"localhost"), (b":path", path.encode())]
        self.conn.send_headers(sid, fields, end_stream=end)
        return sid

    def close(self) -> None:
        self.sock.close()


def hpack_cost(port: int, pid: int, total: int) -> tuple[float, float, int]:
    """(ms of server CPU per 100 responses after 1k, after ``total``, client table size)."""
    client = Client(port, {h2.settings.SettingCodes.HEADER_TABLE_SIZE: 2**31 - 1})
    client.conn.decoder.max_allowed_table_size = 2**31 - 1
    done = 0

    def batch(n: int) -> None:
        nonlocal done
        pending = {client.start("/unique") for _ in range(n)}
        client.flush()
        while pending:
            for e in client.read(10):
                if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                    pending.discard(e.stream_id)
        done += n

    def run_to(target: int) -> None:
        while done < target:
            batch(min(50, target - done))

    def measured(window: int = 2000) -> float:
        before = cpu_seconds(pid)
        run_to(done + window)
        return (cpu_seconds(pid) - before) * 1000 / (window / 100)

    try:
        run_to(1000)
        early = measured()
        run_to(total)
        late = measured()
        return early, late, client.conn.decoder.header_table.maxsize
    finally:
        client.close()


def open_streams(client: Client, path: str, streams: int, body: bool) -> int:
    """``streams`` POST streams on ``client``, and as much body on them as the server's windows
    let in: the bytes sent."""
    client.read(0.5)  # the server's SETTINGS
    ids = [client.start(path, "POST", end=False) for _ in range(streams)]
    client.flush()
    chunk = b"x" * 16384
    sent = 0
    while body:
        moved = 0
        for sid in ids:
            room = min(client.conn.local_flow_control_window(sid), len(chunk))
            if room > 0:
                client.conn.send_data(sid, chunk[:room])
                moved += room
        if not moved:
            # Nothing fits: see whether the server gives window back, else stop.
            if not client.read(0.3):
                break
            continue
        sent += moved
        client.flush()
    return sent


def unread_bodies(
    port: int, pid: int, connections: int, streams: int, body: bool = True
) -> tuple[float, int]:
    """(MiB of server RSS per connection, body bytes the server accepted per connection)."""
    warm = Client(port)  # the same work once, so the baseline has its code paths and pools
    open_streams(warm, "/hold?1", streams, body)
    warm.close()
    time.sleep(2.0)
    base = rss_mib(pid)
    clients: list[Client] = []
    sent = 0
    try:
        for _ in range(connections):
            clients.append(Client(port))
            sent += open_streams(clients[-1], "/hold?60", streams, body)
        time.sleep(1.0)
        return (rss_mib(pid) - base) / connections, sent // connections
    finally:
        for client in clients:
            client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--requests", type=int, default=25000)
    ap.add_argument("--quick", action="store_true", help="10 connections, 5,000 requests")
    args = ap.parse_args()
    if args.quick:
        args.connections, args.requests = 10, 5000
    port = free_port()
    proc = start_server(port)
    try:
        early, late, table = hpack_cost(port, proc.pid, args.requests)
        print(f"HPACK, client table 2^31-1 (server's encoder table as the client sees it: {table})")
        print(f"  server CPU per 100 responses after 1k: {early:.1f} ms")
        print(f"  server CPU per 100 responses after {args.requests // 1000}k: {late:.1f} ms")
        print(f"  growth: {late / early:.2f}x (target <= 2x)")
    finally:
        proc.terminate()
        proc.wait(15)
    print(f"Unread request bodies, {args.connections} connections (target <= 0.5 MB each)")
    for streams, body in ((10, True), (100, True), (100, False)):
        port = free_port()
        proc = start_server(port)
        try:
            per_conn, accepted = unread_bodies(port, proc.pid, args.connections, streams, body)
        finally:
            proc.terminate()
            proc.wait(15)
        what = f"{streams} streams" + ("" if body else ", no body")
        print(
            f"  {what:>20}: server RSS per connection {per_conn:.2f} MiB "
            f"({per_conn * 1.048576:.2f} MB), body let in {accepted:,} bytes"
        )


if __name__ == "__main__":
    main()
