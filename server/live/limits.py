"""The limits every live connection works within, and the rate meter."""

from __future__ import annotations

import dataclasses


__all__ = ["LiveLimits", "TokenBucket"]


@dataclasses.dataclass(frozen=True, slots=True)
class LiveLimits:
    """Documented in docs/protocol.md; set from Settings."""

    # Largest frame a client may send; bigger ones close the socket with
    # 1009 at the protocol layer, before our code sees them.
    max_frame_bytes: int = 64 * 1024
    max_subscriptions: int = 200
    # Per server process; past it, handshakes get 503 and Retry-After.
    max_connections: int = 20_000
    # Per user and per server process.
    max_connections_per_user: int = 20
    # Frames a client may send per second, and in a burst.
    frames_per_sec: float = 20.0
    frames_burst: int = 40
    # Frames refused for rate in a row before the connection is closed.
    rate_strikes: int = 50
    # Frames waiting to be written to one client before it counts as slow.
    send_queue_frames: int = 1024
    # Longest one write to a client may take before it counts as slow.
    send_timeout_secs: float = 10.0
    # How long an unauthenticated socket may wait before its auth frame.
    auth_timeout_secs: float = 10.0
    # Most messages replayed when subscribing with ``since``; beyond it the
    # client pages the rest over HTTP.
    replay_limit: int = 500
    # A connection counts as attentive this long after its last sign of
    # activity (a presence frame saying "active", a post, a read).
    active_secs: float = 60.0
    # How often every open connection's credential is read again, to close
    # those that expired; revocations are noticed within a second anyway.
    credential_check_secs: float = 30.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"{field.name} must be positive")


class TokenBucket:
    """Allows ``rate`` events per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        # Events that may happen right now; refills with time.
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token; False when none is left."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
