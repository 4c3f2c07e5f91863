"""The table of local subscribers that every broker variant keeps."""

from __future__ import annotations

import logging
from collections import defaultdict

from server.broker import News, NewsHandler


__all__ = ["LocalSubscribers"]

logger = logging.getLogger(__name__)


class LocalSubscribers:
    """Handlers by channel, in this process."""

    def __init__(self) -> None:
        # channel -> handlers, in subscription order; a dict keeps order and
        # makes a second subscription of the same handler a no-op.
        self._handlers: dict[str, dict[NewsHandler, None]] = defaultdict(dict)

    def add(self, channel: str, handler: NewsHandler) -> bool:
        """Add a handler; True when it is the channel's first."""
        handlers = self._handlers[channel]
        first = not handlers
        handlers[handler] = None
        return first

    def remove(self, channel: str, handler: NewsHandler) -> bool:
        """Remove a handler; True when the channel has none left."""
        handlers = self._handlers.get(channel)
        if handlers is None:
            return False
        handlers.pop(handler, None)
        if handlers:
            return False
        del self._handlers[channel]
        return True

    def channels(self) -> list[str]:
        return list(self._handlers)

    def deliver(self, news: News) -> None:
        """Call every handler of the news's channel.

        A failing handler is logged and the others still run: one broken
        connection must not cost the rest of the channel its news.
        """
        handlers = self._handlers.get(news.channel)
        if not handlers:
            return
        for handler in list(handlers):
            try:
                handler(news)
            except Exception:
                logger.exception("news handler failed", extra={"channel": news.channel})
