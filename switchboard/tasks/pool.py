"""A thread pool of daemon threads for sync tasks, answering on an event loop.

Two things ``loop.run_in_executor`` with a ``ThreadPoolExecutor`` does not do:

* **Daemon threads.** ``ThreadPoolExecutor`` joins its threads when the interpreter exits, so
  one task that never returns (past its timeout, say) would keep a stopped worker process alive
  forever. A worker hands such tasks back before it exits; their threads must not hold it.
* **Answers in batches.** Each result handed to the loop separately costs a wake-up of the
  loop (a write to its self-pipe, and a turn of ``epoll``); with many short tasks that is most
  of the work. Results that finish while the loop has not yet taken the earlier ones go with
  them, in one wake-up.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DaemonThreadPool"]

_Job = tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Callable[[], Any]]


class DaemonThreadPool:
    def __init__(self, size: int, name: str = "switchboard-task") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._answers: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        self._answering = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """``fn(*args)`` in a thread of the pool; a future of the running loop for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((future, loop, lambda: fn(*args)))
        return future

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, loop, call = job
            try:
                answer: tuple[asyncio.Future[Any], BaseException | None, Any] = (
                    future,
                    None,
                    call(),
                )
            except BaseException as exc:
                answer = (future, exc, None)
            with self._lock:
                self._answers.append(answer)
                if self._answering:
                    continue  # the wake-up already on its way takes this one too
                self._answering = True
            try:
                loop.call_soon_threadsafe(self._answer)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _answer(self) -> None:
        with self._lock:
            answers, self._answers = self._answers, []
            self._answering = False
        for future, exc, value in answers:
            if future.done():  # cancelled: its caller gave up on it
                continue
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)

    def shutdown(self) -> None:
        """Threads stop after their current task (without waiting for them)."""
        for _ in self._threads:
            self._jobs.put(None)
