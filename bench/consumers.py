"""Consumer-path benchmark: Switchboard's consumers vs Django Channels 4, same server, one run.

Both frameworks serve the same consumers and routing (bench/consumer_apps.py) on the same ASGI
server (Switchboard's own by default, ``--server uvicorn`` for a neutral one), each with its
own in-memory channel layer. Each framework runs in its own server process; the client runs
here on raw sockets with pre-built frames, so the server process's work is what is measured.

Measures, median of several rounds:
  echo msgs/s       --clients clients doing request/response through AsyncWebsocketConsumer
  sync echo msgs/s  the same through the synchronous WebsocketConsumer (a thread per message)
  fan-out dlv/s     10 rooms x 10 members (the tutorial's chat consumer): one speaker per room
                    keeps --window messages in flight; every member's copy counts as one delivery
  KiB/idle conn     server RSS growth per idle, accepted consumer connection (--idle of them)

Usage: ./scripts/bench consumers [--quick] [--rounds N] [--server switchboard|uvicorn]
"""

from __future__ import annotations

import argparse
import resource
import selectors
import socket
import statistics
import sys
import time

from bench.server_ws import Server, bench_echo, bench_idle_memory, masked_frame, open_ws

PY = sys.executable
APP = "bench.consumer_apps:application"
FRAMEWORKS = ("switchboard", "channels")


def server_command(server: str, port: int, app: str = APP) -> list[str]:
    common = ["--host", "127.0.0.1", "--port", str(port)]
    if server == "switchboard":
        return [PY, "-m", "switchboard", "serve", app, *common, "--no-access-log"] + [
            "--log-level",
            "warning",
        ]
    if server == "uvicorn":
        return [PY, "-m", "uvicorn", app, *common, "--http", "httptools", "--ws", "websockets"] + [
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ]
    raise ValueError(f"unknown server {server!r}")


def bench_fanout(
    port: int, rooms: int, members: int, window: int, duration: float, size: int = 32
) -> float:
    """Deliveries per second: each room's speaker keeps ``window`` broadcasts in flight."""
    frame = masked_frame(0x1, b"y" * size)
    expected = 2 + size
    room_socks = [
        [open_ws(port, path=f"/chat/room{r}/") for _ in range(members)] for r in range(rooms)
    ]
    sel = selectors.DefaultSelector()
    pending: dict[socket.socket, int] = {}
    speakers = {room[0] for room in room_socks}
    for room in room_socks:
        for sock in room:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
            pending[sock] = 0
    for speaker in speakers:
        speaker.send(frame * window)
    count = 0
    start = time.perf_counter()
    end = start + duration
    while time.perf_counter() < end:
        for key, _ in sel.select(0.5):
            sock = key.fileobj
            got = pending[sock] + len(sock.recv(262144))
            frames, pending[sock] = divmod(got, expected)
            count += frames
            if frames and sock in speakers:  # its own broadcasts came back: send as many
                sock.send(frame * frames)
    elapsed = time.perf_counter() - start
    sel.close()
    for room in room_socks:
        for sock in room:
            sock.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--window", type=int, default=4, help="broadcasts in flight per room")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections for memory")
    parser.add_argument("--server", default="switchboard", choices=["switchboard", "uvicorn"])
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.idle = 1, 1.5, 1000

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.idle + 1000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.idle + 1000), hard))

    results: dict[str, dict[str, list[float]]] = {f: {} for f in FRAMEWORKS}
    served: dict[str, Server] = {}
    try:
        for framework in FRAMEWORKS:
            served[framework] = Server(
                framework,
                command=lambda port: server_command(args.server, port),
                path="/echo/",
                env={"BENCH_FRAMEWORK": framework},
            )
        for rnd in range(args.rounds):
            for framework, s in served.items():
                r = results[framework]
                r.setdefault("echo", []).append(
                    bench_echo(s.port, args.clients, args.duration, path="/echo/")
                )
                r.setdefault("sync", []).append(
                    bench_echo(s.port, args.clients, args.duration, path="/sync-echo/")
                )
                r.setdefault("fanout", []).append(
                    bench_fanout(s.port, 10, 10, args.window, args.duration)
                )
                print(
                    f"  round {rnd + 1} {framework:12s} echo {r['echo'][-1]:8.0f}/s  "
                    f"sync echo {r['sync'][-1]:7.0f}/s  fan-out {r['fanout'][-1]:8.0f} dlv/s",
                    flush=True,
                )
        # The same server with a bare ASGI echo app: its share of each connection's memory.
        served["server only"] = Server(
            "server only",
            command=lambda port: server_command(args.server, port, "bench.apps:ws_echo_app"),
            path="/ws",
        )
        for framework, s in served.items():
            mem = bench_idle_memory(s, args.idle)
            results.setdefault(framework, {})["mem"] = [mem]
            print(f"  {framework:12s} {mem:.1f} KiB per idle connection ({args.idle})", flush=True)
    finally:
        for s in served.values():
            s.stop()

    med = {f: {k: statistics.median(v) for k, v in r.items()} for f, r in results.items()}
    print()
    print(
        f"Consumer path on the {args.server} server, in-memory layer: echo ({args.clients} "
        f"clients), fan-out (10 rooms x 10 members, {args.window} in flight per room), "
        f"idle memory ({args.idle} conns); median of {args.rounds}"
    )
    print(f"{'':14s}{'echo/s':>10s}{'sync echo/s':>13s}{'fan-out dlv/s':>15s}{'KiB/conn':>10s}")
    for f in FRAMEWORKS:
        m = med[f]
        print(f"{f:14s}{m['echo']:10.0f}{m['sync']:13.0f}{m['fanout']:15.0f}{m['mem']:10.1f}")
    sb, ch = med["switchboard"], med["channels"]
    print(
        f"{'sb/channels':14s}{sb['echo'] / ch['echo']:9.2f}x{sb['sync'] / ch['sync']:12.2f}x"
        f"{sb['fanout'] / ch['fanout']:14.2f}x{sb['mem'] / ch['mem']:9.2f}x"
    )
    print("(throughput: higher is better; memory: lower is better)")
    base = med["server only"]["mem"]
    sb_net, ch_net = sb["mem"] - base, ch["mem"] - base
    print(
        f"\nMemory per idle connection: the server alone (bare echo app) {base:.1f} KiB; "
        f"on top of it, Switchboard's consumer path {sb_net:.1f} KiB, Channels' {ch_net:.1f} KiB "
        f"(sb/channels {sb_net / ch_net:.2f}x)"
    )


if __name__ == "__main__":
    main()
