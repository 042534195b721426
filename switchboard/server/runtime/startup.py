"""Checks that code around the application asks the server to run before it serves.

The server knows no framework, so it cannot check a framework's setup itself. Glue code that
does know one registers a check here (``switchboard.integration.checks`` registers Django's
system checks when it is imported, which happens while the server imports a Django
application). ``run()`` calls every registered check once the application is imported and
before anything is bound or forked: a check refuses to start by raising
:class:`StartupCheckError`, whose text the CLI prints (exit status 2); what only deserves a
warning it logs itself.
"""

from __future__ import annotations

from collections.abc import Callable

from switchboard.server.runtime.config import Config

__all__ = ["StartupCheck", "StartupCheckError", "add_startup_check", "run_startup_checks"]

StartupCheck = Callable[[Config], None]

_checks: list[StartupCheck] = []


class StartupCheckError(Exception):
    """The application's setup is wrong in a way that must stop the server from starting."""


def add_startup_check(check: StartupCheck) -> None:
    """Run ``check(config)`` at every start of ``switchboard serve`` (``run()``) in this
    process, after the application is imported; adding the same check again does nothing."""
    if check not in _checks:
        _checks.append(check)


def run_startup_checks(config: Config) -> None:
    """Run the registered checks, in the order they were added; raises
    :class:`StartupCheckError` from the first that refuses."""
    for check in list(_checks):
        check(config)
