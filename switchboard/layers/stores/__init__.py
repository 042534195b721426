"""The optional stores a layer may offer beside its channels: presence and history.

A layer listing ``"presence"`` or ``"history"`` in its ``extensions`` returns one store of each
per layer instance from ``presence_store()`` / ``history_store()`` (:mod:`.host`). The contracts
every implementation keeps, with the in-memory implementations, are in :mod:`.presence` and
:mod:`.history`; the IPC and Redis layers implement them in their own packages.
"""
