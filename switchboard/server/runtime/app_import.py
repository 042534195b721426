"""``"module:attr"`` -> the object it names, with errors that say what is wrong."""

from __future__ import annotations

import importlib
import logging
import sysconfig
import traceback
from pathlib import Path
from typing import Any

logger = logging.getLogger("switchboard.server")

# Code that is not the project's: a failure raised in there is reported at the project's
# line that called into it (a setting Django cannot use is the settings' fault, not Django's).
_LIBRARY_ROOTS = tuple(
    {
        Path(p).resolve()
        for p in (
            sysconfig.get_paths()["stdlib"],
            sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"],
            Path(__file__).resolve().parents[1],  # switchboard itself
        )
    }
)


class AppImportError(ImportError):
    """The ``module:attr`` string does not name an importable ASGI application."""


def import_app(target: str | Any) -> Any:
    """``"pkg.module:attr"`` (or ``"pkg.module:attr.sub"``) -> the object; objects pass through.

    Any exception while importing the module (a missing module, a ``SyntaxError`` or
    ``NameError`` in the project's code, Django's ``ImproperlyConfigured``) becomes one
    :class:`AppImportError` naming the file and line; the traceback is logged at debug level.
    """
    if not isinstance(target, str):
        return target
    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise AppImportError(f"Application must be given as 'module:attribute', not {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever the import raised, the operator sees it
        if isinstance(exc, ImportError) and exc.name and module_name.startswith(exc.name):
            message = f"Cannot import module {module_name!r}: {exc}"  # the module itself
        else:
            message = f"Cannot import module {module_name!r}: {describe_exception(exc)}"
        logger.debug("Importing %r failed", module_name, exc_info=exc)
        raise AppImportError(message) from exc
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppImportError(f"Module {module_name!r} has no attribute {attrs!r}") from None
    return obj


def describe_exception(exc: BaseException) -> str:
    """``"NameError: name 'x' is not defined (/path/routing.py, line 7)"``: one line."""
    if isinstance(exc, SyntaxError) and exc.filename:
        # The file that failed to compile is in no frame of the traceback.
        return f"{type(exc).__name__}: {exc.msg} ({exc.filename}, line {exc.lineno})"
    where = _project_frame(exc)
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    head = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return f"{head} ({where.filename}, line {where.lineno})" if where else head


def _project_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the project's own code, else the innermost outside the import
    machinery."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ")
    ]
    for frame in reversed(frames):
        if not _in_library(frame.filename):
            return frame
    return frames[-1] if frames else None


def _in_library(filename: str) -> bool:
    try:
        path = Path(filename).resolve()
    except OSError:
        return False
    return any(path.is_relative_to(root) for root in _LIBRARY_ROOTS)
