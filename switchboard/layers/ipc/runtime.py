"""Where the IPC layer's sockets live, and who may connect to them.

Everything is in one private directory per layer ``prefix`` and project: ``path`` if the
configuration names one, else ``$XDG_RUNTIME_DIR/switchboard-<hash>`` (a per-user tmpfs on
systemd hosts), else ``<tmp>/switchboard-<uid>/<hash>``. The hash covers the prefix and the
current directory, so serve workers, ``runworker`` and ``manage.py shell`` started from the
same project meet, and two projects on one host do not.

Other users can neither read nor inject messages: the directory is ``0700`` and must be ours
(a directory somebody else made in ``/tmp`` is refused, not used), each socket is ``0600``,
and every accepted connection's peer must run as our uid (``SO_PEERCRED``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import struct
import tempfile

__all__ = [
    "UnsafeRuntimeDir",
    "default_path",
    "ensure_private_dir",
    "listen_unix",
    "nobody_listens",
    "peer_is_us",
]


class UnsafeRuntimeDir(PermissionError):
    """The runtime directory is not ours alone; the layer will not use it."""


def default_path(prefix: str, project_dir: str | None = None) -> str:
    where = os.path.realpath(project_dir or os.getcwd())
    digest = hashlib.sha256(f"{prefix}\0{where}".encode()).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, f"switchboard-{digest}")
    return os.path.join(tempfile.gettempdir(), f"switchboard-{os.getuid()}", digest)


def ensure_private_dir(path: str) -> str:
    """Create ``path`` (and a missing per-user parent) as 0700; refuse it unless it is a real
    directory owned by us that nobody else can enter."""
    parent = os.path.dirname(path)
    if os.path.basename(parent).startswith("switchboard-"):
        _make_private(parent)
    _make_private(path)
    return path


def _make_private(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeRuntimeDir(f"IPC channel layer: {path} is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafeRuntimeDir(f"IPC channel layer: {path} belongs to uid {info.st_uid}, not us")
    if info.st_mode & 0o077:
        raise UnsafeRuntimeDir(
            f"IPC channel layer: {path} is open to other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}); make it 0700"
        )


def listen_unix(path: str) -> socket.socket:
    """A listening, non-blocking socket at ``path`` (0600), which replaces any file there.

    Bound under a temporary name and renamed into place once listening: a socket file at a
    final name always has a listener behind it unless its process died, so "connection
    refused" there reliably means a dead process (see :func:`nobody_listens`).
    """
    temporary = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(temporary)
        os.chmod(temporary, 0o600)
        sock.listen(512)
        sock.setblocking(False)
        os.replace(temporary, path)
    except OSError:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return sock


def nobody_listens(path: str) -> bool:
    """Whether ``path`` is a socket file left by a dead process (the connection is refused)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # no such file, or a busy listener (EAGAIN)
    finally:
        probe.close()
    return False


def remove_if_dead(path: str) -> bool:
    """Remove ``path`` if it is a dead process's socket; True once no such file is left."""
    if nobody_listens(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return not os.path.exists(path)


_PEERCRED = getattr(socket, "SO_PEERCRED", None)
_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_is_us(sock: socket.socket) -> bool:
    """Whether the process at the other end of a Unix socket runs as our uid.

    Where the platform cannot tell (no SO_PEERCRED), the 0700 directory is the only guard.
    """
    if _PEERCRED is None:
        return True
    try:
        _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, _PEERCRED, _UCRED.size))
    except OSError:
        return False
    return uid == os.getuid()
