"""SWITCHBOARD_TRANSPORTS: defaults, and the switchboard.E040 system check."""

from __future__ import annotations

from django.core.checks import run_checks
from django.test import override_settings

from switchboard.transports.settings import transport_settings


def _e040() -> list[str]:
    return [m.msg for m in run_checks(tags=["switchboard"]) if m.id == "switchboard.E040"]


def test_defaults_and_overrides():
    defaults = transport_settings()
    assert defaults.enabled == {"sse", "poll"}
    assert (defaults.heartbeat, defaults.poll_timeout, defaults.poll_idle) == (15, 25, 35)
    assert defaults.max_buffered_frames == 4096 and defaults.max_post_bytes == 1 << 20
    with override_settings(SWITCHBOARD_TRANSPORTS={"ENABLED": ["poll"], "POLL_TIMEOUT": 5}):
        changed = transport_settings()
        assert changed.enabled == {"poll"} and changed.poll_idle == 15
    assert _e040() == []


def test_e040_names_unknown_keys_and_bad_values():
    wrong = {"HEARTBEET": 3, "ENABLED": ["sse", "websocket"], "MAX_POST_BYTES": 0}
    with override_settings(SWITCHBOARD_TRANSPORTS=wrong):
        messages = _e040()
        # A malformed key falls back to its default at request time.
        assert transport_settings().max_post_bytes == 1 << 20
    assert len(messages) == 3, messages
    assert any("'HEARTBEET'" in m and "did you mean 'HEARTBEAT'" in m for m in messages)
    assert any("'websocket'" in m for m in messages)
    assert any("MAX_POST_BYTES" in m for m in messages)
    with override_settings(SWITCHBOARD_TRANSPORTS=["sse"]):
        assert _e040() == ["SWITCHBOARD_TRANSPORTS must be a dict, not list"]
