"""The client side of ``bench/channels1.py --probe``: what a stack does, asked by real sockets.

Each check drives the probe consumers (c1chat/probes.py, routed only when C1_PROBE_LOG is set)
over a real WebSocket or HTTP request, then reads what the worker recorded in the log:

1. a consumer that sends (held, not immediately) to its reply channel and to a named channel,
   then raises: which of the two sends still go out;
2. the types of ``path`` and ``query_string`` in websocket.connect, websocket.receive and
   http.request (and of the headers);
3. whether a connect rejected with {"close": True} is followed by a websocket.disconnect;
4. the websocket.disconnect message for a client-closed socket (close 1000, close 4123, a
   close frame without a code, and a TCP drop without a close frame): its keys and ``code``.

Runs with the benchmark's interpreter (Python 3.11), not inside either stack.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from typing import Any

from bench.channels1_project.chat_client import connect_ws, split_frames
from bench.server_ws import masked_frame

SETTLE = 2.0  # seconds for the worker to handle what a check caused


def texts_for(sock: socket.socket, rest: bytes, seconds: float) -> list[str]:
    """The text frames that arrive within ``seconds``."""
    sock.settimeout(0.2)
    got, buf, end = [], rest, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        frames, buf = split_frames(buf + data)
        got += [p.decode() for op, p in frames if op == 0x1]
    return got


def close_frame(code: int) -> bytes:
    return masked_frame(0x8, code.to_bytes(2, "big"))


def records(log: str) -> list[dict[str, Any]]:
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [json.loads(line) for line in f if line.strip()]


def drive(port: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    # 1. held sends, then an exception
    sock, rest = connect_ws(port, "/probe/raise/")
    sock.sendall(masked_frame(0x1, b"go"))
    seen["raise_texts"] = texts_for(sock, rest, SETTLE)
    sock.close()
    # 2. types, over a WebSocket and an HTTP request
    sock, rest = connect_ws(port, "/probe/types/?a=1&b=%C3%A9")
    sock.sendall(masked_frame(0x1, b"hi"))
    seen["types_texts"] = texts_for(sock, rest, 1.0)
    sock.sendall(close_frame(1000))
    sock.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as http:
        http.sendall(b"GET /probe/http/?q=1&r=%C3%A9 HTTP/1.1\r\nHost: x\r\n")
        http.sendall(b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := http.recv(65536):
            answer += chunk
    seen["http_status"] = answer.split(b"\r\n", 1)[0].decode()
    # 3. a rejected connect
    try:
        sock, _ = connect_ws(port, "/probe/reject/")
        seen["reject"] = "accepted (101)"
        sock.close()
    except ConnectionError as exc:
        seen["reject"] = f"refused: {exc}"
    # 4. client-closed sockets
    for kind, frame in (
        ("close1000", close_frame(1000)),
        ("close4123", close_frame(4123)),
        ("closenocode", masked_frame(0x8, b"")),
        ("drop", None),
    ):
        sock, rest = connect_ws(port, f"/probe/{kind}/")
        if frame is not None:
            sock.sendall(frame)
            time.sleep(0.3)
        sock.close()
    # the path of a percent-encoded URL: %61 is "a"
    sock, rest = connect_ws(port, "/probe/pct%61/")
    sock.close()
    time.sleep(SETTLE)
    return seen


def run_probes(setup_class: Any, old_python: str | None, labels: dict[str, str]) -> None:
    names = ["switchboard"] + (["channels1"] if old_python else [])
    found: dict[str, tuple[dict[str, Any], list[dict[str, Any]], str]] = {}
    for name in names:
        fd, log = tempfile.mkstemp(prefix=f"c1probe-{name}-", suffix=".jsonl")
        os.close(fd)
        setup = setup_class(name, old_python, probe_log=log)
        try:
            seen = drive(setup.port)
        finally:
            setup.stop()
        found[name] = (seen, records(log), setup.output())
        os.remove(log)
    for name, (seen, logged, output) in found.items():
        print(f"\n=== {labels[name]}")
        print_findings(seen, logged, output)


def content_of(logged: list[dict[str, Any]], event: str, kind: str | None = None) -> list[Any]:
    return [
        r["content"]
        for r in logged
        if r["event"] == event and (kind is None or r.get("kind") == kind)
    ]


def print_findings(seen: dict[str, Any], logged: list[dict[str, Any]], output: str) -> None:
    sink = content_of(logged, "sink")
    print("(1) consumer sends (held) to its reply channel and to Channel('c1probe.sink'), raises:")
    print(f"    client received: {seen['raise_texts']!r}")
    print(f"    the sink consumer ran: {'yes, ' + repr(sink) if sink else 'no'}")
    print(f"    worker log mentions the error: {'probe: a consumer raising' in output}")
    print("(2) types (each value as [type, repr]):")
    for label, event, kind in (
        ("websocket.connect", "connect", "types"),
        ("websocket.receive", "receive", "types"),
        ("http.request", "http", None),
    ):
        for content in content_of(logged, event, kind)[:1]:
            keys = sorted(content)
            print(f"    {label}: keys {keys}")
            for key in ("path", "query_string", "text", "method"):
                if key in content:
                    print(f"      {key}: {content[key]}")
            if "headers" in content:
                print(f"      headers: {content['headers'][0]}, first {content['headers'][1][:1]}")
    print(f"    HTTP answer: {seen['http_status']}")
    for content in content_of(logged, "connect"):
        if "pct" in content["path"][1]:
            print(f"    websocket.connect to /probe/pct%61/: path {content['path']}")
    rejected = content_of(logged, "disconnect", "reject")
    print("(3) connect rejected with {'close': True}:")
    print(f"    client saw: {seen['reject']}")
    print(f"    websocket.disconnect followed: {'yes, ' + repr(rejected) if rejected else 'no'}")
    print("(4) websocket.disconnect for client-closed sockets:")
    for kind in ("types", "close1000", "close4123", "closenocode", "drop"):
        for content in content_of(logged, "disconnect", kind):
            print(f"    {kind:10s} {content}")
