"""A background worker that handles requests in batches, never twice at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar


__all__ = ["Coalescer"]

logger = logging.getLogger(__name__)

Item = TypeVar("Item", bound=Hashable)

# After a failed batch, wait this long before the next one, so a database
# outage does not become a busy loop of errors.
_FAILURE_PAUSE_SECS = 1.0


class Coalescer(Generic[Item]):
    """Runs ``handler`` on everything requested since it last ran.

    Requests made while a batch runs wait for the next batch, so the last
    request for an item is always served by a run that started after it:
    a badge recomputed this way can be late, never stale.
    """

    def __init__(
        self, name: str, handler: Callable[[set[Item]], Awaitable[None]]
    ) -> None:
        self.name = name
        self._handler = handler
        self._pending: set[Item] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def request(self, item: Item) -> None:
        self._pending.add(item)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, set()
            if not batch:
                continue
            try:
                await self._handler(batch)
            except Exception:
                logger.exception("%s failed; retrying", self.name)
                self._pending |= batch
                self._wake.set()
                await asyncio.sleep(_FAILURE_PAUSE_SECS)
