"""The IPC layer's runtime directory: private to its user, refused when it is not."""

from __future__ import annotations

import os
import stat

import pytest

from switchboard.layers.ipc import IPCChannelLayer
from switchboard.layers.ipc.runtime import UnsafeRuntimeDir, default_path


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def test_directory_is_0700_and_sockets_and_lock_0600(tmp_path):
    path = tmp_path / "rt"
    layer = IPCChannelLayer(path=str(path))
    try:
        await layer.new_channel()
        assert mode(path) == 0o700
        names = sorted(os.listdir(path))
        assert "hub.sock" in names and "hub.lock" in names
        assert any(name.startswith("n-") for name in names)
        for name in names:
            assert mode(path / name) == 0o600, name
    finally:
        await layer.close()


async def test_a_directory_open_to_others_is_refused(tmp_path):
    path = tmp_path / "rt"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    layer = IPCChannelLayer(path=str(path))
    with pytest.raises(UnsafeRuntimeDir, match="open to other users"):
        await layer.new_channel()
    assert os.listdir(path) == []


async def test_a_symlink_in_place_of_the_directory_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "rt").symlink_to(target)
    layer = IPCChannelLayer(path=str(tmp_path / "rt"))
    with pytest.raises(UnsafeRuntimeDir, match="not a directory"):
        await layer.send("jobs", {"type": "m"})


def test_default_path_is_per_prefix_and_project_under_the_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    one = default_path("asgi", "/srv/one")
    assert os.path.dirname(one) == str(tmp_path)
    assert one != default_path("other", "/srv/one")
    assert one != default_path("asgi", "/srv/two")
    assert one == default_path("asgi", "/srv/one")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert f"switchboard-{os.getuid()}" in default_path("asgi", "/srv/one")
