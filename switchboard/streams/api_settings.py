"""``SWITCHBOARD_PUBLISH``: the publish API's keys and limits, read and validated.

.. code-block:: python

    SWITCHBOARD_PUBLISH = {
        "KEYS": [os.environ["SWITCHBOARD_PUBLISH_KEY"]],  # each at least 32 characters
        "MAX_BYTES": 65536,  # largest request body
        "RATE": 100,  # publications per second and key, on average...
        "BURST": 200,  # ... and at most this many at once
    }

No setting, or no keys: the API is off (every request answers 404). A value that cannot work
is a configuration error: ``switchboard.E041`` at startup (``manage.py check``, ``runserver``,
``switchboard serve``), and :class:`PublishSettingsError` when a request reads it anyway.

Messages never quote a key: they end up in logs.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from switchboard.integration.settings import closest_name

__all__ = [
    "MIN_KEY_LENGTH",
    "SETTING",
    "PublishSettings",
    "PublishSettingsError",
    "check_publish_settings",
    "parse_publish_settings",
    "publish_settings",
]

SETTING = "SWITCHBOARD_PUBLISH"
MIN_KEY_LENGTH = 32
DEFAULT_MAX_BYTES = 65536
DEFAULT_RATE = 100.0
DEFAULT_BURST = 200
_KNOWN = ("KEYS", "MAX_BYTES", "RATE", "BURST")
_NEW_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


@dataclass(frozen=True)
class PublishSettings:
    """The parsed setting. ``keys`` as bytes, ready for :func:`hmac.compare_digest`."""

    keys: tuple[bytes, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST

    @property
    def enabled(self) -> bool:
        return bool(self.keys)


class PublishSettingsError(ImproperlyConfigured):
    """``SWITCHBOARD_PUBLISH`` cannot work; ``hint`` says how to fix it."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(f"{problem}. {hint}")
        self.problem = problem
        self.hint = hint


def _key_problem(index: int, key: Any) -> tuple[str, str] | None:
    where = f"{SETTING}['KEYS'][{index}]"
    if not isinstance(key, str):
        return (
            f"{where} is a {type(key).__name__}, not a string",
            f"Give each key as a string; make one with {_NEW_KEY}.",
        )
    if len(key) < MIN_KEY_LENGTH:
        return (
            f"{where} is {len(key)} characters long; a key needs at least {MIN_KEY_LENGTH}",
            f"Use a long random key, such as the output of {_NEW_KEY}.",
        )
    if not all("!" <= char <= "~" for char in key):
        # It travels in an Authorization header: printable ASCII, no spaces.
        return (
            f"{where} holds spaces, control or non-ASCII characters",
            f"A key is sent in the Authorization header: use printable ASCII only, such as "
            f"the output of {_NEW_KEY}.",
        )
    return None


def _number_problem(name: str, value: Any, *, integer: bool) -> tuple[str, str] | None:
    kind = "integer" if integer else "number"
    wrong_type = isinstance(value, bool) or not isinstance(
        value, numbers.Integral if integer else numbers.Real
    )
    if wrong_type or not value > 0:
        return (
            f"{SETTING}['{name}'] is {value!r}; it must be a positive {kind}",
            f"Remove it for the default ({_DEFAULTS[name]}), or give a positive {kind}.",
        )
    return None


_DEFAULTS = {"MAX_BYTES": DEFAULT_MAX_BYTES, "RATE": int(DEFAULT_RATE), "BURST": DEFAULT_BURST}


def setting_problems(value: Any) -> list[tuple[str, str]]:
    """Everything wrong with ``value`` as ``SWITCHBOARD_PUBLISH``: ``(problem, hint)`` pairs."""
    if not isinstance(value, dict):
        return [
            (
                f"{SETTING} is a {type(value).__name__}, not a dict",
                f'Write {SETTING} = {{"KEYS": [...]}} (and optionally MAX_BYTES, RATE, BURST).',
            )
        ]
    found: list[tuple[str, str]] = []
    for name in value:
        if name not in _KNOWN:
            close = closest_name(str(name).upper(), _KNOWN)
            hint = f"Did you mean {close!r}?" if close else f"Known keys: {', '.join(_KNOWN)}."
            found.append((f"{SETTING} has an unknown key {name!r}", hint))
    keys = value.get("KEYS", [])
    if isinstance(keys, str) or not isinstance(keys, list | tuple):
        found.append(
            (
                f"{SETTING}['KEYS'] is a {type(keys).__name__}, not a list of strings",
                f'Write "KEYS": [key, ...]; make a key with {_NEW_KEY}.',
            )
        )
    else:
        found.extend(p for i, key in enumerate(keys) if (p := _key_problem(i, key)) is not None)
    for name, integer in (("MAX_BYTES", True), ("RATE", False), ("BURST", True)):
        if name in value and (p := _number_problem(name, value[name], integer=integer)):
            found.append(p)
    return found


def parse_publish_settings(value: Any) -> PublishSettings:
    """``value`` (the setting, ``None`` when absent) parsed; :class:`PublishSettingsError`
    for the first problem."""
    if value is None:
        return PublishSettings()
    problems = setting_problems(value)
    if problems:
        raise PublishSettingsError(*problems[0])
    return PublishSettings(
        keys=tuple(key.encode("ascii") for key in value.get("KEYS", ())),
        max_bytes=int(value.get("MAX_BYTES", DEFAULT_MAX_BYTES)),
        rate=float(value.get("RATE", DEFAULT_RATE)),
        burst=int(value.get("BURST", DEFAULT_BURST)),
    )


def publish_settings() -> PublishSettings:
    """The project's setting, parsed (read anew each time: cheap, and follows
    ``override_settings``)."""
    return parse_publish_settings(getattr(settings, SETTING, None))


@checks.register("switchboard")
def check_publish_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``switchboard.E041``: one error per problem with ``SWITCHBOARD_PUBLISH``."""
    value = getattr(settings, SETTING, None)
    if value is None:
        return []
    return [
        checks.Error(problem, hint=hint, id="switchboard.E041")
        for problem, hint in setting_problems(value)
    ]
