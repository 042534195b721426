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
- ``switchboard.E005``: an in-memory layer under ``switchboard serve --workers N`` (N > 1):
  every worker process would have groups of its own, and a group message would silently
  reach only the consumers of the process that sent it.
- ``switchboard.W002``: no ``ASGI_APPLICATION`` (nor a Channels 1 ``ROUTING``): ``runserver``
  then serves Django's own handler, HTTP only, and every WebSocket handshake gets 500.
- ``switchboard.W003``: a ``CHANNEL_LAYERS`` backend named by its Channels 1 path
  (``asgi_redis.RedisChannelLayer``...): it works, as Switchboard's layer; the new path is named.

``switchboard serve`` runs the system checks too, once the application is imported and before
it listens (:func:`check_at_serve_startup`, registered with the server as a startup check):
errors stop it, warnings are logged. The checks that concern ``manage.py runserver`` alone
(E001, W001, E002, W002) say nothing there: ``serve`` takes its application on the command line
and is no management command.

This module imports nothing that needs settings, so importing it before Django is set up
(as a project's asgi.py does indirectly) is safe.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.core.checks import WARNING, CheckMessage, Error, Warning, register, run_checks

from switchboard.layers.registry import LEGACY_BACKENDS, serving_workers
from switchboard.server.runtime.app_import import describe_exception
from switchboard.server.runtime.startup import StartupCheckError, add_startup_check

if TYPE_CHECKING:
    from switchboard.server.runtime.config import Config

TAG = "switchboard"
APP = "switchboard"
STATICFILES = "django.contrib.staticfiles"
INMEMORY_LAYER = "switchboard.layers.inmemory.InMemoryChannelLayer"
IPC_LAYER = "switchboard.layers.ipc.IPCChannelLayer"
REDIS_LAYER = "switchboard.layers.redis.RedisChannelLayer"

logger = logging.getLogger("switchboard.checks")  # the name logging configs use

# The files ASGI_APPLICATION's failed import went through, for runserver's autoreloader to
# watch: a module whose import failed is not in sys.modules, where the reloader looks.
failed_import_files: set[str] = set()

# True while `switchboard serve` runs the checks (check_at_serve_startup): the checks about
# `manage.py runserver` alone stay quiet then.
_serve_startup = False

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
    if _serve_startup:
        return []  # the order of INSTALLED_APPS only decides which runserver runs
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


def _files_of(exc: BaseException) -> set[str]:
    files = {
        frame.filename
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<")
    }
    if isinstance(exc, SyntaxError) and exc.filename:
        files.add(exc.filename)  # the file that did not compile is in no frame
    return files


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.filename:
        return describe_exception(exc)  # the file that did not compile, with its full path
    return f"{type(exc).__name__}: {exc}{_where(exc)}"


def _install_hint(exc: BaseException) -> str | None:
    name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    extra = _EXTRAS.get((name or "").partition(".")[0])
    return f'pip install "switchboard[{extra}]"' if extra else None


@register(TAG)
def check_asgi_application(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if _serve_startup:
        return []  # serve was told its application on the command line
    path = getattr(settings, "ASGI_APPLICATION", None)
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    default = layers.get("default") if isinstance(layers, Mapping) else None
    if not path and isinstance(default, Mapping) and default.get("ROUTING"):
        return []  # a Channels 1 project: runserver serves its ROUTING (switchboard.classic)
    if not path:
        return [
            Warning(
                "ASGI_APPLICATION is not set: `manage.py runserver` serves Django's own ASGI "
                "handler, which speaks HTTP only, so every WebSocket handshake gets 500.",
                hint='Set ASGI_APPLICATION = "mysite.asgi.application", naming the '
                'ProtocolTypeRouter in your asgi.py that routes "websocket". A project without '
                "WebSockets can silence switchboard.W002.",
                id="switchboard.W002",
            )
        ]
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
        failed_import_files.update(_files_of(exc))
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
    legacy = LEGACY_BACKENDS.get(backend)
    if legacy is None:
        return _check_layer_class(alias, entry, backend)
    warning = Warning(
        f"CHANNEL_LAYERS[{alias!r}] BACKEND {backend!r} is Channels 1's; it runs as "
        f"{legacy[0]!r}, with the CONFIG keys that layer shares.",
        hint=f"Write BACKEND = {legacy[0]!r} to say so (and silence this).",
        id="switchboard.W003",
    )
    # The layer it runs as gets the same checks (an in-memory one under --workers N...).
    return [warning, *_check_layer_class(alias, entry, legacy[0])]


def _check_layer_class(alias: Any, entry: Mapping[str, Any], backend: str) -> list[CheckMessage]:
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
    workers = serving_workers()
    if workers > 1 and _is_in_memory(getattr(module, attribute)):
        return [
            Error(
                f"CHANNEL_LAYERS[{alias!r}] is an in-memory layer, but `switchboard serve "
                f"--workers {workers}` runs {workers} processes, each with memory of its own: "
                "a group message would reach only the consumers of the process that sent it, "
                "silently.",
                hint=f'On one machine use {{"BACKEND": "{IPC_LAYER}"}} (or leave '
                "CHANNEL_LAYERS out: serve --workers then gives the workers the IPC layer); on "
                f'several machines {{"BACKEND": "{REDIS_LAYER}", "CONFIG": {{"hosts": '
                '["redis://..."]}} (pip install "switchboard[redis]"). Or serve with '
                "--workers 1.",
                id="switchboard.E005",
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


def _is_in_memory(backend: Any) -> bool:
    from switchboard.layers.inmemory import InMemoryChannelLayer

    return isinstance(backend, type) and issubclass(backend, InMemoryChannelLayer)


def check_at_serve_startup(config: Config) -> None:
    """``switchboard serve``'s startup check: Django's system checks, as ``runserver`` runs
    them (no database or deployment checks), for a Django application.

    Errors raise :class:`~switchboard.server.runtime.startup.StartupCheckError` with their messages,
    so the server refuses to start (exit status 2) rather than fail at the first connection;
    warnings and lesser messages are logged. Silenced checks (``SILENCED_SYSTEM_CHECKS``) stay
    silent.
    """
    if not settings.configured or not apps.ready:
        return  # not a Django application, or one that never set Django up
    global _serve_startup
    _serve_startup = True
    try:
        messages = run_checks()
    except Exception as exc:  # noqa: BLE001 - a check that crashes (a broken URLconf, say)
        raise StartupCheckError(f"System checks failed: {describe_exception(exc)}") from exc
    finally:
        _serve_startup = False
    errors = []
    for message in messages:
        if message.is_silenced():
            continue
        if message.is_serious():
            errors.append(message)
        else:
            level = logging.WARNING if message.level >= WARNING else logging.INFO
            logger.log(level, "System check: %s", message)
    if errors:
        text = "\n".join(str(message) for message in errors)
        raise StartupCheckError(f"System check identified errors:\n{text}")


# Registered on import, like the checks above: the server runs it whenever a Django
# application it serves has imported this module (AppConfig.ready, the consumer bases, the
# native HTTP path).
add_startup_check(check_at_serve_startup)
