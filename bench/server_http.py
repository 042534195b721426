"""HTTP hello-world req/s: Switchboard vs uvicorn (httptools, uvloop) vs Daphne, same run.

Usage: ./scripts/bench server_http [--quick] [--rounds 3] [--duration 3] [--connections 50]

Each server runs bench.apps:hello_app in its own process with one worker and no access log;
wrk (one thread) loads it over loopback. Rounds alternate between servers, medians are compared.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
APP = "bench.apps:hello_app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commands(port: int) -> dict[str, list[str]]:
    p = str(port)
    return {
        "switchboard": [
            PY,
            "-m",
            "switchboard",
            "serve",
            APP,
            "--port",
            p,
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        "uvicorn": [
            PY,
            "-m",
            "uvicorn",
            APP,
            "--port",
            p,
            "--http",
            "httptools",
            "--ws",
            "websockets",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        "daphne": [PY, "-m", "daphne", "-p", p, "-b", "127.0.0.1", APP],
    }


def start(name: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        commands(port)[name], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def wrk(port: int, duration: float, connections: int, close: bool = False) -> float:
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
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="one round of 2 s")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    names = ["switchboard", "uvicorn", "daphne"]
    keep: dict[str, list[float]] = {n: [] for n in names}
    fresh: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            proc, port = start(name)
            try:
                wrk(port, 1, 10)  # warm up
                keep[name].append(wrk(port, args.duration, args.connections))
                fresh[name].append(wrk(port, args.duration, 10, close=True))
            finally:
                proc.terminate()
                proc.wait(timeout=15)
            print(
                f"round {r + 1} {name}: {keep[name][-1]:,.0f} req/s keep-alive, "
                f"{fresh[name][-1]:,.0f} conn/s",
                file=sys.stderr,
            )
    med = {n: (statistics.median(keep[n]), statistics.median(fresh[n])) for n in names}
    sb = med["switchboard"]
    print(
        f"\nHTTP hello, wrk -t1 -c{args.connections}, median of {args.rounds} x "
        f"{args.duration:g}s, {os.cpu_count()} CPUs"
    )
    print(
        f"{'':28}{'switchboard':>12}{'uvicorn':>12}{'daphne':>12}{'sb/uvicorn':>12}"
        f"{'sb/daphne':>11}"
    )
    for i, label in enumerate(("req/s keep-alive", "new connections/s")):
        row = [med[n][i] for n in names]
        print(
            f"{label:28}"
            + "".join(f"{v:12,.0f}" for v in row)
            + f"{sb[i] / row[1]:11.2f}x{sb[i] / row[2]:10.2f}x"
        )


if __name__ == "__main__":
    main()
