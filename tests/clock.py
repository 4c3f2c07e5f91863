"""A clock for tests that moves only when told to."""

from __future__ import annotations

import datetime as dt


class FakeClock:
    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now_at = now or dt.datetime.now(dt.UTC)
        self._start = self.now_at

    def now(self) -> dt.datetime:
        return self.now_at

    def monotonic(self) -> float:
        return (self.now_at - self._start).total_seconds()

    def advance(self, secs: float) -> None:
        self.now_at += dt.timedelta(seconds=secs)
