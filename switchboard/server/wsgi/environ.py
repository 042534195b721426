"""The request side of a WSGI call: the PEP 3333 environ, its ``wsgi.input`` (the request body,
spooled on the event loop) and ``wsgi.file_wrapper``."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["SPOOL_MAX_MEMORY", "FileWrapper", "build_environ", "read_body"]

SPOOL_MAX_MEMORY = 2_621_440  # Django's FILE_UPLOAD_MAX_MEMORY_SIZE default (2.5 MB)


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; the adapter may send it by path."""

    __slots__ = ("filelike", "block_size")

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Any:
        read = self.filelike.read
        while data := read(self.block_size):
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendable_path(self) -> str | None:
        """The path of the file when sending it whole by path gives exactly what reading would.

        A regular file at position 0 (an already-read part would be sent again otherwise),
        opened in binary mode, whose name still points at the same inode.
        """
        f = self.filelike
        name = getattr(f, "name", None)
        if not isinstance(name, str) or "b" not in getattr(f, "mode", "b"):
            return None
        try:
            if f.tell() != 0:
                return None
            st = os.fstat(f.fileno())
            on_disk = os.stat(name)
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            return None
        if (st.st_dev, st.st_ino) != (on_disk.st_dev, on_disk.st_ino):
            return None
        import stat

        return os.path.abspath(name) if stat.S_ISREG(st.st_mode) else None


def _header_value(value: bytes) -> str:
    return value.decode("latin-1")


def build_environ(scope: dict[str, Any], body: Any) -> dict[str, Any]:
    """The PEP 3333 environ for an ASGI ``http`` scope; ``body`` is the spooled input.

    Strings are "native strings" (bytes as latin-1). ``SCRIPT_NAME`` is the scope's
    ``root_path``, ``PATH_INFO`` the path below it. Repeated fields are joined with ``,``
    (RFC 9110 section 5.3), cookies with ``; `` (RFC 6265 section 5.4). Field names holding
    ``_`` are dropped: they would be indistinguishable from their ``-`` twins in the environ.
    """
    root = scope.get("root_path", "") or ""
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root) :]
    server = scope.get("server") or ("unknown", 0)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 0),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.input_terminated": True,  # reading to EOF is safe, even without a length
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper()
        if "_" in name:
            continue
        if name == "CONTENT_LENGTH" or name == "CONTENT-LENGTH":
            key = "CONTENT_LENGTH"
        elif name == "CONTENT-TYPE":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.replace("-", "_")
        value = _header_value(raw_value)
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


async def read_body(receive: Callable[[], Awaitable[dict]], max_memory: int) -> Any | None:
    """The whole request body as a rewound file object; ``None`` if the client left first."""
    message = await receive()
    if message["type"] != "http.request":
        return None
    data = message.get("body", b"")
    if not message.get("more_body", False) and len(data) <= max_memory:
        return io.BytesIO(data)
    spool: Any = io.BytesIO()
    size = 0
    while True:
        if data:
            size += len(data)
            if size > max_memory and isinstance(spool, io.BytesIO):
                disk = tempfile.TemporaryFile(mode="w+b")
                disk.write(spool.getbuffer())
                spool = disk
            spool.write(data)
        if not message.get("more_body", False):
            break
        message = await receive()
        if message["type"] != "http.request":
            spool.close()
            return None
        data = message.get("body", b"")
    spool.seek(0)
    return spool
