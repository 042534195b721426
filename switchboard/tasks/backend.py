"""``switchboard.tasks.ChannelLayerBackend``: Django's Tasks API kept in a channel layer's task
store (:mod:`switchboard.layers.stores.tasks`) and run by ``manage.py runworker --tasks``.

On a layer whose messages never leave the process (the in-memory default) there is no other
process to run them: the backend then runs an embedded worker on the event loop that enqueued
(or on the process's bridge loop, for synchronous callers), so development and tests need no
worker process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from switchboard.layers import get_channel_layer
from switchboard.layers.stores.tasks import TaskStore
from switchboard.tasks import records
from switchboard.tasks.api import BaseTaskBackend, TaskResultDoesNotExist, task_enqueued
from switchboard.tasks.bridge import run_sync
from switchboard.tasks.options import BackendSettings, OptionsError
from switchboard.tasks.stats import stats

__all__ = ["ChannelLayerBackend"]

# Below this, a result may be gone before a client polling at an ordinary pace reads it.
SHORT_RESULT_TTL = 60.0
EMBEDDED_CONCURRENCY = 4

# The embedded worker of each event loop (single-process layers), whichever backend object
# started it: Django makes backend objects per thread and anew when settings change.
_embedded: dict[asyncio.AbstractEventLoop, Any] = {}
_embedded_lock = threading.Lock()


class ChannelLayerBackend(BaseTaskBackend):
    """Tasks in the task store of the channel layer ``OPTIONS["layer"]`` (see
    :class:`~switchboard.tasks.options.BackendSettings` for every option)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.settings_error: str | None = None
        try:
            self.settings = BackendSettings.from_options(alias, self.options)
        except OptionsError as exc:
            # Reported by the system checks (at startup); enqueueing raises it too.
            self.settings_error = str(exc)
            self.settings = BackendSettings()

    # -- where the tasks are ------------------------------------------------------------

    def layer(self) -> Any:
        if self.settings_error:
            raise ImproperlyConfigured(self.settings_error)
        layer = get_channel_layer(self.settings.layer)
        if layer is None:
            raise ImproperlyConfigured(self._no_layer())
        if "tasks" not in getattr(layer, "extensions", ()):
            raise ImproperlyConfigured(self._no_store(layer))
        return layer

    def store(self) -> TaskStore:
        store: TaskStore = self.layer().task_store()
        return store

    def _no_layer(self) -> str:
        return (
            f"TASKS[{self.alias!r}] keeps its tasks in CHANNEL_LAYERS[{self.settings.layer!r}], "
            f"which is not configured: add that layer, or set OPTIONS['layer'] to one that is"
        )

    def _no_store(self, layer: Any) -> str:
        return (
            f"TASKS[{self.alias!r}]: CHANNEL_LAYERS[{self.settings.layer!r}] is "
            f"{type(layer).__name__}, which keeps no tasks: use the in-memory, IPC or Redis layer"
        )

    # -- Django's API ---------------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        result, record = self._prepare(task, args, kwargs)
        run_sync(self._store_record, record)
        stats.count("enqueued", task.name)
        task_enqueued.send(type(self), task_result=result)
        return result

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        result, record = self._prepare(task, args, kwargs)
        await self._store_record(record)
        stats.count("enqueued", task.name)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        return self._result(run_sync(self.store().get, result_id), result_id)

    async def aget_result(self, result_id: str) -> Any:
        return self._result(await self.store().get(result_id), result_id)

    def _prepare(self, task: Any, args: Any, kwargs: Any) -> tuple[Any, Any]:
        self.validate_task(task)
        self.layer()  # a misconfiguration fails here, not in a worker later
        now = time.time()
        result = records.new_result(task, self.alias, args, kwargs, now)
        return result, records.new_record(task, result, now)

    async def _store_record(self, record: Any) -> None:
        layer = self.layer()
        await layer.task_store().enqueue(record)
        if not layer.spans_processes:  # nobody else could run it: this process does
            self._ensure_embedded_worker(record.queue)

    @staticmethod
    def _result(record: Any, result_id: str) -> Any:
        if record is None:
            raise TaskResultDoesNotExist(result_id)
        return records.to_result(record)

    # -- the in-process worker of a single-process layer ----------------------------------

    def _ensure_embedded_worker(self, queue: str) -> None:
        loop = asyncio.get_running_loop()
        store = self.store()
        with _embedded_lock:
            for old in [old for old in _embedded if old.is_closed()]:
                del _embedded[old]
            worker = _embedded.get(loop)
            if worker is not None and worker.store is store:
                if queue not in worker.queues:
                    worker.queues.append(queue)
                return
            if worker is not None:  # its layer was replaced (settings changed): retire it
                worker.stop()
            from switchboard.tasks.worker import TaskWorker

            worker = TaskWorker(self, queues=[queue], concurrency=EMBEDDED_CONCURRENCY, store=store)
            _embedded[loop] = worker
        loop.create_task(worker.run(), name="switchboard-embedded-tasks")

    # -- system checks --------------------------------------------------------------------

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages: list[checks.CheckMessage] = list(super().check(**kwargs))
        if self.settings_error:
            messages.append(
                checks.Error(
                    self.settings_error,
                    hint="Fix the OPTIONS of this TASKS entry (docs/topics/tasks.md).",
                    id="switchboard.E030",
                )
            )
            return messages
        layer = get_channel_layer(self.settings.layer)
        if layer is None:
            messages.append(checks.Error(self._no_layer(), id="switchboard.E031"))
            return messages
        if "tasks" not in getattr(layer, "extensions", ()):
            messages.append(checks.Error(self._no_store(layer), id="switchboard.E032"))
            return messages
        if self.settings.result_ttl < SHORT_RESULT_TTL:
            messages.append(
                checks.Warning(
                    f"TASKS[{self.alias!r}]: result_ttl is {self.settings.result_ttl:g} s, so a "
                    "result may expire before anyone reads it",
                    hint=f"Use {SHORT_RESULT_TTL:g} seconds or more (the default is one day).",
                    id="switchboard.W030",
                )
            )
        if self.settings.lease < 3:
            messages.append(
                checks.Warning(
                    f"TASKS[{self.alias!r}]: a lease of {self.settings.lease:g} s leaves a "
                    "worker under a second to renew it, so a busy worker may lose tasks it is "
                    "still running to another worker (they would run twice)",
                    hint="Use a lease of 3 seconds or more (the default is 30).",
                    id="switchboard.W031",
                )
            )
        if kwargs.get("deploy"):
            messages.extend(self.deploy_check(layer))
        return messages

    def deploy_check(self, layer: Any) -> list[checks.CheckMessage]:
        if layer.spans_processes:
            return []
        return [
            checks.Warning(
                f"TASKS[{self.alias!r}] keeps tasks in {type(layer).__name__}: they run in "
                "the process that enqueued them and are lost when it stops",
                hint="Use the IPC layer (one machine) or the Redis layer (many) and run "
                "`manage.py runworker --tasks`.",
                id="switchboard.W032",
            )
        ]


def task_backend(alias: str) -> Any:
    """The configured backend ``alias`` of Django's ``task_backends``."""
    from switchboard.tasks.api import task_backends

    return task_backends[alias]


def deploy_checks(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check --deploy``: the deploy-time warnings of every ChannelLayerBackend."""
    from switchboard.tasks.api import task_backends

    messages: list[checks.CheckMessage] = []
    for backend in task_backends.all():
        if isinstance(backend, ChannelLayerBackend) and not backend.settings_error:
            layer = get_channel_layer(backend.settings.layer)
            if layer is not None:
                messages.extend(backend.deploy_check(layer))
    return messages
