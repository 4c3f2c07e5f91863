"""The in-process broker: one server process, no Redis."""

from __future__ import annotations

from server.broker import Broker, News, NewsHandler, ResyncHandler
from server.broker._local import LocalSubscribers


__all__ = ["MemoryBroker"]


class MemoryBroker(Broker):
    """Delivers news to subscribers in this process only.

    Nothing is lost between publish and delivery, so it never asks for a
    resync. Use it only when a single server process serves every
    connection: a second process would hear nothing of the first's news.
    """

    def __init__(self) -> None:
        self._local = LocalSubscribers()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, *news: News) -> None:
        for item in news:
            self._local.deliver(item)

    def subscribe(self, channel: str, handler: NewsHandler) -> None:
        self._local.add(channel, handler)

    def unsubscribe(self, channel: str, handler: NewsHandler) -> None:
        self._local.remove(channel, handler)

    def on_resync(self, handler: ResyncHandler) -> None:
        return None

    @property
    def healthy(self) -> bool:
        return True
