"""get_channel_layer: Django's CHANNEL_LAYERS setting, missing aliases, bad backends, defaults."""

from __future__ import annotations

import pytest
from django.test import override_settings

from switchboard.exceptions import InvalidChannelLayerError
from switchboard.layers import ChannelLayerManager, channel_layers, get_channel_layer
from switchboard.layers.inmemory import InMemoryChannelLayer

IN_MEMORY = "switchboard.layers.inmemory.InMemoryChannelLayer"


def test_default_alias_from_test_settings_is_in_memory():
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert get_channel_layer() is layer  # One instance per alias and process.


def test_settings_override_with_config():
    layers = {
        "default": {"BACKEND": IN_MEMORY},
        "small": {"BACKEND": IN_MEMORY, "CONFIG": {"capacity": 7, "expiry": 3}},
    }
    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.reset()
        small = get_channel_layer("small")
        assert isinstance(small, InMemoryChannelLayer)
        assert small.capacity == 7 and small.expiry == 3
        assert small is not get_channel_layer()


def test_missing_alias_returns_none():
    assert get_channel_layer("not-configured") is None


def test_bad_backend_path_raises():
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "no.such.module.Layer"}}):
        channel_layers.reset()
        with pytest.raises(InvalidChannelLayerError):
            get_channel_layer()


def test_backend_without_dots_and_missing_backend_key_raise():
    for entry in ({"BACKEND": "Layer"}, {"CONFIG": {}}, "not-a-mapping"):
        with override_settings(CHANNEL_LAYERS={"default": entry}):
            channel_layers.reset()
            with pytest.raises(InvalidChannelLayerError):
                get_channel_layer()


def test_unknown_config_option_raises():
    entry = {"BACKEND": IN_MEMORY, "CONFIG": {"not_an_option": 1}}
    with override_settings(CHANNEL_LAYERS={"default": entry}):
        channel_layers.reset()
        with pytest.raises(InvalidChannelLayerError):
            get_channel_layer()


def test_embedded_default_when_unset():
    with override_settings():
        from django.conf import settings

        del settings.CHANNEL_LAYERS
        channel_layers.reset()
        assert isinstance(get_channel_layer(), InMemoryChannelLayer)
        assert get_channel_layer("other") is None


def test_manager_with_explicit_source_and_set():
    manager = ChannelLayerManager(lambda: {"default": {"BACKEND": IN_MEMORY}})
    layer = manager["default"]
    assert isinstance(layer, InMemoryChannelLayer)
    replacement = InMemoryChannelLayer()
    assert manager.set("default", replacement) is layer
    assert manager["default"] is replacement


async def test_layer_from_registry_works():
    layer = get_channel_layer()
    await layer.send("registry.check", {"type": "m"})
    assert await layer.receive("registry.check") == {"type": "m"}
