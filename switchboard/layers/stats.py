"""What a channel layer counts for monitoring: plain ints, shared by every backend.

Every :class:`~switchboard.layers.base.BaseChannelLayer` has one as ``layer.stats``; a
backend bumps the fields as things happen (an increment is all it costs) and a metrics
collector (``switchboard.metrics``) reads them when scraped, possibly from another thread.
Drops are counted by the layer's :class:`~switchboard.layers.drops.DropCounter`
(``layer.drops.totals``) and messages waiting in local queues are counted on demand by
``layer.queued_messages()``: nothing is counted twice.
"""

from __future__ import annotations

__all__ = ["LayerStats"]


class LayerStats:
    """``sends``: messages accepted by ``send``. ``group_sends``: ``group_send`` calls.
    ``fanout_deliveries``: copies of group messages put into (or handed to) local receivers
    by this process. ``reconnects``: connections to the backend made again after one was
    lost (the Redis layer's pub/sub readers)."""

    __slots__ = ("fanout_deliveries", "group_sends", "reconnects", "sends")

    def __init__(self) -> None:
        self.sends = 0
        self.group_sends = 0
        self.fanout_deliveries = 0
        self.reconnects = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in sorted(self.__slots__)}
