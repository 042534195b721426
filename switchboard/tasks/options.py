"""The backend's ``OPTIONS`` and each task's own retry and timeout policy, checked once.

``TASKS = {"default": {"BACKEND": "switchboard.tasks.ChannelLayerBackend", "OPTIONS": {...}}}``
takes the keys of :data:`BACKEND_DEFAULTS`. A task overrides the policy part
(:data:`POLICY_KEYS`) with :func:`task_options`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from switchboard.integration.settings import closest_name

__all__ = [
    "BackendSettings",
    "OptionsError",
    "Policy",
    "policy_of",
    "task_options",
]

F = TypeVar("F")

POLICY_ATTRIBUTE = "switchboard_task_options"


class OptionsError(ValueError):
    """A bad option; the message says which and what is allowed."""


@dataclass(frozen=True)
class Policy:
    """How one task is attempted. ``max_attempts``: runs before it is FAILED (1: no retry, as
    Django's API implies). Retries wait ``retry_backoff * 2**(n-1)`` seconds after the n-th
    failure, at most ``retry_backoff_max``, with ``retry_jitter`` taking a random 0-50% off so
    failed tasks don't come back in step. ``timeout``: seconds one attempt may run (None: no
    limit)."""

    max_attempts: int = 1
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    timeout: float | None = None

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds before the attempt after ``failures`` failed ones."""
        base = min(self.retry_backoff_max, self.retry_backoff * 2 ** max(0, failures - 1))
        if self.retry_jitter and base > 0:
            base *= 1 - (rng or random).random() * 0.5
        return base

    def validated(self, where: str) -> Policy:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise OptionsError(f"{where}: max_attempts must be a whole number, 1 or more")
        for name in ("retry_backoff", "retry_backoff_max"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise OptionsError(f"{where}: {name} must be 0 or more seconds")
        if self.timeout is not None and (
            not isinstance(self.timeout, (int, float)) or self.timeout <= 0
        ):
            raise OptionsError(f"{where}: timeout must be a positive number of seconds or None")
        return self


POLICY_KEYS = tuple(f.name for f in fields(Policy))


@dataclass(frozen=True)
class BackendSettings:
    """The backend's ``OPTIONS``. ``layer``: the CHANNEL_LAYERS alias whose store keeps the
    tasks. ``result_ttl``/``failed_ttl``: seconds a finished task's result is kept (counted
    from when it finished, so a delayed task never loses its record before it runs).
    ``lease``: seconds a worker holds a task without renewing (it renews every third of it);
    a task whose worker died runs again after at most this long. ``max_redeliveries``: times a
    task is run again after its worker was lost before it is FAILED (a task that kills its
    worker every time must not do so forever)."""

    layer: str = "default"
    result_ttl: float = 86400.0
    failed_ttl: float = 7 * 86400.0
    lease: float = 30.0
    max_redeliveries: int = 3
    policy: Policy = Policy()

    @classmethod
    def from_options(cls, alias: str, options: Any) -> BackendSettings:
        where = f"TASKS[{alias!r}]['OPTIONS']"
        if not isinstance(options, dict):
            raise OptionsError(f"{where} must be a dict, not {type(options).__name__}")
        own = {f.name for f in fields(cls)} - {"policy"}
        known = sorted(own | set(POLICY_KEYS))
        for key in options:
            if key not in known:
                close = closest_name(key, known)
                hint = f" (did you mean {close!r}?)" if close else ""
                raise OptionsError(
                    f"{where}: unknown option {key!r}{hint}; known: {', '.join(known)}"
                )
        policy = Policy(**{k: v for k, v in options.items() if k in POLICY_KEYS}).validated(where)
        settings = cls(**{k: v for k, v in options.items() if k in own}, policy=policy)
        if not isinstance(settings.layer, str) or not settings.layer:
            raise OptionsError(f"{where}: layer must name a CHANNEL_LAYERS alias")
        for name in ("result_ttl", "failed_ttl", "lease"):
            value = getattr(settings, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise OptionsError(f"{where}: {name} must be a positive number of seconds")
        if not isinstance(settings.max_redeliveries, int) or settings.max_redeliveries < 0:
            raise OptionsError(f"{where}: max_redeliveries must be a whole number, 0 or more")
        return settings


def task_options(**policy: Any) -> Any:
    """Override the backend's retry and timeout policy for one task::

        @task
        @task_options(max_attempts=5, retry_backoff=2, timeout=60)
        def send_receipt(order_id): ...

    Keys: those of :class:`Policy`. Goes below ``@task`` (on the function) or above it."""
    unknown = sorted(set(policy) - set(POLICY_KEYS))
    if unknown:
        raise TypeError(
            f"task_options() got unknown option(s) {', '.join(unknown)}; "
            f"known: {', '.join(POLICY_KEYS)}"
        )
    Policy(**policy).validated("task_options()")

    def apply(target: F) -> F:
        func = getattr(target, "func", target)  # a Task (frozen): its function takes them
        setattr(func, POLICY_ATTRIBUTE, dict(policy))
        return target

    return apply


def policy_of(func: Any, default: Policy) -> Policy:
    """``default`` with the task function's own overrides."""
    own = getattr(func, POLICY_ATTRIBUTE, None)
    return replace(default, **own) if own else default
