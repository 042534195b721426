"""The embedded default layer: in-memory for one process, IPC for `serve --workers N`."""

from __future__ import annotations

import logging

from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.layers.ipc import IPCChannelLayer
from switchboard.layers.registry import WORKERS_ENV, ChannelLayerManager


def test_no_setting_one_process_is_in_memory(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert isinstance(ChannelLayerManager(lambda: None)["default"], InMemoryChannelLayer)
    monkeypatch.setenv(WORKERS_ENV, "1")
    assert isinstance(ChannelLayerManager(lambda: None)["default"], InMemoryChannelLayer)


def test_no_setting_several_workers_is_ipc_and_says_so(monkeypatch, caplog):
    import switchboard.layers.registry as registry

    monkeypatch.setattr(registry, "_announced", False)
    monkeypatch.setenv(WORKERS_ENV, "3")
    caplog.set_level(logging.INFO, logger="switchboard.layers")
    assert isinstance(ChannelLayerManager(lambda: None)["default"], IPCChannelLayer)
    assert "3 server workers: using the IPC channel layer" in caplog.text


def test_a_setting_always_wins(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "4")
    configs = {"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}
    assert isinstance(ChannelLayerManager(lambda: configs)["default"], InMemoryChannelLayer)
