"""Where the server's log lines go when nobody else has said.

Only the ``switchboard`` logger tree is configured, never the root logger: a Django project
(or any host program) configures its own loggers, and a handler on the root logger would print
every ``django.*`` record a second time next to Django's own console handler.

``--log-format json`` writes the same records as one JSON object per line
(:class:`JsonFormatter`), for log pipelines that parse rather than grep.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

LOGGER_NAME = "switchboard"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS = ("text", "json")
# ISO-like local time with milliseconds, level, pid (several workers share one stderr), logger.
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    Always: ``timestamp`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``pid`` and
    ``message`` (the text the text format would show). A record whose message carries
    ``fields`` (the access log's lines, see :mod:`switchboard.server.runtime.access_log`) adds them;
    a record with an exception adds ``traceback``, one with ``stack_info`` adds ``stack``.
    Django's ``LOGGING`` can use it for its own loggers:
    ``"formatters": {"json": {"()": "switchboard.server.runtime.logging_setup.JsonFormatter"}}``.
    """

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        out = {
            "timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record.msg, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["traceback"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: a field no JSON type fits is quoted, never a lost line.
        return json.dumps(out, default=str)


def configure_logging(
    level: str | None = "info",
    fmt: str = LOG_FORMAT,
    datefmt: str | None = None,
    log_format: str = "text",
) -> bool:
    """Give the ``switchboard`` tree a stderr handler unless a handler already receives it.

    "Already receives it" includes a handler on the root logger (``hasHandlers`` looks up the
    tree): a program that set up logging keeps its own routing. When we do add the handler,
    ``propagate`` is turned off so a root handler added later (e.g. by Django's ``LOGGING``)
    does not print our lines twice. ``level`` (a name from :data:`LOG_LEVELS`) is applied
    either way; ``None`` leaves the level alone unless it is unset. ``log_format``: ``"text"``
    (``fmt``, ``datefmt``) or ``"json"`` (:class:`JsonFormatter`). Returns whether the
    handler was added.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {LOG_FORMATS}, not {log_format!r}")
    tree = logging.getLogger(LOGGER_NAME)
    added = False
    if not tree.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        formatter = JsonFormatter() if log_format == "json" else logging.Formatter(fmt, datefmt)
        handler.setFormatter(formatter)
        tree.addHandler(handler)
        tree.propagate = False
        added = True
    if level is not None:
        tree.setLevel(level.upper())
    elif tree.level == logging.NOTSET:
        tree.setLevel(logging.INFO)
    return added
