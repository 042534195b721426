"""Idle WebSockets at scale: how many one server process holds, how fast they open, what they cost.

Cases (each a fresh server process on 127.0.0.1, sharing this process's raised file limit):
  raw       ``switchboard serve bench.apps:ws_echo_app``, --conns (default 100 000)
  consumer  ``switchboard serve bench.consumer_apps:application``: an AsyncWebsocketConsumer on
            the in-memory layer (bench/consumers.py's app and settings), --conns (default 5 000)
  peer      the raw app on Switchboard and on uvicorn at --peer-conns (default 5 000), for the
            KiB-per-connection ratio (run with the raw case; --no-peer skips it)

Clients are forked worker processes (each within the per-process file limit) on non-blocking
sockets bound to their own loopback source addresses (127.0.0.2, .3, ...; ~28k ports each),
--in-flight handshakes at once in all. They answer the server's pings, so the connections stay
open at the servers' default settings. Reported: connections opened, handshakes/s over the
ramp, server RSS (VmRSS) before and 2 s after, KiB per connection, the server's CPU seconds
for the ramp, and the time one fresh connection then takes to open and echo a message.

One process holds at most its file limit of sockets. This harness raises its soft limit to the
hard one (servers and clients inherit it); where the hard limit is too low and cannot be raised
(setrlimit above it needs CAP_SYS_RESOURCE), the count is capped and the report says so.
--server-workers N spreads the raw case over N Switchboard processes (RSS and CPU summed).

Usage: ./scripts/bench idle_scale [--quick] [--conns N] [--case raw|consumer|both]
         [--peer-conns N] [--no-peer] [--in-flight N] [--server-workers N]
"""

from __future__ import annotations

import argparse
import errno
import math
import multiprocessing
import os
import resource
import selectors
import socket
import struct
import sys
import tempfile
import time
from typing import Any

from bench.consumers import server_command
from bench.server_ws import Server, handshake_request, masked_frame, open_ws

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
CLK_TCK = os.sysconf("SC_CLK_TCK")
RAW_APP = "bench.apps:ws_echo_app"
CONSUMER_APP = "bench.consumer_apps:application"
CONSUMER_TARGET_KIB = 8.0  # issue 25: an idle consumer connection costs at most this


# -- limits and /proc ------------------------------------------------------------------------


def raise_nofile(want: int) -> tuple[int, int, str]:
    """Soft file limit up to ``want`` (and the hard limit, if allowed); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    note = ""
    if want > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want, want, note
        except (ValueError, OSError):
            note = (
                f"the hard file limit is {hard} and cannot be raised here "
                "(setrlimit above it needs CAP_SYS_RESOURCE)"
            )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard, hard, note


def port_range_size() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
    return high - low + 1


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a --workers supervisor's forked workers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, ()))
    return tree


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return total


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLK_TCK


def open_fds(pids: list[int]) -> int:
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


def soft_nofile(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    return int(line.split()[3])


# -- client workers ----------------------------------------------------------------------------


def serve_frames(sock: socket.socket, buf: bytes) -> tuple[bytes, bool]:
    """Answer the server's pings in ``buf``; returns what is left and whether it sent close."""
    while len(buf) >= 2:
        length, head = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                break
            length, head = struct.unpack("!H", buf[2:4])[0], 4
        elif length == 127:
            if len(buf) < 10:
                break
            length, head = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < head + length:
            break
        opcode, payload, buf = buf[0] & 0x0F, buf[head : head + length], buf[head + length :]
        if opcode == 0x9:
            sock.send(masked_frame(0xA, payload))
        elif opcode == 0x8:
            return b"", True
    return buf, False


