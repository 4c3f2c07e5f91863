"""Per-subscriber bookkeeping: which positions of a channel arrived, and when.

A :class:`Stream` is one channel as one client sees it. Positions are the
``seq`` numbers Tickmark gives a transaction's messages (or the numbers
the generator gives the reference's frames): 1, 2, 3... with no gaps. A
bitmap records every position that arrived, so that duplicates and
messages that never came can be counted exactly, and the highest position
seen tells a message that arrived after a later one (out of order).
"""

from __future__ import annotations

import array
import enum
from collections import defaultdict


__all__ = ["Arrival", "Stream", "Tally"]


class Arrival(enum.Enum):
    # The next position, or one past a gap: a first delivery.
    NEW = "new"
    # A first delivery that came after a later position had come.
    REORDERED = "reordered"
    # This position had arrived already.
    DUPLICATE = "duplicate"
    # At or before where the client started: it was never expected.
    STALE = "stale"


class Stream:
    """One channel on one client.

    Args:
        origin: the channel's position when the client first subscribed;
            only later positions are expected.

    """

    __slots__ = ("_seen", "origin", "position", "top")

    def __init__(self, origin: int) -> None:
        self.origin = origin
        # Every position up to here arrived (where a resume starts).
        self.position = origin
        # The highest position that arrived.
        self.top = origin
        # Bit ``seq - origin - 1`` is set once that position arrived.
        self._seen = bytearray(64)

    def arrive(self, seq: int) -> Arrival:
        """Record one delivery and classify it."""
        index = seq - self.origin - 1
        if index < 0:
            return Arrival.STALE
        byte, bit = index >> 3, 1 << (index & 7)
        seen = self._seen
        if byte >= len(seen):
            seen.extend(bytes(byte - len(seen) + 256))
        if seen[byte] & bit:
            return Arrival.DUPLICATE
        seen[byte] |= bit
        arrival = Arrival.REORDERED if seq < self.top else Arrival.NEW
        if seq > self.top:
            self.top = seq
        if seq == self.position + 1:
            self.position = seq
            while self.has(self.position + 1):
                self.position += 1
        return arrival

    def has(self, seq: int) -> bool:
        """Whether position ``seq`` arrived."""
        index = seq - self.origin - 1
        if index < 0:
            return False
        byte = index >> 3
        return byte < len(self._seen) and bool(self._seen[byte] & (1 << (index & 7)))


class Tally:
    """What one worker's clients received, by ladder step."""

    def __init__(self) -> None:
        # Publish-to-delivery latency of each first delivery, microseconds.
        self.latency_us: dict[int, array.array[int]] = defaultdict(
            lambda: array.array("q")
        )
        self.delivered: dict[int, int] = defaultdict(int)
        self.duplicates: dict[int, int] = defaultdict(int)
        self.reordered: dict[int, int] = defaultdict(int)
        # Deliveries on a channel the client had not subscribed to, or
        # from before it subscribed.
        self.unexpected = 0
        # Frames other than messages, by type (welcome, viewers, badges...).
        self.frames: dict[str, int] = defaultdict(int)
        self.frame_bytes: dict[str, int] = defaultdict(int)
        # Close codes the server sent, and connections lost without one.
        self.closes: dict[str, int] = defaultdict(int)
        # Error frames by code.
        self.errors: dict[str, int] = defaultdict(int)
