"""Instructions per operation, counted by valgrind's callgrind: repeatable where seconds are not.

Wall-clock and even CPU-time figures on this 2-core machine move ±20% from run to run; the
number of instructions a server executes for the same requests does not (callgrind counts them
on a simulated CPU, whatever else the machine is doing). Each server runs under
``valgrind --tool=callgrind``; after a warm-up the harness zeroes the counters
(``callgrind_control -z``), drives ``--ops`` operations with a client in this process, then
dumps the counts (``callgrind_control -d``) and reads the total and the top functions by
their own (exclusive) instructions with ``callgrind_annotate``.

Workloads (each against the servers that can run it):
  http       GET / of bench.apps:hello_app                      switchboard, uvicorn
  ws         32-byte text echo, bench.apps:ws_echo_app          switchboard, uvicorn
  consumer   echo through AsyncWebsocketConsumer (bench.consumer_apps /echo/), the in-memory
             layer                          switchboard, channels (on uvicorn), daphne+channels
  django     GET /plain/ of bench/django_project                switchboard (native path),
             uvicorn (Django's ASGI handler), and "django alone": Django's WSGIHandler called
             in a loop on the same view by a Python process, no server (the floor)

The client keeps ``--concurrency`` connections with one request (or message) in flight each.
Functions are C functions of the interpreter and its extensions (Python code is counted
inside _PyEval_EvalFrameDefault); ``--top`` of them are printed with their share.

Usage: ./scripts/bench instructions [--workload http,ws,consumer,django] [--ops N]
                                    [--concurrency N] [--top N] [--servers a,b]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.server_ws import free_port, masked_frame, open_ws

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The venv's interpreter (a symlink to the binary, not a shell shim: valgrind does not follow
# exec() unless told to).
PY = sys.executable
HELLO, WS_ECHO = "bench.apps:hello_app", "bench.apps:ws_echo_app"
CONSUMERS = "bench.consumer_apps:application"
ROUTER, BARE = "bench.django_project.asgi:application", "bench.django_project.asgi:django_app"

FLOOR_SCRIPT = r"""
import os, sys
import django
django.setup()
from django.core.handlers.wsgi import WSGIHandler
from io import BytesIO
handler = WSGIHandler()
def environ():
    return {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/plain/",
            "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5555",
            "HTTP_HOST": "127.0.0.1:8000", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.input": BytesIO(), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False}
def start_response(status, headers, exc_info=None):
    return None
def once():
    body = handler(environ(), start_response)
    b"".join(body)
    body.close()
for _ in range(500):
    once()
print("ready", flush=True)
for line in sys.stdin:
    for _ in range(int(line)):
        once()
    print("done", flush=True)
"""


def server_command(server: str, app: str, port: int) -> tuple[list[str], dict[str, str]]:
    p = str(port)
    if server == "switchboard":
        cmd = [PY, "-m", "switchboard", "serve", app, "--host", "127.0.0.1", "--port", p,
               "--no-access-log", "--log-level", "warning"]  # fmt: skip
        return cmd, {}
    if server in ("uvicorn", "channels"):
        cmd = [PY, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", p, "--http",
               "httptools", "--ws", "websockets", "--loop", "uvloop", "--no-access-log",
               "--log-level", "warning", "--lifespan", "off"]  # fmt: skip
        return cmd, ({"BENCH_FRAMEWORK": "channels"} if server == "channels" else {})
    if server == "daphne+channels":
        cmd = [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", p, "-v", "0", app]
        return cmd, {"BENCH_FRAMEWORK": "channels"}
    raise ValueError(server)


class Counted:
    """One process under callgrind, with its counters zeroed and dumped on request."""

    def __init__(self, cmd: list[str], env: dict[str, str], stdin: bool = False) -> None:
        self.dir = tempfile.mkdtemp(prefix="sb-callgrind-")
        self.out = os.path.join(self.dir, "callgrind.out")
        full = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}", *cmd]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            full,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT, **env),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stderr=self.log,
            text=True,
        )

    def control(self, flag: str) -> None:
        subprocess.run(
            ["callgrind_control", flag, str(self.proc.pid)], check=True, capture_output=True
        )

    def dump(self) -> str:
        """Dumps the counts since the last zero; returns the dump file's path."""
        before = set(glob.glob(self.out + ".*"))
        self.control("-d")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = set(glob.glob(self.out + ".*")) - before
            if new:
                path = new.pop()
                time.sleep(0.5)  # let callgrind finish writing it
                return path
            time.sleep(0.1)
        raise RuntimeError("callgrind wrote no dump")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited under valgrind")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not start under valgrind")


def drive(
    socks: list[socket.socket], payload: bytes, ops: int, complete: Callable[[Any, bytes], int]
) -> None:
    """``ops`` exchanges of ``payload``, one in flight on each socket: ``complete(sock, data)``
    says how many answers ``data`` completed on ``sock``."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    sent = done = 0
    for sock in socks:
        if sent < ops:
            sock.sendall(payload)
            sent += 1
    while done < ops:
        for key, _ in sel.select(timeout=120):
            sock = key.fileobj
            data = sock.recv(65536)  # type: ignore[union-attr]
            if not data:
                raise ConnectionError("the server closed a connection")
            for _ in range(complete(sock, data)):
                done += 1
                if sent < ops:
                    sock.sendall(payload)  # type: ignore[union-attr]
                    sent += 1
    sel.close()
    for sock in socks:
        sock.close()


def http_drive(port: int, path: str, ops: int, concurrency: int) -> None:
    """``ops`` keep-alive GETs over ``concurrency`` connections."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    socks = []
    for _ in range(concurrency):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(sock)
    buffers = dict.fromkeys(socks, b"")

    def complete(sock: Any, data: bytes) -> int:
        buf, count = buffers[sock] + data, 0
        while (head_end := buf.find(b"\r\n\r\n")) >= 0:
            found = re.search(rb"(?i)content-length:\s*(\d+)", buf[:head_end])
            end = head_end + 4 + int(found[1])  # type: ignore[index]
            if len(buf) < end:
                break
            buf, count = buf[end:], count + 1
        buffers[sock] = buf
        return count

    drive(socks, request, ops, complete)


