"""``manage.py tasks``: what the background task queues hold, and retrying failed tasks.

* ``tasks`` (or ``tasks counts``): queued, scheduled, running and failed tasks per queue;
* ``tasks list [--queued|--scheduled|--running|--failed] [--queue Q] [--limit N]``;
* ``tasks show ID``: one task, its attempts and errors;
* ``tasks retry ID [ID ...]``: a FAILED task queued again (it gets ``max_attempts`` more runs).
"""

from __future__ import annotations

import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from switchboard.layers.stores.tasks import LISTABLE_STATES

STATE_FLAGS = {f"--{state}": state for state in LISTABLE_STATES}


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


class Command(BaseCommand):
    help = "Lists background tasks (queued, scheduled, running, failed) and retries failed ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--backend", default="default", help="Alias in TASKS (default: %(default)s)"
        )
        sub = parser.add_subparsers(dest="action")
        sub.add_parser("counts", help="Tasks per queue and state (the default)")
        listing = sub.add_parser("list", help="Tasks in one state")
        states = listing.add_mutually_exclusive_group()
        for flag, state in STATE_FLAGS.items():
            states.add_argument(flag, dest="state", action="store_const", const=state)
        listing.add_argument("--queue", default=None, help="Only this queue")
        listing.add_argument("--limit", type=int, default=50, help="At most this many")
        show = sub.add_parser("show", help="One task in full")
        show.add_argument("id")
        retry = sub.add_parser("retry", help="Queue FAILED tasks again")
        retry.add_argument("ids", nargs="+", metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        from switchboard.tasks.bridge import run_sync

        store = self._store(options["backend"])
        action = options.get("action") or "counts"
        if action == "counts":
            self._counts(run_sync(store.counts, None))
        elif action == "list":
            state = options.get("state") or "queued"
            found = run_sync(store.list, state, options.get("queue"), options["limit"])
            self._list(state, found)
        elif action == "show":
            record = run_sync(store.get, options["id"])
            if record is None:
                raise CommandError(f"No task {options['id']!r} (never enqueued, or expired)")
            self._show(record)
        else:
            failed = [i for i in options["ids"] if not run_sync(store.requeue, i)]
            for task_id in options["ids"]:
                if task_id not in failed:
                    self.stdout.write(f"Queued again: {task_id}")
            if failed:
                raise CommandError(
                    f"Not FAILED (or unknown), left alone: {', '.join(failed)}; "
                    "`manage.py tasks list --failed` lists the failed ones"
                )

    @staticmethod
    def _store(alias: str) -> Any:
        try:
            from switchboard.tasks.backend import ChannelLayerBackend, task_backend

            backend = task_backend(alias)
            if not isinstance(backend, ChannelLayerBackend):
                raise CommandError(
                    f"TASKS[{alias!r}] is {type(backend).__name__}, not "
                    "switchboard.tasks.ChannelLayerBackend"
                )
            return backend.store()
        except (ImproperlyConfigured, KeyError) as exc:
            raise CommandError(f"TASKS[{alias!r}]: {exc}") from None

    def _counts(self, counts: dict[str, dict[str, int]]) -> None:
        if not counts:
            self.stdout.write("No tasks.")
            return
        self.stdout.write(f"{'queue':<20} " + " ".join(f"{s:>9}" for s in LISTABLE_STATES))
        for queue in sorted(counts):
            row = counts[queue]
            self.stdout.write(
                f"{queue:<20} " + " ".join(f"{row.get(s, 0):>9}" for s in LISTABLE_STATES)
            )

    def _list(self, state: str, records: list[Any]) -> None:
        if not records:
            self.stdout.write(f"No {state} tasks.")
            return
        column = {"scheduled": "run after", "failed": "finished", "running": "attempted"}
        self.stdout.write(
            f"{'id':<34}{'queue':<12}{'prio':>5}  {column.get(state, 'enqueued'):<20}task"
        )
        for r in records:
            stamp = {
                "scheduled": r.run_after,
                "failed": r.finished_at,
                "running": r.last_attempted_at,
            }.get(state, r.enqueued_at)
            line = f"{r.id:<34}{r.queue:<12}{r.priority:>5}  {_when(stamp):<20}{r.path}"
            if state == "failed" and r.errors:
                line += f"  ({r.errors[-1]['exception_class_path']})"
            self.stdout.write(line)

    def _show(self, r: Any) -> None:
        rows = [
            ("id", r.id),
            ("task", r.path),
            ("status", r.status),
            ("queue", r.queue),
            ("priority", r.priority),
            ("args", r.args),
            ("kwargs", r.kwargs),
            ("enqueued", _when(r.enqueued_at)),
            ("run after", _when(r.run_after)),
            ("started", _when(r.started_at)),
            ("finished", _when(r.finished_at)),
            ("attempts", len(r.worker_ids)),
            ("workers", ", ".join(r.worker_ids) or "-"),
            ("progress", r.progress or "-"),
        ]
        if r.status == "SUCCESSFUL":
            rows.append(("return value", r.return_value))
        for name, value in rows:
            self.stdout.write(f"{name + ':':<14}{value}")
        for n, error in enumerate(r.errors, 1):
            self.stdout.write(f"\nerror {n}: {error['exception_class_path']}\n{error['traceback']}")
