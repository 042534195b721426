"""Shared helpers of the task tests: waiting for a result through Django's API only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

STATUS_FINISHED = ("SUCCESSFUL", "FAILED")


def finished(result: Any, timeout: float = 20.0) -> Any:
    """``result`` refreshed (``TaskResult.refresh()``) until its task has finished."""
    deadline = time.monotonic() + timeout
    while True:
        result.refresh()
        if result.is_finished:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"task {result.id} still {result.status} after {timeout}s")
        time.sleep(0.02)


async def afinished(result: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        await result.arefresh()
        if result.is_finished:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"task {result.id} still {result.status} after {timeout}s")
        await asyncio.sleep(0.02)
