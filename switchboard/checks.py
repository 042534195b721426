"""System checks (``manage.py check``, run by ``runserver``, ``migrate``, ``test``...).

Each one turns a setup mistake that would otherwise fail silently, or late and far from its
cause, into a message with an ID at startup:

- ``switchboard.E001``: "switchboard" listed after "django.contrib.staticfiles": staticfiles'
  WSGI ``runserver`` wins and WebSocket requests get 404.
- ``switchboard.W001``: "switchboard" not in INSTALLED_APPS at all. Our AppConfig never loads
  then, so this is registered by importing the modules consumers and middleware are built on,
  and shows only where those were imported before the checks ran (``manage.py test`` imports
  the test modules first; an app's ``ready()`` or admin module may). Django's own
  ``runserver`` loads none of them, so there nothing of ours can speak up.
- ``switchboard.E002``: ``ASGI_APPLICATION`` cannot be imported (names the failure and where).
- ``switchboard.E003``: a ``CHANNEL_LAYERS`` backend cannot be imported (with the install hint).
- ``switchboard.E004``: ``CHANNEL_LAYERS`` is not shaped ``{alias: {"BACKEND": ...}}``.

This module imports nothing that needs settings, so importing it before Django is set up
(as a project's asgi.py does indirectly) is safe.
"""

from __future__ import annotations

import importlib
import importlib.util
import traceback
from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

TAG = "switchboard"
APP = "switchboard"
STATICFILES = "django.contrib.staticfiles"

# Top-level module missing -> the extra that brings it.
_EXTRAS = {"redis": "redis", "hiredis": "redis", "cryptography": "crypto"}

# What people moving over from Channels still have in CHANNEL_LAYERS.
_CHANNELS_BACKENDS = {
    "channels_redis.core.RedisChannelLayer": "switchboard.layers.redis.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer": (
        "switchboard.layers.redis.RedisPubSubChannelLayer"
    ),
    "channels.layers.InMemoryChannelLayer": "switchboard.layers.inmemory.InMemoryChannelLayer",
}


def _installed_app_names() -> list[str]:
    # App configs, not the raw setting: entries may be AppConfig paths ("x.apps.XConfig").
    return [config.name for config in apps.get_app_configs()]


@register(TAG)
def check_installed_apps(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    names = _installed_app_names()
    if APP not in names:
        return [
            Warning(
                '"switchboard" is not in INSTALLED_APPS: `manage.py runserver` is then '
                "Django's WSGI server, where WebSocket requests get 404, and `manage.py "
                "runworker` does not exist.",
                hint='Add "switchboard" to INSTALLED_APPS, before "django.contrib.staticfiles".',
                id="switchboard.W001",
            )
        ]
    if STATICFILES in names and names.index(STATICFILES) < names.index(APP):
        return [
            Error(
                '"switchboard" comes after "django.contrib.staticfiles" in INSTALLED_APPS, so '
                "`manage.py runserver` is staticfiles' WSGI server: no WebSocket (they get 404).",
                hint='Move "switchboard" before "django.contrib.staticfiles" in INSTALLED_APPS.',
                id="switchboard.E001",
            )
        ]
    return []


def _where(exc: BaseException) -> str:
    """``" (file.py, line N)"`` for the innermost frame outside the import machinery."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ")
    ]
    if not frames:
        return ""
    return f" ({frames[-1].filename}, line {frames[-1].lineno})"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}{_where(exc)}"


def _install_hint(exc: BaseException) -> str | None:
    name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    extra = _EXTRAS.get((name or "").partition(".")[0])
    return f'pip install "switchboard[{extra}]"' if extra else None


@register(TAG)
def check_asgi_application(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return []  # runserver then serves Django's own ASGI handler
    module_path, _, attribute = str(path).rpartition(".")
    if not module_path:
        return [
            Error(
                f"ASGI_APPLICATION {path!r} is not a dotted path.",
                hint='Name the application object, e.g. "mysite.asgi.application".',
                id="switchboard.E002",
            )
        ]
    try:
        module = importlib.import_module(module_path)
    except Exception as exc:  # noqa: BLE001 - any failure here is the user's to see
        return [
            Error(
                f"ASGI_APPLICATION {path!r} cannot be imported: {_describe(exc)}",
                hint=_install_hint(exc),
                id="switchboard.E002",
            )
        ]
    application = getattr(module, attribute, None)
    if application is None:
        return [
            Error(
                f"ASGI_APPLICATION {path!r}: module {module_path!r} has no {attribute!r}.",
                id="switchboard.E002",
            )
        ]
    if not callable(application):
        return [
            Error(
                f"ASGI_APPLICATION {path!r} is a {type(application).__name__}, "
                "not an ASGI application.",
                id="switchboard.E002",
            )
        ]
    return []


@register(TAG)
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if layers is None:
        return []  # the embedded in-memory layer
    if not isinstance(layers, Mapping):
        return [
            Error(
                f"CHANNEL_LAYERS must be a dict of alias to layer, not {type(layers).__name__}.",
                hint='CHANNEL_LAYERS = {"default": {"BACKEND": "..."}}',
                id="switchboard.E004",
            )
        ]
    errors: list[CheckMessage] = []
    for alias, entry in layers.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("BACKEND"), str):
            errors.append(
                Error(
                    f"CHANNEL_LAYERS[{alias!r}] needs a BACKEND (a dotted path to a layer class).",
                    hint='e.g. {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}',
                    id="switchboard.E004",
                )
            )
            continue
        errors.extend(_check_backend(alias, entry))
    return errors


def _check_backend(alias: Any, entry: Mapping[str, Any]) -> list[CheckMessage]:
    backend = entry["BACKEND"]
    module_path, _, attribute = backend.rpartition(".")
    where = f"CHANNEL_LAYERS[{alias!r}] BACKEND {backend!r}"
    replacement = _CHANNELS_BACKENDS.get(backend)
    try:
        module = importlib.import_module(module_path) if module_path else None
    except Exception as exc:  # noqa: BLE001
        hint = _install_hint(exc)
        if replacement:
            hint = f"Switchboard's own layer takes the same CONFIG: {replacement!r}"
        return [
            Error(f"{where} cannot be imported: {_describe(exc)}", hint=hint, id="switchboard.E003")
        ]
    if module is None or not hasattr(module, attribute):
        return [
            Error(
                f"{where} is not a class in an importable module.",
                hint=f"Did you mean {replacement!r}?" if replacement else None,
                id="switchboard.E003",
            )
        ]
    config = entry.get("CONFIG") or {}
    if isinstance(config, Mapping) and config.get("symmetric_encryption_keys"):
        try:
            importlib.import_module("cryptography.fernet")
        except ImportError as exc:
            return [
                Error(
                    f"CHANNEL_LAYERS[{alias!r}] sets symmetric_encryption_keys, which needs the "
                    f"'cryptography' package: {_describe(exc)}",
                    hint='pip install "switchboard[crypto]"',
                    id="switchboard.E003",
                )
            ]
    return []
