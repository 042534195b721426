"""A session's outgoing frames: numbered, bounded, kept until the client acknowledges them."""

from __future__ import annotations

from typing import Any

__all__ = ["Frame", "OutBuffer"]

# A frame as the application sent it: text, bytes, or an ``sb.sse.event`` message (a dict).
Frame = str | bytes | dict[str, Any]


def frame_size(frame: Frame) -> int:
    if isinstance(frame, str):
        return len(frame.encode("utf-8", "surrogatepass"))
    if isinstance(frame, bytes):
        return len(frame)
    return len(str(frame.get("data", ""))) + len(str(frame.get("id") or "")) + 16


class OutBuffer:
    """Frames numbered from 1; ``push`` refuses the frame that would pass either bound."""

    __slots__ = ("bytes", "frames", "max_bytes", "max_frames", "seq")

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        # A list, not a deque: most sessions hold nothing most of the time, and an empty
        # deque costs some 600 bytes (ack() trims the front in one slice).
        self.frames: list[tuple[int, Frame, int]] = []
        self.bytes = 0
        self.seq = 0  # the number of the last frame pushed

    def __len__(self) -> int:
        return len(self.frames)

    def push(self, frame: Frame) -> bool:
        """Number and keep ``frame``; False (nothing kept) when it does not fit."""
        size = frame_size(frame)
        if len(self.frames) >= self.max_frames or self.bytes + size > self.max_bytes:
            return False
        self.seq += 1
        self.frames.append((self.seq, frame, size))
        self.bytes += size
        return True

    def ack(self, seq: int) -> None:
        """The client has every frame up to ``seq``: forget them."""
        frames = self.frames
        count = 0
        for number, _, size in frames:
            if number > seq:
                break
            self.bytes -= size
            count += 1
        if count:
            del frames[:count]

    def since(self, seq: int) -> list[tuple[int, Frame]]:
        """The frames after ``seq``, oldest first."""
        return [(number, frame) for number, frame, _ in self.frames if number > seq]

    def clear(self) -> None:
        self.frames.clear()
        self.bytes = 0
