"""The Redis broker: news between server processes over Redis pub/sub.

Redis pub/sub keeps nothing: a message published while a subscriber's link
is down is gone, and redis-py's reader sees no error for it (a cut of one
second lost 134 of 300 messages in our own check). So this broker does
three things beyond relaying:

- it delivers a process's own news locally first, and drops the echo that
  comes back through Redis (news carries the publishing node's id);
- it reconnects with capped, jittered backoff, subscribes again to every
  channel it needs, and then calls its resync handlers so the server reads
  from PostgreSQL what passed meanwhile;
- news it could not publish while Redis was down waits in a bounded
  backlog and is published on reconnect; if the backlog overflowed, it
  publishes a resync request that makes every process catch up.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import uuid

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.broker import Broker, News, NewsHandler, ResyncHandler
from server.broker._local import LocalSubscribers


__all__ = ["RedisBroker"]

logger = logging.getLogger(__name__)

# Every Redis channel we use starts with this, so Tickmark can share a Redis
# with other programs.
_PREFIX = "tm:"
# Carries resync requests between processes.
_CONTROL = _PREFIX + "control"
_RESYNC = b"resync"

# Backoff between reconnection attempts: from 0.1 s, doubling, at most
# 5 s, with jitter so processes cut off together do not return together.
_BACKOFF_START_SECS = 0.1
_BACKOFF_MAX_SECS = 5.0


class RedisBroker(Broker):
    """Relays news through one Redis server.

    Args:
        url: the Redis URL.
        timeout_secs: limit on connecting and on each command; also how
            often an idle subscriber link is checked with a PING, which is
            what notices a link that died without a word.
        backlog_size: most unpublished news kept while Redis is down; past
            it, news is dropped and every process is asked to resync.

    """

    def __init__(
        self, url: str, *, timeout_secs: float = 2.0, backlog_size: int = 10_000
    ) -> None:
        if timeout_secs <= 0:
            raise ValueError(f"timeout_secs must be positive, got {timeout_secs}")
        if backlog_size < 1:
            raise ValueError(f"backlog_size must be at least 1, got {backlog_size}")
        self.url = url
        self.timeout_secs = timeout_secs
        # Identifies this process's news so its Redis echo can be dropped.
        self.node = uuid.uuid4().hex[:12].encode()

        self._local = LocalSubscribers()
        self._resync_handlers: list[ResyncHandler] = []
        # The command connection, for PUBLISH; None before start.
        self._redis: aioredis.Redis | None = None
        # The subscriber connection; None while disconnected.
        self._pubsub: PubSub | None = None
        # Redis channels the pubsub connection is confirmed to be on.
        self._confirmed: set[str] = set()
        # Waiters for a SUBSCRIBE confirmation, by Redis channel.
        self._confirming: dict[str, asyncio.Event] = {}
        # News that could not be published, oldest first; bounded.
        self._backlog: collections.deque[News] = collections.deque(maxlen=backlog_size)
        # Set when news fell off the full backlog: others must resync.
        self._overflowed = False
        self._listener: asyncio.Task[None] | None = None
        self._healthy = False
        self._closing = False

    # --- public interface ---------------------------------------------------

    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout_secs,
            socket_connect_timeout=self.timeout_secs,
            socket_keepalive=True,
            health_check_interval=max(1, int(self.timeout_secs)),
            # Fail fast: a publish that cannot reach Redis goes to the
            # backlog rather than holding up the post that caused it.
            retry=Retry(NoBackoff(), 0),
        )
        self._listener = asyncio.create_task(self._listen(), name="redis-broker")
        # Wait briefly for the first connection, so a healthy start is
        # healthy at once; a Redis that is down is retried in the background.
        for _ in range(int(self.timeout_secs / 0.02)):
            if self._healthy:
                break
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._drop_pubsub()
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, *news: News) -> None:
        for item in news:
            self._local.deliver(item)
        if not self._healthy or self._backlog:
            # Keep order: nothing overtakes what is already waiting.
            for item in news:
                self._keep(item)
            return
        try:
            await self._send(*news)
        except (RedisError, OSError) as exc:
            logger.warning("redis publish failed: %r", exc)
            for item in news:
                self._keep(item)

    def subscribe(self, channel: str, handler: NewsHandler) -> None:
        if self._local.add(channel, handler):
            self._redis_subscribe(_PREFIX + channel)

    async def subscribed(self, channel: str) -> None:
        """Wait until Redis confirms the subscription to ``channel``.

        Returns at once while Redis is down: the resync after reconnecting
        covers whatever the wait would have guarded.
        """
        event = self._confirming.get(_PREFIX + channel)
        if event is None or self._pubsub is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), self.timeout_secs)

    def unsubscribe(self, channel: str, handler: NewsHandler) -> None:
        if self._local.remove(channel, handler):
            self._redis_unsubscribe(_PREFIX + channel)

    def on_resync(self, handler: ResyncHandler) -> None:
        self._resync_handlers.append(handler)

    @property
    def healthy(self) -> bool:
        return self._healthy

    # --- publishing ---------------------------------------------------------

    def _encode(self, news: News) -> bytes:
        seq = b"-" if news.seq is None else str(news.seq).encode()
        return self.node + b" " + seq + b" " + news.frame

    async def _send(self, *news: News) -> None:
        assert self._redis is not None
        if len(news) == 1:
            await self._redis.publish(_PREFIX + news[0].channel, self._encode(news[0]))
            return
        # One round trip for all; a failure part way is retried whole, and
        # subscribers drop what they already had by its position.
        async with self._redis.pipeline(transaction=False) as pipe:
            for item in news:
                pipe.publish(_PREFIX + item.channel, self._encode(item))
            await pipe.execute()

    def _keep(self, news: News) -> None:
        if len(self._backlog) == self._backlog.maxlen:
            self._overflowed = True
        self._backlog.append(news)

    async def _flush_backlog(self) -> None:
        """Publish what waited while Redis was down, oldest first."""
        sent = 0
        while self._backlog:
            await self._send(self._backlog[0])
            self._backlog.popleft()
            sent += 1
        if sent:
            logger.info("published news held during the outage", extra={"count": sent})
        if self._overflowed:
            assert self._redis is not None
            await self._redis.publish(_CONTROL, self.node + b" - " + _RESYNC)
            self._overflowed = False

    # --- subscribing --------------------------------------------------------

    def _redis_subscribe(self, redis_channel: str) -> None:
        self._confirming[redis_channel] = asyncio.Event()
        if self._pubsub is not None:
            asyncio.get_running_loop().create_task(
                self._command(self._pubsub.subscribe, redis_channel)
            )

    def _redis_unsubscribe(self, redis_channel: str) -> None:
        self._confirming.pop(redis_channel, None)
        self._confirmed.discard(redis_channel)
        if self._pubsub is not None:
            asyncio.get_running_loop().create_task(
                self._command(self._pubsub.unsubscribe, redis_channel)
            )

    @staticmethod
    async def _command(method: object, redis_channel: str) -> None:
        # A failure here means the link is going down; the listener notices
        # and subscribes to everything again when it is back.
        with contextlib.suppress(RedisError, OSError):
            await method(redis_channel)  # type: ignore[operator]

    # --- the listener -------------------------------------------------------

    async def _listen(self) -> None:
        backoff = _BACKOFF_START_SECS
        lost = False
        while not self._closing:
            try:
                await self._connect()
                if lost:
                    logger.warning("redis link restored; resyncing")
                    await self._flush_backlog()
                    self._resync()
                backoff = _BACKOFF_START_SECS
                await self._read_forever()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._healthy or not lost:
                    logger.warning("redis link lost: %r", exc)
                self._healthy = False
                lost = True
                await self._drop_pubsub()
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, _BACKOFF_MAX_SECS)
            except Exception:
                # Our bug; keep relaying for the other users all the same.
                logger.exception("redis listener failed")
                self._healthy = False
                lost = True
                await self._drop_pubsub()
                await asyncio.sleep(_BACKOFF_MAX_SECS)

    async def _connect(self) -> None:
        assert self._redis is not None
        pubsub = self._redis.pubsub()
        # Re-subscribe to every channel that has local handlers, as one
        # command; confirmations arrive through the reader below.
        channels = [_CONTROL, *(_PREFIX + c for c in self._local.channels())]
        for channel in channels[1:]:
            self._confirming.setdefault(channel, asyncio.Event())
        self._confirmed.clear()
        await pubsub.subscribe(*channels)
        self._pubsub = pubsub
        self._healthy = True

    async def _read_forever(self) -> None:
        assert self._pubsub is not None
        while not self._closing:
            message = await self._pubsub.get_message(timeout=self.timeout_secs)
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"].decode()
            if kind == "subscribe":
                self._confirmed.add(channel)
                event = self._confirming.get(channel)
                if event is not None:
                    event.set()
            elif kind == "message":
                self._receive(channel, message["data"])

    def _receive(self, redis_channel: str, data: bytes) -> None:
        node, seq, frame = data.split(b" ", 2)
        if node == self.node:
            return  # our own news, already delivered locally
        if redis_channel == _CONTROL:
            if frame == _RESYNC:
                logger.warning("another process lost news; resyncing")
                self._resync()
            return
        self._local.deliver(
            News(
                channel=redis_channel.removeprefix(_PREFIX),
                seq=None if seq == b"-" else int(seq),
                frame=frame,
            )
        )

    def _resync(self) -> None:
        for handler in self._resync_handlers:
            try:
                handler()
            except Exception:
                logger.exception("resync handler failed")

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._confirmed.clear()
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
