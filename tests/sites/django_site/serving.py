"""Run the site in a real server subprocess and talk to it with real HTTP clients.

Django-free on purpose: the pytest process is configured with the suite's settings
(``tests.sites.default.settings``), so everything that touches this site's settings runs in a
subprocess.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # The worktree root: ``tests`` imports.
APP = "tests.sites.django_site.asgi:application"
SETTINGS = "tests.sites.django_site.settings"

Command = Callable[[int], list[str]]


def switchboard_command(port: int) -> list[str]:
    return [sys.executable, "-m", "switchboard", "serve", APP, "--port", str(port),
            "--log-level", "warning"]  # fmt: skip


def uvicorn_command(port: int) -> list[str]:
    """The peer, for manual comparison only (the bench extra, in ``.venv-bench``, provides it)."""
    return [sys.executable, "-m", "uvicorn", APP, "--port", str(port), "--log-level", "warning"]


def site_env(site_dir: Path, settings: str = SETTINGS, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=settings,
        DJANGO_SITE_DIR=str(site_dir),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def bootstrap_site(site_dir: Path) -> None:
    """Migrate the SQLite database in ``site_dir`` and create the superuser, before serving."""
    subprocess.run(
        [sys.executable, "-m", "tests.sites.django_site.bootstrap"],
        cwd=ROOT,
        env=site_env(site_dir),
        check=True,
        timeout=120,
        capture_output=True,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServedSite:
    port: int
    site_dir: Path
    log_path: Path

    def log(self) -> str:
        """The server's output so far (Django's request tracebacks land here)."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def serve(
    site_dir: Path,
    command: Command = switchboard_command,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> Iterator[ServedSite]:
    """One server process on a free loopback port; terminated (SIGTERM) on exit.

    ``env`` defaults to :func:`site_env` of ``site_dir``, ``log_path`` to its ``server.log``.
    """
    env = site_env(site_dir) if env is None else env
    log_path = site_dir / "server.log" if log_path is None else log_path
    for _attempt in range(3):  # Another process may take the free port before the server does.
        port = _free_port()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command(port), cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            if _wait_listening(port, proc):
                break
        except BaseException:
            _stop(proc)
            raise
    else:
        raise AssertionError(f"server did not start:\n{log_path.read_text(errors='replace')}")
    try:
        yield ServedSite(port, site_dir, log_path)
    finally:
        _stop(proc)


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> bool:
    """True once ``port`` accepts connections; False if the server exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            # Still alive: the listener is ours, not whoever took the port when our bind failed.
            return proc.poll() is None
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server not listening on port {port} after {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- clients -------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Client:
    """``http.client`` with a cookie jar: one keep-alive connection, reopened when closed."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    connections_opened: int = 0
    _conn: http.client.HTTPConnection | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Response:
        if self._conn is None or self._conn.sock is None:
            if self._conn is not None:
                self._conn.close()
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self._conn.connect()
            self.connections_opened += 1
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self._conn.request(method, path, body=body, headers=all_headers)
        raw = self._conn.getresponse()
        response = Response(raw.status, raw.headers, raw.read())
        self._store_cookies(response.headers.get_all("Set-Cookie") or [])
        return response

    def get(self, path: str, headers: dict | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: dict[str, str]) -> Response:
        from urllib.parse import urlencode

        return self.request(
            "POST",
            path,
            body=urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _store_cookies(self, set_cookies: list[str]) -> None:
        for line in set_cookies:
            jar: SimpleCookie = SimpleCookie()
            jar.load(line)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:  # Django's cookie deletion
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value


def raw_exchange(port: int, *parts: bytes, timeout: float = 30.0) -> bytes:
    """Write ``parts`` (one ``sendall`` each) on a fresh socket; read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for part in parts:
            sock.sendall(part)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return bytes(received)


def split_head(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased header fields (no repeats expected) and what follows the head."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw[:200]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"repeated field {name!r}"
        headers[name.lower()] = value.strip()
    return int(status), headers, rest


def decode_chunked(data: bytes) -> tuple[list[bytes], bytes]:
    """Strict RFC 9112 section 7.1 decoding: (the chunks, whatever follows the final CRLF)."""
    chunks = []
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        assert sep, "chunk size line not terminated"
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            break
        chunk, crlf, data = data[:size], data[size : size + 2], data[size + 2 :]
        assert len(chunk) == size and crlf == b"\r\n", "chunk shorter than its size line"
        chunks.append(chunk)
    trailer, sep, rest = data.partition(b"\r\n")
    while trailer:  # trailer fields, if any, up to the empty line
        trailer, sep, rest = rest.partition(b"\r\n")
    assert sep, "chunked body not terminated by an empty line"
    return chunks, rest
