"""``"module:attr"`` -> the object it names, with errors that say what is wrong."""

from __future__ import annotations

import importlib
from typing import Any


class AppImportError(ImportError):
    """The ``module:attr`` string does not name an importable ASGI application."""


def import_app(target: str | Any) -> Any:
    """``"pkg.module:attr"`` (or ``"pkg.module:attr.sub"``) -> the object; objects pass through."""
    if not isinstance(target, str):
        return target
    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise AppImportError(f"Application must be given as 'module:attribute', not {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppImportError(f"Cannot import module {module_name!r}: {exc}") from exc
        raise
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppImportError(f"Module {module_name!r} has no attribute {attrs!r}") from None
    return obj
