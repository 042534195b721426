"""HTTP/2 hello-world with h2load: Switchboard vs hypercorn (h2c and h2 over TLS), TLS
handshakes/s vs uvicorn, and Switchboard's HTTP/1.1 with HTTP/2 on and off.

Usage: ./scripts/bench server_h2 [--quick] [--rounds 3] [--duration 3]

Each server runs bench.apps:hello_app in its own process with one worker and no access log;
h2load (one thread, ``-c 10 -m 10``) loads it over loopback. Server CPU per request is the
server's user+system time (its process tree) over the requests h2load completed. The
certificate is a throwaway self-signed one made with the openssl CLI. Rounds alternate
between servers and medians are compared; on a shared machine the ratios are noisy.
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
import tempfile
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
APP = "bench.apps:hello_app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory: str) -> tuple[str, str]:
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def command(name: str, port: int, cert: str, key: str, tls: bool) -> list[str]:
    p = str(port)
    quiet = ["--log-level", "warning"]
    if name.startswith("switchboard"):
        args = [PY, "-m", "switchboard", "serve", APP, "--port", p, "--no-access-log", *quiet]
        if name == "switchboard-no-h2":
            args.append("--no-http2")
        return args + (["--ssl-certfile", cert, "--ssl-keyfile", key] if tls else [])
    if name == "hypercorn":
        args = [PY, "-m", "hypercorn", APP, "--bind", f"127.0.0.1:{p}", "--workers", "1"]
        return args + (["--certfile", cert, "--keyfile", key] if tls else [])
    if name == "uvicorn":
        args = [PY, "-m", "uvicorn", APP, "--port", p, "--http", "httptools", "--loop", "uvloop"]
        args += ["--no-access-log", *quiet]
        return args + (["--ssl-certfile", cert, "--ssl-keyfile", key] if tls else [])
    raise ValueError(name)


def start(cmd: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{cmd[2:4]} did not start")


def h2load(url: str, args: list[str], timeout: float) -> tuple[float, int]:
    """(req/s, requests that succeeded)."""
    out = subprocess.run(
        ["h2load", *args, url], capture_output=True, text=True, timeout=timeout
    ).stdout
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    return (float(rate.group(1)) if rate else 0.0), (int(done.group(1)) if done else 0)


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def measure(name: str, tls: bool, mode: str, duration: float, paths: tuple[str, str]) -> tuple:
    """One server process, one load; (req/s, server CPU microseconds per request)."""
    port = free_port()
    proc = start(command(name, port, *paths, tls), port)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
    try:
        server = psutil.Process(proc.pid)
        if mode == "handshakes":
            # Every client is a new TLS connection with one request: handshakes per second.
            n = str(max(200, int(150 * duration)))
            load = ["-n", n, "-c", n, "-m", "1", "--h1", "-t", "1"]
        else:
            load = ["-c", "10", "-m", "10", "-t", "1", "-D", str(max(1, round(duration)))]
            load += ["--warm-up-time", "1"]
            if mode == "h1":
                load.append("--h1")
        # hypercorn serves from a child process: count the whole tree.
        tree = [server, *server.children(recursive=True)]
        before = _cpu(tree)
        rate, done = h2load(url, load, duration + 60)
        cpu = _cpu(tree) - before
        return rate, (cpu / done * 1e6 if done else float("nan"))
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true", help="one round of 2 s")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    for tool in ("h2load", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required (apt-get install nghttp2-client openssl)")
    rows = [
        ("h2c -c10 -m10", "h2c", False, ("switchboard", "hypercorn")),
        ("h2 over TLS -c10 -m10", "h2", True, ("switchboard", "hypercorn")),
        ("TLS handshakes (HTTP/1.1)", "handshakes", True, ("switchboard", "uvicorn")),
        ("HTTP/1.1 -c10 -m10, h2 on/off", "h1", False, ("switchboard", "switchboard-no-h2")),
    ]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_cert(tmp)
        for r in range(args.rounds):
            for label, mode, tls, names in rows:
                for name in names:
                    got = measure(name, tls, mode, args.duration, paths)
                    results.setdefault((label, name), []).append(got)
                    print(
                        f"round {r + 1} {label} {name}: {got[0]:,.0f}/s, {got[1]:,.0f} us CPU/req",
                        file=sys.stderr,
                    )
    print(
        f"\nh2load -t1, median of {args.rounds} x {args.duration:g}s, {os.cpu_count()} CPUs "
        "(shared machine: ratios are noisy)"
    )
    print(f"{'':32}{'A':>28}{'B':>28}{'A/B':>8}{'CPU/req A':>12}{'CPU/req B':>12}")
    for label, _, _, (a, b) in rows:
        ra, ca = (statistics.median(x) for x in zip(*results[(label, a)], strict=True))
        rb, cb = (statistics.median(x) for x in zip(*results[(label, b)], strict=True))
        print(
            f"{label:32}{f'{a} {ra:,.0f}/s':>28}{f'{b} {rb:,.0f}/s':>28}"
            f"{(ra / rb if rb else float('nan')):7.2f}x{ca:10,.0f}us{cb:10,.0f}us"
        )


if __name__ == "__main__":
    main()
