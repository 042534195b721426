"""HTTP hello-world: Switchboard vs granian vs uvicorn vs Daphne, throughput and server CPU.

Usage: ./scripts/bench server_http [--quick] [--rounds 3] [--duration 3] [--connections 50]
       [--servers switchboard,granian,uvicorn,daphne]

Each server runs bench.apps:hello_app in its own process with one worker and no access log:
granian (Rust, --interface asgi, uvloop), uvicorn (httptools, uvloop), Daphne (Twisted). wrk
(one thread) loads it over loopback, keep-alive with --connections, then 10 connections each
sending "Connection: close". Rounds alternate between servers; medians are compared.

Printed per server: req/s keep-alive, µs of server CPU per request, new connections/s and µs
of server CPU per connection, then sb/<peer> ratios of each. Server CPU is user + system time
of the server's whole process tree (granian works in a child process), read with psutil
before and after each wrk run. CPU per operation is the steadier figure on a busy machine:
wrk shares the cores with the server, so req/s also measures the client.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

from bench.cpu import CpuMeter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
APP = "bench.apps:hello_app"
SERVERS = ("switchboard", "granian", "uvicorn", "daphne")
METRICS = ("keep", "keep_cpu", "fresh", "fresh_cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commands(port: int) -> dict[str, list[str]]:
    p = str(port)
    quiet = ["--no-access-log", "--log-level", "warning"]
    return {
        "switchboard": [PY, "-m", "switchboard", "serve", APP, "--port", p, *quiet],
        "granian": [PY, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
        + ["--port", p, "--workers", "1", "--loop", "uvloop", "--no-ws", *quiet, APP],
        "uvicorn": [PY, "-m", "uvicorn", APP, "--port", p, "--http", "httptools"]
        + ["--ws", "websockets", "--loop", "uvloop", *quiet],
        # -v 0: at the default verbosity Daphne writes an access log line per request.
        "daphne": [PY, "-m", "daphne", "-p", p, "-b", "127.0.0.1", "-v", "0", APP],
    }


def start(name: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        commands(port)[name],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def wrk_run(port: int, duration: float, connections: int, close: bool = False) -> tuple[float, int]:
    """(requests per second, requests completed) of one wrk run."""
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"http://127.0.0.1:{port}/",
    ]
    if close:
        args[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 30).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    return (float(rate.group(1)) if rate else 0.0, int(count.group(1)) if count else 0)


def wrk(port: int, duration: float, connections: int, close: bool = False) -> float:
    """Requests per second of one wrk run."""
    return wrk_run(port, duration, connections, close)[0]


def measured(
    proc: subprocess.Popen, port: int, duration: float, connections: int, close: bool = False
) -> tuple[float, float]:
    """(requests per second, µs of server CPU per request) of one wrk run."""
    meter = CpuMeter(proc.pid)
    meter.start()
    rate, count = wrk_run(port, duration, connections, close)
    meter.stop()
    return rate, meter.us_per(count)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def report(med: dict[str, dict[str, float]], names: list[str], args: argparse.Namespace) -> None:
    print(
        f"\nHTTP hello, wrk -t1: -c{args.connections} keep-alive, -c10 'Connection: close'; "
        f"median of {args.rounds} x {args.duration:g}s, {os.cpu_count()} CPUs"
    )
    print(f"{'':14}{'req/s':>10}{'µs CPU/req':>12}{'conn/s':>10}{'µs CPU/conn':>13}")
    for name in names:
        m = med[name]
        print(
            f"{name:14}{m['keep']:10,.0f}{m['keep_cpu']:12.1f}"
            f"{m['fresh']:10,.0f}{m['fresh_cpu']:13.1f}"
        )
    if "switchboard" not in med:
        return
    sb = med["switchboard"]
    for peer in names:
        if peer == "switchboard":
            continue
        p = med[peer]
        print(
            f"{'sb/' + peer:14}"
            + "".join(
                f"{ratio(sb[k], p[k]):{w - 1}.2f}x"
                for k, w in zip(METRICS, (10, 12, 10, 13), strict=True)
            )
        )
    print("(req/s, conn/s: higher is better; µs CPU of the server process tree: lower is better)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    ap.add_argument("--quick", action="store_true", help="one round of 2 s")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    names = [n for n in args.servers.split(",") if n]
    unknown = set(names) - set(SERVERS)
    if unknown:
        sys.exit(f"unknown servers: {', '.join(sorted(unknown))} (known: {', '.join(SERVERS)})")
    results: dict[str, dict[str, list[float]]] = {n: {k: [] for k in METRICS} for n in names}
    for r in range(args.rounds):
        for name in names:
            proc, port = start(name)
            res = results[name]
            try:
                wrk(port, 1, 10)  # warm up (and let granian's worker come up behind its socket)
                keep, keep_cpu = measured(proc, port, args.duration, args.connections)
                fresh, fresh_cpu = measured(proc, port, args.duration, 10, close=True)
            finally:
                proc.terminate()
                proc.wait(timeout=15)
            for key, value in zip(METRICS, (keep, keep_cpu, fresh, fresh_cpu), strict=True):
                res[key].append(value)
            print(
                f"round {r + 1} {name}: {keep:,.0f} req/s keep-alive ({keep_cpu:.1f} µs CPU/req), "
                f"{fresh:,.0f} conn/s ({fresh_cpu:.1f} µs CPU/conn)",
                file=sys.stderr,
            )
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    report(med, names, args)


if __name__ == "__main__":
    main()
