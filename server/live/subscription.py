"""One channel on one connection: ordering, duplicates and gaps.

A plain state machine with no I/O and no awaits, so every case can be
tested directly. The hub offers it each piece of live news with the news's
position in the channel (``seq`` on a transaction channel, ``company_seq``
on a company channel) and does what the verdict says; when there is a gap
the hub reads the missing messages from PostgreSQL and reports how far it
got with :meth:`Subscription.caught_up`.

Why positions instead of trusting the broker: Redis pub/sub may lose news
(a restart, a cut link) and two processes may publish out of order. The
positions come from PostgreSQL, in commit order, so a subscriber that has
delivered position *n* knows exactly what comes next and can fetch it.
"""

from __future__ import annotations

import enum
import uuid

from server.core.channels import Channel


__all__ = ["State", "Subscription", "Verdict"]


class State(enum.Enum):
    # Reading its starting point from PostgreSQL; live news is held.
    RECOVERING = "recovering"
    # Every position up to ``position`` was delivered; news flows through.
    LIVE = "live"
    # A gap was seen; news is held while the missing part is read.
    FILLING = "filling"


class Verdict(enum.Enum):
    DELIVER = "deliver"
    # Already delivered (an echo, a replay overlap): drop it.
    DUPLICATE = "duplicate"
    # Held until the subscription catches up; nothing to do now.
    HOLD = "hold"
    # News past a gap: held, and the caller must read the gap.
    GAP = "gap"


class Subscription:
    """A connection's subscription to one channel.

    Args:
        channel: the channel.
        company_id: the company it belongs to; None for a user's own feed.
        max_held: most news held while recovering; past it, the oldest held
            news is dropped, which is safe because recovery reads it again.

    """

    __slots__ = (
        "_again",
        "_held",
        "channel",
        "company_id",
        "max_held",
        "name",
        "position",
        "state",
    )

    def __init__(
        self, channel: Channel, company_id: uuid.UUID | None, *, max_held: int = 1000
    ) -> None:
        if max_held < 1:
            raise ValueError(f"max_held must be at least 1, got {max_held}")
        self.channel = channel
        self.name = channel.name
        self.company_id = company_id
        self.max_held = max_held
        # Position of the last message delivered; 0 before the first.
        self.position = 0
        self.state = State.RECOVERING
        # Live news waiting for recovery: position -> frame.
        self._held: dict[int, str] = {}
        # Set when a resync arrives while a recovery is already reading:
        # that read may have started before the loss, so read once more.
        self._again = False

    # --- live news ------------------------------------------------------------

    def offer(self, position: int | None, frame: str) -> Verdict:
        """Decide what to do with one piece of live news."""
        if position is None:
            # Signals (typing, viewers) have no place in the stream.
            return Verdict.DELIVER if self.state is State.LIVE else Verdict.DUPLICATE
        if position <= self.position:
            return Verdict.DUPLICATE
        if self.state is not State.LIVE:
            self._hold(position, frame)
            return Verdict.HOLD
        if position == self.position + 1:
            self.position = position
            return Verdict.DELIVER
        self._hold(position, frame)
        self.state = State.FILLING
        return Verdict.GAP

    def _hold(self, position: int, frame: str) -> None:
        self._held[position] = frame
        if len(self._held) > self.max_held:
            del self._held[min(self._held)]

    # --- recovery -------------------------------------------------------------

    def begin_resync(self) -> bool:
        """News may have been lost; returns True when the caller must read.

        False means a recovery is already running; it will read again.
        """
        if self.state is State.LIVE:
            self.state = State.FILLING
            return True
        self._again = True
        return False

    def delivered(self, position: int) -> bool:
        """Record a message delivered from PostgreSQL; False if already had."""
        if position <= self.position:
            return False
        self.position = position
        return True

    def reset(self) -> int:
        """Give up on a gap: go live from the newest held news, dropping it.

        Returns:
            The new position; the client must page up to it itself.

        """
        if self._held:
            self.position = max(self.position, max(self._held))
        self._held.clear()
        self._again = False
        self.state = State.LIVE
        return self.position

    def caught_up(self, position: int) -> tuple[list[str], bool]:
        """PostgreSQL was read up to ``position``; release what is due.

        Args:
            position: everything up to here is delivered or was skipped
                (for a gap too large to replay).

        Returns:
            The held frames to send now, in order, and True when the caller
            must read again (a gap remains, or a resync came meanwhile).

        """
        self.position = max(self.position, position)
        due = []
        for held in sorted(self._held):
            if held <= self.position:
                continue
            if held != self.position + 1:
                break
            due.append(self._held[held])
            self.position = held
        self._held = {p: f for p, f in self._held.items() if p > self.position}
        again = bool(self._held) or self._again
        self._again = False
        self.state = State.FILLING if again else State.LIVE
        return due, again
