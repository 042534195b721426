"""History on the IPC layer: the logs live in the hub, processes ask it over their hub link.

The hub keeps a :class:`~switchboard.layers.stores.history.MemoryHistoryStore` holding each
publication as the bytes its publisher's codec produced (checked there, never decoded in the
hub); readers decode their copy. Requests are answered in the order they arrive, so offsets are
given out 1, 2, 3... per topic whichever process appends.

The trade-off: the logs are in the hub's memory only. When the hub's process ends (killed, or
restarted) the next hub starts empty, so every topic begins a **new epoch**: a client recovering
from the old one gets ``recovered: false`` and a subscriber still connected gets a ``resync``
with the next publication; never wrong or silently missing data. A request in flight when the
hub goes is sent again to the next hub (the old one's answer, if any, died with its log). For
history that survives any process, use the Redis layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from switchboard.layers.ipc import wire
from switchboard.layers.stores.history import (
    DEFAULT_HISTORY_SIZE,
    DEFAULT_HISTORY_TTL,
    HistoryRead,
    MemoryHistoryStore,
    Position,
    encode_append,
)

if TYPE_CHECKING:
    from switchboard.layers.ipc.node import IPCStoreHost

__all__ = ["HubHistory", "IPCHistoryStore"]


class _AsStored:
    """The codec of the hub's store: publications stay the publisher's encoded bytes."""

    @staticmethod
    def encode(data: bytes) -> bytes:
        return data

    @staticmethod
    def decode(data: bytes) -> bytes:
        return data


class _HubSide:
    """The hub's store host (a StoreHost but for its codec, which keeps bytes as they come):
    requesters checked the names."""

    codec = _AsStored()

    def require_valid_group_name(self, name: Any) -> bool:
        return True


class HubHistory:
    """The hub's logs; ``answer`` serves one request frame (returns the REPLY payload)."""

    def __init__(self) -> None:
        self.store = MemoryHistoryStore(_HubSide())  # type: ignore[arg-type]

    def clear(self) -> None:
        self.store = MemoryHistoryStore(_HubSide())  # type: ignore[arg-type]

    async def answer(self, frame: list[Any]) -> list[Any]:
        kind = frame[0]
        if kind == wire.APPEND:
            _, _seq, topic, data, size, ttl = frame
            if not isinstance(data, bytes):
                raise ValueError("history data must be encoded bytes")
            position = await self.store.append(topic, data, size, ttl)  # type: ignore[arg-type]
            return [position.epoch, position.offset]
        if kind == wire.RECOVER:
            _, _seq, topic, epoch, offset, limit = frame
            read = await self.store.recover(topic, epoch, offset, limit)
        else:
            _, _seq, topic, limit = frame
            read = await self.store.latest(topic, limit)
        return [read.epoch, read.offset, [list(p) for p in read.publications], read.complete]


class IPCHistoryStore:
    """``IPCChannelLayer.history_store()`` (see the module docstring)."""

    def __init__(self, layer: IPCStoreHost) -> None:
        self.layer = layer

    async def _ask(self, kind: int, *items: Any) -> Any:
        while True:
            node = await self.layer.ready_node()
            try:
                return await node.request(kind, *items)
            except wire.HubLost:
                continue  # asked again of the next hub

    def _read(self, reply: list[Any]) -> HistoryRead:
        epoch, offset, publications, complete = reply
        decode = self.layer.codec.decode
        return HistoryRead(epoch, offset, [(o, decode(d)) for o, d in publications], complete)

    async def append(
        self,
        topic: str,
        data: dict[str, Any],
        size: int = DEFAULT_HISTORY_SIZE,
        ttl: float = DEFAULT_HISTORY_TTL,
    ) -> Position:
        packed = encode_append(self.layer, topic, data, size, ttl)
        epoch, offset = await self._ask(wire.APPEND, topic, packed, size, ttl)
        return Position(epoch, offset)

    async def recover(self, topic: str, epoch: str, offset: int, limit: int) -> HistoryRead:
        return self._read(await self._ask(wire.RECOVER, topic, epoch, offset, limit))

    async def latest(self, topic: str, limit: int) -> HistoryRead:
        return self._read(await self._ask(wire.LATEST, topic, limit))

    async def close(self) -> None:
        pass
