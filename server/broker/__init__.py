"""Fan-out of news between server processes, behind one interface.

A broker carries short-lived news, never the record: PostgreSQL holds every
message, and a subscriber that misses news recovers it from there (by the
sequence numbers the news carries). So a broker promises little:

- **At most once.** News may be lost (Redis restarting, a cut link); it is
  never invented. After a loss the broker calls its ``on_resync``
  callbacks so subscribers can read what they missed from PostgreSQL.
- **In order per channel from one process.** Two processes publishing on
  one channel may interleave; sequence numbers let readers order them.
- **Local first, no echo.** A process's own subscribers get its news
  straight away, even while Redis is down, and exactly once: the copy that
  comes back through Redis is recognised and dropped.

Channel names reaching a broker are canonical names built by the server
(``transaction:<uuid>``); nothing a client types is used as a pattern.

Variants: :mod:`server.broker.memory` (one process, no Redis) and
:mod:`server.broker.redis_pubsub` (many processes sharing Redis).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable


__all__ = ["Broker", "News", "NewsHandler", "ResyncHandler"]


@dataclasses.dataclass(frozen=True, slots=True)
class News:
    """One piece of news on a channel."""

    channel: str
    # Position of the news in the channel's stream, for channels that have
    # one (a message's seq or company_seq); None for signals.
    seq: int | None
    # The frame to send to subscribers, already encoded.
    frame: bytes


#: Called with each piece of news on a subscribed channel. Runs on the
#: event loop and must not block or await: queue the work instead.
NewsHandler = Callable[[News], None]
#: Called after news may have been lost, once the broker works again.
ResyncHandler = Callable[[], None]


class Broker(abc.ABC):
    """Publishes news to the processes that subscribe to its channel."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect; returns once the broker can publish."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect and stop every background task."""

    @abc.abstractmethod
    async def publish(self, *news: News) -> None:
        """Deliver news to local subscribers now and to other processes.

        Several pieces of news go in one round trip, in order. Never raises
        for a broker outage: local subscribers are served, and what could
        not reach other processes is retried or announced as a resync once
        the broker is back.
        """

    @abc.abstractmethod
    def subscribe(self, channel: str, handler: NewsHandler) -> None:
        """Call ``handler`` with the news on ``channel``.

        A handler subscribed twice is called once.
        """

    async def subscribed(self, channel: str) -> None:
        """Wait until news published elsewhere on ``channel`` reaches us.

        A subscriber reads its starting point from PostgreSQL only after
        this returns, so nothing published in between slips past it.
        """
        return None

    @abc.abstractmethod
    def unsubscribe(self, channel: str, handler: NewsHandler) -> None:
        """Stop calling ``handler`` for ``channel``; unknown pairs are ignored."""

    @abc.abstractmethod
    def on_resync(self, handler: ResyncHandler) -> None:
        """Call ``handler`` whenever news may have been lost."""

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """False while the broker cannot reach other processes."""