def client_worker(ctl: Any, port: int, path: str, addrs: list[str], count: int, per_addr: int,
                  in_flight: int) -> None:  # fmt: skip
    """Opens ``count`` WebSockets when told "go", reports, holds them until told "close"."""
    request = handshake_request(port, path)
    sel = selectors.EpollSelector()
    sel.register(ctl.fileno(), selectors.EVENT_READ, None)
    # per socket: [phase, buffer]; phase 0 connecting, 1 handshake sent, 2 open
    state: dict[socket.socket, list[Any]] = {}
    failures: dict[str, int] = {}
    started = opened = connecting = dropped = 0

    def fail(sock: socket.socket, why: str) -> None:
        nonlocal connecting
        failures[why] = failures.get(why, 0) + 1
        sel.unregister(sock)
        del state[sock]
        sock.close()
        connecting -= 1

    def start_one() -> None:
        nonlocal started, connecting
        sock = socket.socket()
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)  # port picked per 4-tuple
        sock.bind((addrs[started // per_addr], 0))
        err = sock.connect_ex(("127.0.0.1", port))
        started += 1
        connecting += 1
        state[sock] = [0, b""]
        sel.register(sock, selectors.EVENT_WRITE, state[sock])
        if err not in (0, errno.EINPROGRESS):
            fail(sock, errno.errorcode.get(err, str(err)))

    def handle(sock: socket.socket, st: list[Any]) -> None:
        nonlocal opened, connecting, dropped
        if st[0] == 0:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return fail(sock, errno.errorcode.get(err, str(err)))
            sock.send(request)
            st[0] = 1
            sel.modify(sock, selectors.EVENT_READ, st)
            return
        try:
            data = sock.recv(65536)
        except OSError as exc:
            data, why = b"", errno.errorcode.get(exc.errno or 0, "error")
        else:
            why = "closed"
        closing = False
        if st[0] == 1:
            if not data:
                return fail(sock, f"{why} in handshake")
            st[1] += data
            if b"\r\n\r\n" not in st[1]:
                return
            head, st[1] = st[1].split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 101"):
                return fail(sock, head.split(b"\r\n", 1)[0].decode(errors="replace"))
            st[0] = 2
            opened += 1
            connecting -= 1
            data = b""
        else:
            closing = not data  # the server closed (or reset) an open connection
        if data or st[1]:
            st[1], close_frame = serve_frames(sock, st[1] + data)
            closing = closing or close_frame
        if closing:
            dropped += 1
            sel.unregister(sock)
            del state[sock]
            sock.close()

    command = ctl.recv()
    if command != "go":
        return
    cpu0 = time.process_time()
    deadline = time.monotonic() + 900
    while started < count or connecting:
        while started < count and connecting < in_flight:
            start_one()
        for key, _ in sel.select(1.0):
            if key.data is not None:
                handle(key.fileobj, key.data)  # type: ignore[arg-type]
        if time.monotonic() > deadline:
            failures["ramp timeout"] = connecting
            break
    t1, cpu = time.monotonic(), time.process_time() - cpu0
    ctl.send({"opened": opened, "failures": failures, "t1": t1, "cpu": cpu})
    while True:  # hold: answer pings until told to close
        for key, _ in sel.select(1.0):
            if key.data is None:
                ctl.recv()
                for sock in state:
                    sock.close()
                ctl.send({"dropped": dropped, "open": len(state)})
                return
            handle(key.fileobj, key.data)  # type: ignore[arg-type]


# -- one measurement -------------------------------------------------------------------------


def echo_ms(port: int, path: str) -> float:
    """A fresh connection: open, handshake, one echo; milliseconds."""
    t = time.perf_counter()
    sock = open_ws(port, timeout=30, path=path)
    try:
        sock.sendall(masked_frame(0x1, b"still there?"))
        got = b""
        while len(got) < 2 + 12:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed instead of echoing")
            got += chunk
        if got[2:14] != b"still there?":
            raise ConnectionError(f"bad echo {got[:40]!r}")
    finally:
        sock.close()
    return (time.perf_counter() - t) * 1e3


def measure(
    server: Server, conns: int, in_flight: int, fd_limit: int, addr_base: int
) -> dict[str, Any]:
    """Ramp ``conns`` idle WebSockets up against ``server``, measure, close them."""
    warm = [open_ws(server.port, path=server.path) for _ in range(50)]
    for sock in warm:
        sock.close()
    time.sleep(0.5)
    per_worker = fd_limit - 200
    workers = math.ceil(conns / per_worker)
    per_addr = min(20_000, port_range_size() - 2000)
    ctx = multiprocessing.get_context("fork")
    procs, ctls = [], []
    next_addr = addr_base
    for w in range(workers):
        share = conns // workers + (1 if w < conns % workers else 0)
        n_addrs = math.ceil(share / per_addr)
        addrs = [f"127.0.0.{a}" for a in range(next_addr, next_addr + n_addrs)]
        next_addr += n_addrs
        parent_end, child_end = ctx.Pipe()
        args = (child_end, server.port, server.path, addrs, share, per_addr)
        proc = ctx.Process(target=client_worker, args=(*args, max(1, in_flight // workers)))
        proc.start()
        procs.append(proc)
        ctls.append(parent_end)
    try:
        pids = process_tree(server.proc.pid)
        fds0, rss0, cpu0 = open_fds(pids), rss_kib(pids), cpu_seconds(pids)
        t0 = time.monotonic()
        for ctl in ctls:
            ctl.send("go")
        reports = []
        for ctl, proc in zip(ctls, procs, strict=True):
            while not ctl.poll(1.0):
                if not proc.is_alive():
                    raise RuntimeError(f"client worker {proc.pid} died during the ramp")
            reports.append(ctl.recv())
        t1 = max(r["t1"] for r in reports)
        cpu1 = cpu_seconds(pids)
        opened = sum(r["opened"] for r in reports)
        failures: dict[str, int] = {}
        for r in reports:
            for why, n in r["failures"].items():
                failures[why] = failures.get(why, 0) + n
        time.sleep(2.0)  # let the server settle (and the allocator give back what it may)
        pids = process_tree(server.proc.pid)
        rss1, fds1 = rss_kib(pids), open_fds(pids)
        echo = echo_ms(server.port, server.path)
    finally:
        closing = []
        for ctl in ctls:
            try:
                ctl.send("close")
                closing.append(ctl)
            except OSError:
                pass
        dropped = sum(ctl.recv()["dropped"] for ctl in closing if ctl.poll(60))
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return {
        "conns": conns,
        "opened": opened,
        "failures": failures,
        "dropped": dropped,
        "rate": opened / (t1 - t0),
        "ramp s": t1 - t0,
        "rss0": rss0,
        "rss1": rss1,
        "kib": (rss1 - rss0) / max(opened, 1),
        "cpu": cpu1 - cpu0,
        "client cpu": sum(r["cpu"] for r in reports),
        "held fds": fds1 - fds0,
        "echo ms": echo,
        "clients": workers,
    }


# -- the run ------------------------------------------------------------------------------------


def start_server(name: str, server: str, app: str, path: str, workers: int) -> Server:
    def command(port: int) -> list[str]:
        cmd = server_command(server, port, app)
        return cmd + ["--workers", str(workers)] if workers > 1 else cmd

    env = {"BENCH_FRAMEWORK": "switchboard"} if app == CONSUMER_APP else None
    return Server(name, command=command, path=path, env=env)


def run_case(
    label: str, server: str, app: str, path: str, conns: int, args: argparse.Namespace
) -> dict[str, Any]:
    workers = args.server_workers if label == "raw" else 1  # the ratio and target: one process
    print(f"  {label} on {server}: {conns:,} connections…", file=sys.stderr, flush=True)
    s = start_server(label, server, app, path, workers)
    try:
        pids = process_tree(s.proc.pid)
        limit = min(soft_nofile(p) for p in pids)
        room = (limit - max(len(os.listdir(f"/proc/{p}/fd")) for p in pids) - 64) * len(pids)
        if workers > 1:
            room = int(room * (workers / len(pids)) * 0.85)  # accepts spread unevenly
        capped = conns > room
        result = measure(s, min(conns, room), args.in_flight, args.fd_limit, 2)
    finally:
        s.stop()
        s.log.seek(0)
        log = s.log.read().decode(errors="replace").strip()
    if log:  # warnings and errors only (--log-level warning): worth seeing, kept whole
        path = os.path.join(tempfile.gettempdir(), f"idle_scale-{label}-{server}.log")
        with open(path, "w") as f:
            f.write(log)
        print(f"  {label} on {server}, server log ({path}):\n{log[:1000]}", file=sys.stderr)
    result.update(label=label, server=server, workers=workers, asked=conns, capped=capped)
    result["limit"] = limit
    print(
        f"  {label} on {server}: {result['opened']:,} open, {result['rate']:,.0f}/s, "
        f"{result['kib']:.1f} KiB/conn, echo after {result['echo ms']:.1f} ms",
        file=sys.stderr,
        flush=True,
    )
    return result


def report(results: list[dict[str, Any]], note: str, in_flight: int) -> None:
    print(
        f"\nIdle WebSockets: {in_flight} handshakes in flight during the ramp; RSS before it and "
        "2 s after; CPU s: the server's for the ramp (client s: the clients')"
    )
    print(
        f"{'case':18s}{'server':13s}{'opened':>9s}{'conn/s':>9s}{'RSS0 MiB':>10s}"
        f"{'RSS1 MiB':>10s}{'KiB/conn':>10s}{'CPU s':>8s}{'client s':>9s}{'echo ms':>9s}"
    )
    for r in results:
        server = r["server"] + (f" x{r['workers']}" if r["workers"] > 1 else "")
        print(
            f"{r['label']:18s}{server:13s}{r['opened']:9,d}{r['rate']:9,.0f}"
            f"{r['rss0'] / 1024:10.1f}{r['rss1'] / 1024:10.1f}{r['kib']:10.2f}"
            f"{r['cpu']:8.2f}{r['client cpu']:9.2f}{r['echo ms']:9.1f}"
        )
    bad = False
    for r in results:
        lost = r["conns"] - r["opened"]
        if lost or r["dropped"] or r["held fds"] < r["opened"]:
            bad = True
            print(
                f"FAILED {r['label']} on {r['server']}: {lost} not opened {r['failures']}, "
                f"{r['dropped']} dropped while held, server holds {r['held fds']} more fds"
            )
        if r["capped"]:
            print(
                f"NOTE {r['label']}: asked for {r['asked']:,}, capped at {r['conns']:,}: the "
                f"server's file limit is {r['limit']:,} per process; {note or 'raise it'}; "
                "--server-workers N spreads them over N server processes"
            )
    by = {(r["label"], r["server"]): r for r in results}
    consumer = by.get(("consumer", "switchboard"))
    if consumer:
        verdict = "meets" if consumer["kib"] <= CONSUMER_TARGET_KIB else "MISSES"
        print(
            f"consumer on the in-memory layer: {consumer['kib']:.2f} KiB/conn, {verdict} the "
            f"{CONSUMER_TARGET_KIB:.0f} KiB target"
        )
    sb, uv = by.get(("peer", "switchboard")), by.get(("peer", "uvicorn"))
    if sb and uv:
        print(
            f"raw app at {sb['opened']:,} conns: switchboard {sb['kib']:.2f} KiB/conn, uvicorn "
            f"{uv['kib']:.2f} KiB/conn (sb/uvicorn {sb['kib'] / uv['kib']:.2f}x, lower is better)"
        )
    if bad:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 raw, 1,000 consumer/peer")
    parser.add_argument("--conns", type=int, default=None, help="default 100000 raw, 5000 consumer")
    parser.add_argument("--case", choices=["raw", "consumer", "both"], default="both")
    parser.add_argument("--peer-conns", type=int, default=None, help="default 5000")
    parser.add_argument("--no-peer", action="store_true", help="skip the uvicorn comparison")
    parser.add_argument("--in-flight", type=int, default=500, help="handshakes at once")
    parser.add_argument(
        "--server-workers", type=int, default=1, help="Switchboard --workers (default 1)"
    )
    args = parser.parse_args()
    raw_n = args.conns or (5_000 if args.quick else 100_000)
    consumer_n = args.conns or (1_000 if args.quick else 5_000)
    peer_n = args.peer_conns or (1_000 if args.quick else 5_000)
    biggest = max(raw_n if args.case != "consumer" else 0, consumer_n, peer_n)
    soft, hard, note = raise_nofile(biggest + 1000)
    args.fd_limit = soft
    print(
        f"  file limit {soft:,} (this process, its clients and servers); loopback sources from "
        f"127.0.0.2, {min(20_000, port_range_size() - 2000):,} connections each",
        file=sys.stderr,
    )
    results = []
    if args.case in ("raw", "both"):
        results.append(run_case("raw", "switchboard", RAW_APP, "/ws", raw_n, args))
    if args.case in ("consumer", "both"):
        results.append(
            run_case("consumer", "switchboard", CONSUMER_APP, "/echo/", consumer_n, args)
        )
    if args.case in ("raw", "both") and not args.no_peer:
        for server in ("switchboard", "uvicorn"):
            results.append(run_case("peer", server, RAW_APP, "/ws", peer_n, args))
    report(results, note, args.in_flight)


if __name__ == "__main__":
    main()