def ws_drive(port: int, path: str, ops: int, concurrency: int) -> None:
    """``ops`` echoes of a 32-byte text frame over ``concurrency`` WebSockets."""
    expected = 34  # the echoed frame: 2 header bytes and the 32 of the text
    socks = [open_ws(port, timeout=120, path=path) for _ in range(concurrency)]
    got = dict.fromkeys(socks, 0)

    def complete(sock: Any, data: bytes) -> int:
        count, got[sock] = divmod(got[sock] + len(data), expected)
        return count

    drive(socks, masked_frame(0x1, b"x" * 32), ops, complete)


def annotate(path: str, top: int) -> tuple[int, list[tuple[int, str]]]:
    """The dump's total, and its top functions by their own instructions."""
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", out)[1].replace(",", ""))  # type: ignore[index]
    rows: list[tuple[int, str]] = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S.*)$", line)
        # A dump taken mid-run also lists the frames still on the stack with their inclusive
        # cost (100% and more); the exclusive rows are the rest.
        if not m or float(m[2]) >= 99.5:
            continue
        where = m[3].split(" [")[0]
        source, _, function = where.rpartition(":")
        rows.append((int(m[1].replace(",", "")), f"{os.path.basename(source)}:{function}"))
        if len(rows) >= top:
            break
    return total, rows


def measure_server(
    server: str, app: str, workload: str, args: argparse.Namespace
) -> tuple[int, list]:
    port = free_port()
    cmd, env = server_command(server, app, port)
    counted = Counted(cmd, env)
    try:
        wait_port(port, counted.proc)
        drive, path = {
            "http": (http_drive, "/"),
            "django": (http_drive, "/plain/"),
            "ws": (ws_drive, "/ws"),
            "consumer": (ws_drive, "/echo/"),
        }[workload]
        drive(port, path, max(200, args.ops // 5), args.concurrency)  # warm up
        counted.control("-z")
        drive(port, path, args.ops, args.concurrency)
        total, rows = annotate(counted.dump(), args.top)
    finally:
        counted.stop()
    return total, rows


def measure_django_alone(args: argparse.Namespace) -> tuple[int, list]:
    env = {"DJANGO_SETTINGS_MODULE": "bench.django_project.settings"}
    counted = Counted([PY, "-c", FLOOR_SCRIPT], env, stdin=True)
    try:
        assert counted.proc.stdout and counted.proc.stdin
        if counted.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the Django loop did not start")
        counted.control("-z")
        counted.proc.stdin.write(f"{args.ops}\n")
        counted.proc.stdin.flush()
        if counted.proc.stdout.readline().strip() != "done":
            raise RuntimeError("the Django loop failed")
        total, rows = annotate(counted.dump(), args.top)
    finally:
        counted.proc.stdin.close()  # type: ignore[union-attr]
        counted.stop()
    return total, rows


PLANS = {
    "http": [("switchboard", HELLO), ("uvicorn", HELLO)],
    "ws": [("switchboard", WS_ECHO), ("uvicorn", WS_ECHO)],
    "consumer": [
        ("switchboard", CONSUMERS),
        ("channels", CONSUMERS),
        ("daphne+channels", CONSUMERS),
    ],
    "django": [("switchboard", ROUTER), ("uvicorn", BARE), ("django alone", "")],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="http,ws,consumer,django")
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--servers", default="", help="only these (comma-separated)")
    ap.add_argument("--quick", action="store_true", help="--ops 500")
    args = ap.parse_args()
    if args.quick:
        args.ops = 500
    only = set(filter(None, args.servers.split(",")))
    summary: list[tuple[str, str, float]] = []
    for workload in args.workload.split(","):
        for server, app in PLANS[workload]:
            if only and server not in only:
                continue
            if server == "django alone":
                total, rows = measure_django_alone(args)
            else:
                total, rows = measure_server(server, app, workload, args)
            per_op = total / args.ops
            summary.append((workload, server, per_op))
            print(f"\n== {workload} / {server}: {per_op:,.0f} instructions per operation "
                  f"({total:,} for {args.ops})")  # fmt: skip
            for count, name in rows:
                print(f"  {count / args.ops:>10,.0f}  {100 * count / total:5.1f}%  {name}")
            sys.stdout.flush()
    print(f"\nInstructions per operation (callgrind), {args.ops} operations, "
          f"{args.concurrency} connections")  # fmt: skip
    for workload in dict.fromkeys(w for w, _, _ in summary):
        rows = [(s, n) for w, s, n in summary if w == workload]
        base = rows[0][1]
        cells = "  ".join(f"{s} {n:,.0f} ({n / base:.2f}x)" for s, n in rows)
        print(f"  {workload:9s} {cells}")


if __name__ == "__main__":
    main()
