"""Where the server's log lines go when nobody else has said.

Only the ``switchboard`` logger tree is configured, never the root logger: a Django project
(or any host program) configures its own loggers, and a handler on the root logger would print
every ``django.*`` record a second time next to Django's own console handler.
"""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "switchboard"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# ISO-like local time with milliseconds, level, pid (several workers share one stderr), logger.
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(
    level: str | None = "info",
    fmt: str = LOG_FORMAT,
    datefmt: str | None = None,
) -> bool:
    """Give the ``switchboard`` tree a stderr handler unless a handler already receives it.

    "Already receives it" includes a handler on the root logger (``hasHandlers`` looks up the
    tree): a program that set up logging keeps its own routing. When we do add the handler,
    ``propagate`` is turned off so a root handler added later (e.g. by Django's ``LOGGING``)
    does not print our lines twice. ``level`` (a name from :data:`LOG_LEVELS`) is applied
    either way; ``None`` leaves the level alone unless it is unset. Returns whether the
    handler was added.
    """
    tree = logging.getLogger(LOGGER_NAME)
    added = False
    if not tree.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(fmt, datefmt))
        tree.addHandler(handler)
        tree.propagate = False
        added = True
    if level is not None:
        tree.setLevel(level.upper())
    elif tree.level == logging.NOTSET:
        tree.setLevel(logging.INFO)
    return added
