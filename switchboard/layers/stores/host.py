"""What a store needs of its layer, and how a layer offers its stores.

The stores depend on the small protocols here, not on layer classes: any object with a codec,
the group-name rule and (for presence) ``group_send`` can host them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from switchboard.layers.codec import MessageCodec
    from switchboard.layers.stores.history import HistoryStore
    from switchboard.layers.stores.presence import PresenceStore
    from switchboard.layers.stores.tasks import TaskStore

__all__ = ["PresenceHost", "StoreHost", "StoresMixin"]


class StoreHost(Protocol):
    """What every store needs of its layer: the codec that checks and encodes what it keeps,
    and the rule for group names (a topic is one)."""

    @property
    def codec(self) -> MessageCodec: ...

    def require_valid_group_name(self, name: Any) -> bool: ...


class PresenceHost(StoreHost, Protocol):
    """A presence store also broadcasts its diffs to each topic's presence group."""

    async def group_send(self, group: str, message: dict[str, Any]) -> None: ...


class StoresMixin:
    """``presence_store()``, ``history_store()`` and ``task_store()`` for a layer whose
    ``extensions`` list ``"presence"``, ``"history"`` and ``"tasks"``; the layer says how to
    make each store."""

    _presence: PresenceStore | None = None
    _history: HistoryStore | None = None
    _tasks: TaskStore | None = None

    def presence_store(self) -> PresenceStore:
        """This layer's presence (the same store on every call)."""
        store = self._presence
        if store is None:
            store = self._presence = self._new_presence_store()
        return store

    def history_store(self) -> HistoryStore:
        """This layer's reliable-group history (the same store on every call)."""
        store = self._history
        if store is None:
            store = self._history = self._new_history_store()
        return store

    def task_store(self) -> TaskStore:
        """This layer's background task queues (the same store on every call)."""
        store = self._tasks
        if store is None:
            store = self._tasks = self._new_task_store()
        return store

    def _forget_stores(self) -> None:
        """Make the next calls build new stores (what is held in the old ones is gone)."""
        self._presence = self._history = None

    def _new_presence_store(self) -> PresenceStore:
        raise NotImplementedError

    def _new_history_store(self) -> HistoryStore:
        raise NotImplementedError

    def _new_task_store(self) -> TaskStore:
        raise NotImplementedError
