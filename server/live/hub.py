"""The process-wide registry of live connections and their channels.

The hub subscribes to a broker channel once for all the process's
subscribers of that channel, and fans each piece of news out to them
through their :class:`~server.live.subscription.Subscription`, which says
whether to deliver it, drop it as a duplicate, or read a gap from
PostgreSQL first. It also recomputes badges and viewer lists when told
they changed, and re-checks connections whose access may have changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections import defaultdict

from server.broker import Broker, News
from server.core import subscriptions
from server.core.channels import Channel, ChannelKind
from server.core.companies import Badges, badges_for, visible_badges
from server.core.principal import Scope
from server.core.services import Services
from server.errors import Forbidden, InvalidInput, NotFound
from server.live._coalesce import Coalescer
from server.live.connection import Connection
from server.live.limits import LiveLimits
from server.live.presence import PresenceTracker
from server.live.protocol import CloseCode, frame
from server.live.subscription import Subscription, Verdict
from server.live.wire import SharedFrame
from server.metrics import Metrics
from server.store import access_changes
from server.store import presence as presence_store
from server.store.database import Conn
from server.store.messages import Message
from server.web.views import badges_json, message_json


__all__ = ["BADGES", "REVALIDATE", "VIEWERS", "Hub"]

logger = logging.getLogger(__name__)

#: Signals carried on channels. They start with "!" so they can never be
#: mistaken for a JSON frame; they are acted on here, never forwarded.
BADGES = b"!badges"
REVALIDATE = b"!access"
VIEWERS = b"!viewers"

# How often the access-change table is read, and how far back each read
# looks: changes are stamped when made but seen when committed, so a read
# looks a little further back than the previous one and skips what it saw.
_ACCESS_POLL_SECS = 1.0
_ACCESS_LOOKBACK = dt.timedelta(seconds=10)
_NOT_YOURS = "No such channel, or not yours to see."

# Viewers named in a viewers frame; the frame also says how many in all.
# Each change goes to every subscriber of the transaction, so a full list
# would cost the square of the audience (a bill open in a thousand tabs
# sent lists of a thousand names, a thousand times, while they opened).
_VIEWERS_LISTED = 10

# Most passes one recovery makes before it gives up and sends a resync.
_MAX_FILL_PASSES = 20


class Hub:
    """Connections and channels of one server process.

    Args:
        services: the domain's collaborators.
        broker: the fan-out between processes.
        limits: the limits of the protocol.
        node: this process's name, for presence.

    """

    def __init__(
        self,
        services: Services,
        broker: Broker,
        limits: LiveLimits,
        *,
        node: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.services = services
        self.broker = broker
        self.limits = limits
        self.node = node
        self.metrics = metrics or Metrics()
        # Open connections by user.
        self._by_user: dict[uuid.UUID, set[Connection]] = defaultdict(set)
        # Local subscriptions by channel name.
        self._by_channel: dict[str, dict[Connection, Subscription]] = {}
        self.presence = PresenceTracker(
            services.db,
            services.clock,
            node,
            on_viewers_changed=self._viewers_changed,
        )
        self._badges: Coalescer[uuid.UUID] = Coalescer("badges", self._send_badges)
        self._viewers: Coalescer[str] = Coalescer("viewers", self._send_viewers)
        self._access: Coalescer[uuid.UUID] = Coalescer("access", self._revalidate)
        self._poller: asyncio.Task[None] | None = None
        # Access changes already acted on, by id, with when they were seen.
        self._seen_changes: dict[int, float] = {}
        # Set once shutdown begins; new connections are refused.
        self.closing = False

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self.broker.on_resync(self._resync)
        for worker in (self._badges, self._viewers, self._access):
            worker.start()
        self.presence.start()
        self._poller = asyncio.get_running_loop().create_task(
            self._poll_access(), name="access-poller"
        )

    async def close(self) -> None:
        self.closing = True
        for connection in self.connections():
            connection.close(CloseCode.GOING_AWAY, "server shutting down", flush=True)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for worker in (self._badges, self._viewers, self._access):
            await worker.close()
        await self.presence.close()

    def connections(self) -> list[Connection]:
        return [c for conns in self._by_user.values() for c in conns]

    def connection_count(self, user_id: uuid.UUID | None = None) -> int:
        """Open connections of one user, or of everyone when None."""
        if user_id is None:
            return sum(len(conns) for conns in self._by_user.values())
        return len(self._by_user.get(user_id, ()))

    # --- connections ---------------------------------------------------------------

    async def attach(self, connection: Connection) -> None:
        """Register a connection and its user's own feed."""
        user_id = connection.user_id
        first = not self._by_user[user_id]
        self._by_user[user_id].add(connection)
        channel = Channel.user(user_id).name
        if first:
            self.broker.subscribe(channel, self._on_news)
        await self.broker.subscribed(channel)
        self.presence.track(connection)

    def detach(self, connection: Connection) -> None:
        for name in list(connection.subscriptions):
            self._drop(connection, name)
        user_id = connection.user_id
        conns = self._by_user.get(user_id)
        if conns is not None:
            conns.discard(connection)
            if not conns:
                del self._by_user[user_id]
                self.broker.unsubscribe(Channel.user(user_id).name, self._on_news)
        self.presence.untrack(connection)

    def welcomed(self, connection: Connection) -> None:
        """The welcome is queued: badge news held for it may now be sent."""
        connection.is_welcomed = True
        if connection.badges_due:
            connection.badges_due = False
            self._badges.request(connection.user_id)

    def presence_changed(self, connection: Connection) -> None:
        self.presence.changed(connection)

    async def typing(self, connection: Connection, transaction_id: uuid.UUID) -> None:
        name = Channel.transaction(transaction_id).name
        user = {"id": connection.user_id, "name": connection.principal.display_name}
        text = frame("typing", channel=name, user=user)
        await self.broker.publish(News(name, None, text.encode()))

    # --- subscriptions ---------------------------------------------------------------

    async def subscribe(
        self,
        connection: Connection,
        channel: Channel,
        since: int | None,
        request_id: str | None,
    ) -> None:
        """Subscribe a connection, replaying what it missed since ``since``.

        The broker subscription is made, and confirmed, before the starting
        point is read from PostgreSQL: news published meanwhile is held and
        released after the replay, so nothing falls between the two.

        Raises:
            NotFound: the channel is not the principal's to see.
            Forbidden: the credential lacks the subscribe scope.
            InvalidInput: too many subscriptions on this connection.

        """
        name = channel.name
        if channel.kind is ChannelKind.USER:
            if channel.id != connection.user_id:
                raise NotFound(_NOT_YOURS)
            connection.send(frame("subscribed", id=request_id, channel=name))
            return
        if (
            name not in connection.subscriptions
            and len(connection.subscriptions) >= self.limits.max_subscriptions
        ):
            raise InvalidInput(
                f"At most {self.limits.max_subscriptions} subscriptions "
                "per connection.",
                field="channel",
            )
        try:
            async with self.services.db.connection() as conn:
                company_id = await subscriptions.authorize(
                    conn, connection.principal, channel
                )
        except (NotFound, Forbidden) as error:
            logger.info(
                "subscription refused",
                extra={"user_id": str(connection.user_id), "channel": name},
            )
            if isinstance(error, NotFound):
                raise NotFound(_NOT_YOURS) from None
            raise

        self._drop(connection, name)
        subscription = Subscription(
            channel, company_id, max_held=self.limits.replay_limit
        )
        connection.subscriptions[name] = subscription
        local = self._by_channel.setdefault(name, {})
        if not local:
            self.broker.subscribe(name, self._on_news)
        local[connection] = subscription
        await self.broker.subscribed(name)
        if channel.kind is ChannelKind.TRANSACTION:
            self.presence.changed(connection)

        async with self.services.db.connection() as conn:
            if since is None:
                head = await subscriptions.head(conn, channel)
                recovery = None
            else:
                recovery = await subscriptions.recover(
                    conn, channel, since, self.limits.replay_limit
                )
                head = recovery.head
        if connection.subscriptions.get(name) is not subscription:
            return  # unsubscribed or replaced while we read
        if since is not None and since > head:
            # The client holds a position this channel never reached (a
            # restored database, another server's numbers): nothing it has
            # can be trusted to line up with ours.
            self._drop(connection, name)
            raise InvalidInput(
                f"since ({since}) is past the newest message ({head}); load the "
                "history again and subscribe without it.",
                field="since",
            )

        answer: dict[str, object] = {
            "id": request_id,
            "channel": name,
            "company_id": company_id,
            "last_seq": head,
        }
        if recovery is None:
            connection.send(frame("subscribed", **answer))
            self._release(connection, subscription, head)
            return
        assert since is not None
        replayed = recovery.messages if recovery.complete else []
        connection.send(
            frame(
                "subscribed",
                **answer,
                since=since,
                recovered=recovery.complete,
                replayed=len(replayed),
            )
        )
        subscription.position = since
        for message in replayed:
            if subscription.delivered(subscriptions.position_in(channel, message)):
                connection.send(self._message_frame(name, message))
        self._release(
            connection,
            subscription,
            subscription.position if recovery.complete else head,
        )

    def unsubscribe(self, connection: Connection, name: str) -> None:
        self._drop(connection, name)

    def _drop(self, connection: Connection, name: str) -> None:
        subscription = connection.subscriptions.pop(name, None)
        if subscription is None:
            return
        local = self._by_channel.get(name)
        if local is not None:
            local.pop(connection, None)
            if not local:
                del self._by_channel[name]
                self.broker.unsubscribe(name, self._on_news)
        if subscription.channel.kind is ChannelKind.TRANSACTION:
            self.presence.changed(connection)

    @staticmethod
    def _message_frame(channel_name: str, message: Message) -> str:
        return frame("message", channel=channel_name, message=message_json(message))

    def _release(
        self, connection: Connection, subscription: Subscription, position: int
    ) -> None:
        """Deliver held news up to where PostgreSQL was read; fill any gap."""
        due, again = subscription.caught_up(position)
        for text in due:
            connection.send(text)
        if again:
            connection.spawn(self._fill(connection, subscription))

    async def _fill(self, connection: Connection, subscription: Subscription) -> None:
        """Read from PostgreSQL what a subscription did not receive live."""
        self.metrics.recoveries.inc()
        name = subscription.name
        for _ in range(_MAX_FILL_PASSES):
            if connection.subscriptions.get(name) is not subscription:
                return
            start = subscription.position
            async with self.services.db.connection() as conn:
                recovery = await subscriptions.recover(
                    conn, subscription.channel, start, self.limits.replay_limit
                )
            if recovery.complete:
                for message in recovery.messages:
                    position = subscriptions.position_in(subscription.channel, message)
                    if subscription.delivered(position):
                        connection.send(self._message_frame(name, message))
                reached = subscription.position
            else:
                # Too much to replay: say so, and let the client page it.
                connection.send(
                    frame("resync", channel=name, after=start, last_seq=recovery.head)
                )
                reached = recovery.head
            due, again = subscription.caught_up(reached)
            for text in due:
                connection.send(text)
            if not again:
                return
            if subscription.position == start:
                # Held news is ahead of what PostgreSQL shows yet; give the
                # commit that produced it a moment to become visible.
                await asyncio.sleep(0.05)
        # Held news stays ahead of what PostgreSQL shows: give up on filling
        # the gap here, tell the client to page it, and go on from the news.
        logger.warning("recovery did not converge", extra={"channel": name})
        start = subscription.position
        reached = subscription.reset()
        connection.send(frame("resync", channel=name, after=start, last_seq=reached))

    # --- news from the broker ------------------------------------------------------

    def _on_news(self, news: News) -> None:
        if news.channel.startswith("user:"):
            self._on_user_news(news)
            return
        local = self._by_channel.get(news.channel)
        if not local:
            return
        if news.frame == VIEWERS:
            self._viewers.request(news.channel)
            return
        text = news.frame.decode()
        shared = SharedFrame(news.frame)
        delivered = 0
        for connection, subscription in list(local.items()):
            verdict = subscription.offer(news.seq, text)
            if verdict is Verdict.DELIVER:
                connection.send(text, shared)
                delivered += 1
            elif verdict is Verdict.GAP:
                connection.spawn(self._fill(connection, subscription))
        # Counted once per news, not per frame: the counter takes a lock.
        self.metrics.deliveries.inc(delivered)

    def _on_user_news(self, news: News) -> None:
        user_id = uuid.UUID(news.channel.removeprefix("user:"))
        if news.frame == BADGES:
            self._badges.request(user_id)
        elif news.frame == REVALIDATE:
            self._access.request(user_id)
        else:
            text = news.frame.decode()
            # A read marker names its company: a token limited to other
            # companies must not learn of it.
            company = json.loads(text).get("company_id")
            for connection in list(self._by_user.get(user_id, ())):
                principal = connection.principal
                if company is None or principal.reaches(uuid.UUID(company)):
                    connection.send(text)

    def _resync(self) -> None:
        """The broker may have lost news: every subscription reads again."""
        self.metrics.broker_resyncs.inc()
        for name, local in list(self._by_channel.items()):
            for connection, subscription in list(local.items()):
                if subscription.begin_resync():
                    connection.spawn(self._fill(connection, subscription))
            if name.startswith("transaction:"):
                self._viewers.request(name)
        for user_id in list(self._by_user):
            self._badges.request(user_id)

    def _viewers_changed(self, transaction_id: uuid.UUID) -> None:
        name = Channel.transaction(transaction_id).name
        task = asyncio.get_running_loop().create_task(
            self.broker.publish(News(name, None, VIEWERS))
        )
        task.add_done_callback(_log_failure)

    # --- recomputed snapshots ------------------------------------------------------

    async def badges_of(self, connection: Connection) -> Badges:
        """The connection's badges now, as its credential may see them."""
        if not connection.principal.may(Scope.READ):
            return Badges(0, {})
        async with self.services.db.connection() as conn:
            found = await badges_for(conn, [connection.user_id])
        return visible_badges(connection.principal, found[connection.user_id])

    async def _send_badges(self, user_ids: set[uuid.UUID]) -> None:
        wanted = [u for u in user_ids if u in self._by_user]
        if not wanted:
            return
        async with self.services.db.connection() as conn:
            found = await badges_for(conn, wanted)
        for user_id, badges in found.items():
            for connection in list(self._by_user.get(user_id, ())):
                if not connection.principal.may(Scope.READ):
                    continue
                if not connection.is_welcomed:
                    connection.badges_due = True
                    continue
                snapshot = visible_badges(connection.principal, badges)
                connection.send(frame("badges", **badges_json(snapshot)))

    async def _send_viewers(self, names: set[str]) -> None:
        for name in names:
            local = self._by_channel.get(name)
            if not local:
                continue
            transaction_id = uuid.UUID(name.removeprefix("transaction:"))
            async with self.services.db.connection() as conn:
                found, count = await presence_store.viewers(
                    conn,
                    transaction_id,
                    self.services.clock.now(),
                    limit=_VIEWERS_LISTED,
                )
            text = frame(
                "viewers",
                channel=name,
                count=count,
                viewers=[{"id": uid, "name": display} for uid, display in found],
            )
            shared = SharedFrame(text.encode())
            for connection in list(local):
                connection.send(text, shared)

    # --- access -----------------------------------------------------------------------

    async def _close_invalid(
        self, conn: Conn, conns: list[Connection]
    ) -> list[Connection]:
        """Close connections whose credential ended; returns the others."""
        states = await subscriptions.check_credentials(
            conn,
            list({c.principal.credential_id for c in conns}),
            self.services.clock.now(),
        )
        still_open = []
        for connection in conns:
            state = states[connection.principal.credential_id]
            if state.error is None:
                still_open.append(connection)
                continue
            code = (
                CloseCode.SESSION_EXPIRED
                if state.expired
                else CloseCode.UNAUTHENTICATED
            )
            connection.send(frame("error", **state.error.to_json()))
            connection.close(code, state.error.message, flush=True)
        return still_open

    async def _sweep_credentials(self) -> None:
        """Close every connection whose credential expired or was revoked."""
        conns = self.connections()
        if conns:
            async with self.services.db.connection() as conn:
                await self._close_invalid(conn, conns)

    async def _revalidate(self, user_ids: set[uuid.UUID]) -> None:
        """Re-check the credentials and channels of these users' connections."""
        conns = [c for u in user_ids for c in self._by_user.get(u, ())]
        if not conns:
            return
        async with self.services.db.connection() as conn:
            for connection in await self._close_invalid(conn, conns):
                for name, subscription in list(connection.subscriptions.items()):
                    try:
                        await subscriptions.authorize(
                            conn, connection.principal, subscription.channel
                        )
                    except (NotFound, Forbidden):
                        self._drop(connection, name)
                        connection.send(
                            frame("unsubscribed", channel=name, reason="access_revoked")
                        )
        for user_id in user_ids:
            self._badges.request(user_id)

    def _close_stuck(self, now: float) -> None:
        """Close connections whose client has not taken a frame in too long."""
        for connection in self.connections():
            if connection.open and connection.stuck_for(now) > (
                self.limits.send_timeout_secs
            ):
                logger.warning(
                    "write timed out", extra={"connection_id": str(connection.id)}
                )
                self.metrics.slow_consumers.inc()
                connection.close(
                    CloseCode.SLOW_CONSUMER, "write timed out; reconnect and resume"
                )

    async def _poll_access(self) -> None:
        """Each second: notice access changes made anywhere (other processes,
        the command line), close connections stuck on a client that does not
        read, and now and then re-read every credential for expiry."""
        clock = self.services.clock
        since_sweep_secs = 0.0
        last_read = clock.now()
        while True:
            await asyncio.sleep(_ACCESS_POLL_SECS)
            since_sweep_secs += _ACCESS_POLL_SECS
            try:
                now = clock.now()
                async with self.services.db.connection() as conn:
                    changes = await access_changes.since(
                        conn, last_read - _ACCESS_LOOKBACK
                    )
                last_read = now
                tick = clock.monotonic()
                for change_id, user_id in changes:
                    if change_id in self._seen_changes:
                        continue
                    self._seen_changes[change_id] = tick
                    if user_id in self._by_user:
                        self._access.request(user_id)
                horizon = tick - 2 * _ACCESS_LOOKBACK.total_seconds()
                self._seen_changes = {
                    k: t for k, t in self._seen_changes.items() if t > horizon
                }
                self._close_stuck(clock.monotonic())
                if since_sweep_secs >= self.limits.credential_check_secs:
                    since_sweep_secs = 0.0
                    await self._sweep_credentials()
            except Exception:
                logger.warning("access poll failed; will retry", exc_info=True)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("publish failed", exc_info=task.exception())
