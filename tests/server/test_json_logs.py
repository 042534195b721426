"""``--log-format json``: the server's stderr as one JSON object per line, through the real
server in a subprocess.

Log pipelines (Kubernetes' node agents feeding Loki, Elasticsearch or CloudWatch) parse JSON
lines into fields rather than grepping text; uvicorn and gunicorn leave that to a logging
config. Every line must parse, whatever wrote it (life cycle, access, errors), and one line
must stay one line: a traceback goes into a field, its newlines escaped.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime

import httpx
from websockets.sync.client import connect

from tests.server.serve_process import Serving, free_port

OPS_APP = "tests.server.ops_apps:app"
BASE_KEYS = {"timestamp", "level", "logger", "pid", "message"}


def _records(stderr: str) -> list[dict]:
    """Every stderr line as JSON, with the keys every record has."""
    records = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\n{stderr}") from None
        assert isinstance(record, dict) and BASE_KEYS <= record.keys(), line
        assert datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).tzinfo
        records.append(record)
    return records


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request)
        data = b""
        while chunk := client.recv(65536):
            data += chunk
        return data


def _get(port: int, path: str) -> bytes:
    return _raw(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())


def _access(records: list[dict], **match) -> dict:
    found = [
        r
        for r in records
        if r["logger"] == "switchboard.server.access"
        and all(r.get(key) == value for key, value in match.items())
    ]
    assert len(found) == 1, (match, records)
    return found[0]


def test_every_line_is_json_with_the_access_fields_and_tracebacks(tmp_path) -> None:
    port = free_port()
    server = Serving(tmp_path / "err.log", OPS_APP, "--port", str(port), "--log-format", "json")
    try:
        server.wait_for("Listening on")
        assert _get(port, "/hello?x=1").startswith(b"HTTP/1.1 200")
        assert _get(port, "/boom").startswith(b"HTTP/1.1 500")
        assert _raw(port, b"NOT HTTP\r\n\r\n").startswith(b"HTTP/1.1 400")
        with connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi"
        with httpx.Client(http1=False, http2=True) as client:
            assert client.get(f"http://127.0.0.1:{port}/over-h2").status_code == 200
        server.wait_for("closed 1000")
        time.sleep(0.2)  # the HTTP/2 line is written once the stream is done
        assert server.stop() == 0
        records = _records(server.stderr)
    finally:
        server.close()

    pid = server.process.pid
    life = [r for r in records if r["logger"] == "switchboard.server"]
    assert life[0]["message"] == f"Started server process [{pid}]"
    assert {r["pid"] for r in records} == {pid}
    assert all(r["level"] == "INFO" for r in life)

    hello = _access(records, path="/hello")
    assert hello["message"].endswith("ms")  # the text line, as --log-format text shows it
    assert '"GET /hello?x=1 HTTP/1.1" 200' in hello["message"]
    client_host, _, client_port = hello["client"].rpartition(":")
    assert client_host == "127.0.0.1" and client_port.isdigit()
    assert hello["level"] == "INFO" and hello["event"] == "http"
    assert (hello["method"], hello["query"], hello["protocol"]) == ("GET", "x=1", "HTTP/1.1")
    assert hello["status"] == 200 and hello["size"] > len(b"app saw /hello")
    assert isinstance(hello["duration"], float) and 0 <= hello["duration"] < 5

    assert _access(records, path="/boom")["status"] == 500
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1, records
    error = errors[0]
    assert error["logger"] == "switchboard.server.error"
    assert error["message"] == "Exception in ASGI application"
    assert "AppFailure: the application failed on purpose" in error["traceback"]
    assert "ops_apps.py" in error["traceback"]

    refused = _access(records, status=400)
    assert refused["method"] is None and refused["duration"] is None and refused["size"] > 0

    handshake = _access(records, event="websocket.handshake")
    assert (handshake["method"], handshake["path"], handshake["status"]) == (
        "WEBSOCKET",
        "/ws/echo",
        101,
    )
    closed = _access(records, event="websocket.close")
    assert (closed["close_code"], closed["closed_by"]) == (1000, "server")
    assert (closed["messages_in"], closed["messages_out"]) == (1, 1)
    assert closed["path"] == "/ws/echo" and closed["client"] == handshake["client"]

    h2 = _access(records, path="/over-h2")
    assert (h2["protocol"], h2["status"]) == ("HTTP/2", 200)


def test_workers_write_json_lines_too(tmp_path) -> None:
    # Several processes share one stderr: each record is still a line of its own.
    port = free_port()
    server = Serving(
        tmp_path / "err.log",
        OPS_APP,
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-format",
        "json",
    )
    try:
        server.wait_for("Listening on")
        for _ in range(20):
            assert _get(port, "/boom").startswith(b"HTTP/1.1 500")
        assert server.stop() == 0
        records = _records(server.stderr)
    finally:
        server.close()
    assert len([r for r in records if r["level"] == "ERROR"]) == 20
    assert len({r["pid"] for r in records if r["message"].startswith("Started server")}) == 2
