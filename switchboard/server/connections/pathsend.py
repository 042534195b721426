"""``http.response.pathsend``: opening the file an application names (HTTP/1.1 and HTTP/2)."""

from __future__ import annotations

import os
import stat
from typing import Any, BinaryIO

from switchboard.server.wire.http11_framing import InvalidResponse

# Without sendfile(2): read this much at a time in a worker thread.
FILE_CHUNK = 256 * 1024


def open_regular_file(path: Any) -> tuple[BinaryIO, int]:
    """Open ``path`` for http.response.pathsend; only regular files (a FIFO or a device could
    block forever or never end). O_NONBLOCK keeps opening a FIFO from blocking."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidResponse(f"http.response.pathsend: {path!r} is not a regular file")
        return os.fdopen(fd, "rb", buffering=0), info.st_size
    except BaseException:
        os.close(fd)
        raise
