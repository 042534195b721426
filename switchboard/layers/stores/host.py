"""How a layer offers its stores: one of each per layer instance, made on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switchboard.layers.stores.history import HistoryStore
    from switchboard.layers.stores.presence import PresenceStore

__all__ = ["StoresMixin"]


class StoresMixin:
    """``presence_store()`` and ``history_store()`` for a layer whose ``extensions`` list
    ``"presence"`` and ``"history"``; the layer says how to make each store."""

    _presence: PresenceStore | None = None
    _history: HistoryStore | None = None

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

    def _forget_stores(self) -> None:
        """Make the next calls build new stores (what is held in the old ones is gone)."""
        self._presence = self._history = None

    def _new_presence_store(self) -> PresenceStore:
        raise NotImplementedError

    def _new_history_store(self) -> HistoryStore:
        raise NotImplementedError
