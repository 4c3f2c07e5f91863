"""One authenticated WebSocket: a reader, and writes that never wait.

The reader takes the client's frames one at a time and answers each.
Anything may send a frame without waiting (the broker's fan-out does, for
every subscriber): the frame goes to the transport at once when it has
room, which is nearly always, at no task switch; otherwise it joins a
bounded queue that a writer task drains. So one client that stops reading
never slows the others: when its queue is full, or one write stays stuck
too long, it is closed with 4008 and recovers by reconnecting with its
positions.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from server.core import access, conversations, subscriptions
from server.core.channels import ChannelKind, parse_channel
from server.core.principal import Principal, Scope
from server.core.services import Services
from server.errors import InvalidInput, RateLimited, TickmarkError
from server.live.limits import LiveLimits, TokenBucket
from server.live.protocol import (
    AuthFrame,
    ClientFrame,
    CloseCode,
    PingFrame,
    PostFrame,
    PresenceFrame,
    ReadFrame,
    SubscribeFrame,
    TypingFrame,
    UnsubscribeFrame,
    error_frame,
    frame,
    parse_client_frame,
)
from server.live.subscription import Subscription
from server.live.wire import SharedFrame, direct_write
from server.web.views import badges_json, message_json


if TYPE_CHECKING:
    from server.live.hub import Hub

__all__ = ["Connection"]

logger = logging.getLogger(__name__)

# Posts one connection may have in flight at once. A bot or importer that
# posts in bursts is not held to one database round trip after another,
# and no client can start more work than this.
_POSTS_IN_FLIGHT = 16

# Transactions whose company one connection keeps (see _company_of).
_COMPANIES_KEPT = 256

# A typing notice is relayed at most this often per connection, whatever
# the client sends: one per keystroke would flood the channel.
_TYPING_INTERVAL_SECS = 2.0


class Connection:
    """A client connected to /ws, after authentication.

    Args:
        websocket: the accepted socket.
        principal: who is connected, through which credential.
        hub: the process's hub.
        services: the domain's collaborators.
        limits: the limits of the protocol.

    """

    # Thousands of these live at once: slots keep each one small.
    __slots__ = (
        "_bucket",
        "_closing",
        "_companies",
        "_direct",
        "_flush_on_close",
        "_gone",
        "_last_typing",
        "_outbox",
        "_posts",
        "_strikes",
        "_stuck_since",
        "_tasks",
        "_writer",
        "active_until",
        "badges_due",
        "connected_at",
        "hub",
        "id",
        "is_welcomed",
        "limits",
        "principal",
        "services",
        "subscriptions",
        "websocket",
    )

    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        hub: Hub,
        services: Services,
        limits: LiveLimits,
    ) -> None:
        self.id = uuid.uuid4()
        self.websocket = websocket
        self.principal = principal
        self.hub = hub
        self.services = services
        self.limits = limits
        clock = services.clock
        self.connected_at = clock.now()
        # The person counts as attentive until then (see LiveLimits).
        self.active_until = self.connected_at + dt.timedelta(seconds=limits.active_secs)
        # Subscriptions by channel name; the user's own feed is not listed.
        self.subscriptions: dict[str, Subscription] = {}

        # Writes frames encoded once for many connections straight to the
        # socket, when the server offers it (see server.live.wire).
        self._direct = direct_write(websocket.scope)
        # Frames waiting behind a write the transport could not take yet,
        # oldest first; None while nothing waits (almost always: an empty
        # deque costs 600 bytes, on every one of thousands of connections).
        self._outbox: collections.deque[str] | None = None
        # The task finishing a stuck write and draining the outbox; None
        # while writes go straight to the transport.
        self._writer: asyncio.Task[None] | None = None
        # When the write in progress got stuck (monotonic seconds); None
        # when no write waits. The hub closes connections stuck too long.
        self._stuck_since: float | None = None
        # Why and how the connection is being closed; None while open.
        self._closing: tuple[int, str] | None = None
        # Whether the writer sends what is queued before closing.
        self._flush_on_close = False
        # Set once the peer is known to be gone: nothing more is written.
        self._gone = False
        # Background work started for this connection (recovery reads).
        # (Made on first use, as are the posting and typing state below:
        # most connections only listen.)
        self._tasks: set[asyncio.Task[None]] | None = None
        self._bucket = TokenBucket(
            limits.frames_per_sec, limits.frames_burst, clock.monotonic()
        )
        # Frames refused for rate in a row.
        self._strikes = 0
        self._last_typing: dict[uuid.UUID, float] | None = None
        self._posts: _PostsInFlight | None = None
        # The companies of transactions this connection posted to or read,
        # so that each one is looked up once (created on first use).
        self._companies: dict[uuid.UUID, uuid.UUID] | None = None
        # False until the welcome frame is queued; badge news before then
        # only marks ``badges_due``, and is acted on right after it.
        self.is_welcomed = False
        self.badges_due = False

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id

    @property
    def open(self) -> bool:
        return self._closing is None

    @property
    def queued(self) -> int:
        """Frames waiting to be written to the client."""
        return 0 if self._outbox is None else len(self._outbox)

    @property
    def viewing(self) -> tuple[uuid.UUID, ...]:
        """Transactions this connection has open."""
        return tuple(
            s.channel.id
            for s in self.subscriptions.values()
            if s.channel.kind is ChannelKind.TRANSACTION
        )

    # --- sending ----------------------------------------------------------------

    def send(self, text: str, shared: SharedFrame | None = None) -> None:
        """Send a frame to the client; never waits.

        Args:
            text: the frame.
            shared: the same frame encoded once for the many connections
                it goes to: written as it is where the socket allows.

        A full queue means the client is not reading: the connection is
        closed (4008) rather than let its backlog grow without bound.
        """
        if self._closing is not None or self._gone:
            return
        if self._writer is None:
            direct = self._direct
            if shared is None or direct is None or not direct(shared):
                self._write_now(text)
            return
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = collections.deque()
        if len(outbox) >= self.limits.send_queue_frames:
            logger.warning("slow consumer", extra={"connection_id": str(self.id)})
            self.hub.metrics.slow_consumers.inc()
            self.close(CloseCode.SLOW_CONSUMER, "send queue full; reconnect and resume")
            return
        outbox.append(text)

    def _write_now(self, text: str) -> None:
        """Hand a frame to the transport without a task, if it takes it.

        The send coroutine is stepped by hand: when the transport has room
        it finishes in that one step, and a frame costs no task switch (the
        largest cost of fan-out when every connection had a task to wake).
        When it waits instead (the transport is full), the rest of the write
        is handed to a writer task, which finishes it exactly as a task
        running it would have, and frames sent meanwhile queue behind it.
        """
        write = self.websocket.send({"type": "websocket.send", "text": text})
        try:
            waiting_on = write.send(None)
        except StopIteration:
            return
        except Exception:
            # The peer is gone; the reader sees the disconnect and ends.
            self._gone = True
            return
        self._stuck_since = self.services.clock.monotonic()
        self._writer = asyncio.get_running_loop().create_task(
            self._drain(write, waiting_on)
        )

    def stuck_for(self, now: float) -> float:
        """How long the write in progress has waited for the client."""
        return 0.0 if self._stuck_since is None else now - self._stuck_since

    async def _drain(
        self,
        write: Coroutine[Any, Any, None] | None = None,
        waiting_on: Any = None,
    ) -> None:
        """Finish a stuck write, send what queued behind it, then any close."""
        clock = self.services.clock
        try:
            if write is not None:
                await _finish(write, waiting_on)
            while self._outbox and (self._closing is None or self._flush_on_close):
                self._stuck_since = clock.monotonic()
                await self.websocket.send_text(self._outbox.popleft())
            self._stuck_since = None
            self._outbox = None
            if self._closing is not None:
                code, reason = self._closing
                # No time limit: a client that reads nothing reads no close
                # either, and waiting costs nothing; it gets the close if
                # it starts reading again, and the keepalive timeout ends
                # the connection if it does not.
                await self.websocket.close(code, reason)
        except Exception:
            self._gone = True
        finally:
            self._writer = None

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close the connection soon; never waits.

        Args:
            flush: send what is already queued first (a clean shutdown);
                otherwise it is dropped (the client must not receive more,
                or cannot keep up anyway).

        """
        if self._closing is not None:
            return
        self._closing = (code, reason)
        self._flush_on_close = flush
        if not flush:
            self._outbox = None
            if self._writer is not None:
                # Stuck on a client that does not read: give up the write.
                self._writer.cancel()
                self._writer = None
                self._stuck_since = None
        if self._writer is None and not self._gone:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work for this connection; it is cancelled when it closes."""
        task = asyncio.get_running_loop().create_task(work)
        self._keep(task)
        task.add_done_callback(self._task_done)

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Hold the task until it ends; it is cancelled if the connection does."""
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "connection task failed",
                exc_info=task.exception(),
                extra={"connection_id": str(self.id)},
            )
            self.close(CloseCode.INTERNAL_ERROR, "internal error; reconnect and resume")

    # --- the connection's life ---------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until either side closes it."""
        try:
            # Attached first, so that no badge change falls between the
            # snapshot in the welcome and the live updates after it; badge
            # news that comes before the welcome is sent waits for it (see
            # ``welcomed``), so an older snapshot never follows a newer one.
            await self.hub.attach(self)
            try:
                welcome = await self._welcome()
            except TickmarkError:
                logger.warning("welcome failed", extra={"connection_id": str(self.id)})
                self.close(CloseCode.TRY_AGAIN_LATER, "try again later")
            else:
                self.send(welcome)
                self.hub.welcomed(self)
                # This frame lives as long as the connection: let it go.
                del welcome
            await self._read()
        finally:
            self.hub.detach(self)
            for task in list(self._tasks or ()):
                task.cancel()
            writer = self._writer
            if writer is not None:
                if self._closing is None:
                    writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(writer, self.limits.send_timeout_secs)

    async def _welcome(self) -> str:
        badges = await self.hub.badges_of(self)
        limits = self.limits
        return frame(
            "welcome",
            connection_id=self.id,
            user={
                "id": self.user_id,
                "name": self.principal.display_name,
                "kind": self.principal.user_kind,
            },
            server_time=self.services.clock.now(),
            badges=badges_json(badges),
            limits={
                "max_frame_bytes": limits.max_frame_bytes,
                "max_subscriptions": limits.max_subscriptions,
                "frames_per_sec": limits.frames_per_sec,
                "frames_burst": limits.frames_burst,
                "replay_limit": limits.replay_limit,
                "active_secs": limits.active_secs,
            },
        )

    async def _read(self) -> None:
        clock = self.services.clock
        while True:
            event = await self.websocket.receive()
            if event["type"] == "websocket.disconnect":
                return
            if self._closing is not None:
                continue  # closing: nothing more is acted on
            text = event.get("text")
            if not self._bucket.take(clock.monotonic()):
                self._strikes += 1
                if self._strikes >= self.limits.rate_strikes:
                    self.close(CloseCode.RATE_LIMITED, "too many frames", flush=True)
                    continue
                # The dropped frame's id, so the client knows which it was.
                self.send(
                    error_frame(
                        RateLimited(
                            "Too many frames; slow down.",
                            retry_after_secs=1,
                        ),
                        request_id=None if text is None else _request_id_of(text),
                    )
                )
                continue
            self._strikes = 0
            if text is None:
                self.send(
                    error_frame(
                        InvalidInput("Frames are JSON text, not binary.", field="type")
                    )
                )
                continue
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        request_id = None
        try:
            try:
                parsed = parse_client_frame(text)
            except InvalidInput:
                # Answer with the frame's id if it has a usable one, so the
                # client can match the refusal to its request.
                request_id = _request_id_of(text)
                raise
            request_id = getattr(parsed, "id", None)
            if isinstance(parsed, PostFrame):
                await self._start_post(parsed)
            else:
                await self._dispatch(parsed)
        except Exception as error:
            self._refuse(error, request_id)

    def _refuse(self, error: Exception, request_id: str | None) -> None:
        """Answer a frame whose handling failed."""
        if isinstance(error, TickmarkError):
            self.send(error_frame(error, request_id=request_id))
            return
        logger.error(
            "frame handler failed",
            exc_info=error,
            extra={"connection_id": str(self.id)},
        )
        self.send(
            frame(
                "error",
                id=request_id,
                code="internal_error",
                message="Something went wrong on our side.",
            )
        )

    async def _start_post(self, parsed: PostFrame) -> None:
        """Post in the background, so a client may have several in flight.

        Up to ``_POSTS_IN_FLIGHT`` at once per connection; past that, the
        reader waits for a slot, which slows the client down rather than
        piling up work. Posts to one transaction still run one after
        another, in the order sent, so its thread reads as it was typed.
        """
        posts = self._posts
        if posts is None:
            posts = self._posts = _PostsInFlight()
        await posts.slots.acquire()
        previous = posts.latest.get(parsed.transaction_id)

        async def run() -> None:
            try:
                if previous is not None and not previous.done():
                    # Its outcome is its own; we only wait our turn.
                    await asyncio.wait([previous])
                await self._post(parsed)
            except Exception as error:
                self._refuse(error, parsed.id)
            finally:
                posts.slots.release()
                if posts.latest.get(parsed.transaction_id) is task:
                    del posts.latest[parsed.transaction_id]

        task = asyncio.get_running_loop().create_task(run())
        posts.latest[parsed.transaction_id] = task
        self._keep(task)

    # --- frames from the client ----------------------------------------------------

    async def _dispatch(self, parsed: ClientFrame) -> None:
        match parsed:
            case SubscribeFrame():
                channel = parse_channel(parsed.channel)
                try:
                    await self.hub.subscribe(self, channel, parsed.since, parsed.id)
                except TickmarkError as error:
                    # Name the channel, so a client subscribing to several
                    # at once knows which one was refused.
                    self.send(
                        error_frame(error, request_id=parsed.id, channel=channel.name)
                    )
            case UnsubscribeFrame():
                channel = parse_channel(parsed.channel)
                self.hub.unsubscribe(self, channel.name)
                self.send(frame("unsubscribed", id=parsed.id, channel=channel.name))
            case ReadFrame():
                await self._mark_read(parsed)
            case TypingFrame():
                await self._typing(parsed)
            case PresenceFrame():
                self._presence(parsed.state)
            case PingFrame():
                self.send(frame("pong", id=parsed.id))
            case AuthFrame():
                raise InvalidInput("Already authenticated.", field="type")

    def _active(self) -> None:
        self._presence("active")

    def _presence(self, state: str) -> None:
        now = self.services.clock.now()
        if state == "active":
            self.active_until = now + dt.timedelta(seconds=self.limits.active_secs)
        else:
            # Hidden, idle or backgrounded: away for notification purposes
            # at once, though the socket stays open.
            self.active_until = now
        self.hub.presence_changed(self)

    async def _company_of(self, transaction_id: uuid.UUID) -> uuid.UUID:
        """The company of a transaction the client may see.

        A transaction never changes company, so the answer is kept. Keeping
        it grants nothing: posting and reading check the principal's access
        to the company and transaction again, each time.
        """
        known = self._companies
        if known is None:
            known = self._companies = {}
        company_id = known.get(transaction_id)
        if company_id is None:
            async with self.services.db.connection() as conn:
                company_id = await subscriptions.locate_transaction(
                    conn, self.principal, transaction_id
                )
            if len(known) >= _COMPANIES_KEPT:
                known.clear()
            known[transaction_id] = company_id
        return company_id

    async def _post(self, parsed: PostFrame) -> None:
        company_id = await self._company_of(parsed.transaction_id)
        result = await conversations.post_message(
            self.services,
            self.principal,
            company_id,
            parsed.transaction_id,
            body=parsed.body,
            recipient_ids=parsed.recipients,
            idempotency_key=parsed.idempotency_key,
        )
        self._active()
        self.send(
            frame(
                "ack",
                id=parsed.id,
                created=result.created,
                message=message_json(result.message),
            )
        )

    async def _mark_read(self, parsed: ReadFrame) -> None:
        company_id = await self._company_of(parsed.transaction_id)
        marker = await conversations.mark_read(
            self.services, self.principal, company_id, parsed.transaction_id, parsed.seq
        )
        self._active()
        self.send(frame("ack", id=parsed.id, last_read_seq=marker))

    async def _typing(self, parsed: TypingFrame) -> None:
        access.require_scope(self.principal, Scope.POST)
        name = f"transaction:{parsed.transaction_id}"
        if name not in self.subscriptions:
            raise InvalidInput(
                "Subscribe to the transaction before saying you are typing.",
                field="transaction_id",
            )
        now = self.services.clock.monotonic()
        if self._last_typing is None:
            self._last_typing = {}
        last = self._last_typing.get(parsed.transaction_id)
        if last is not None and now - last < _TYPING_INTERVAL_SECS:
            return
        self._last_typing[parsed.transaction_id] = now
        self._active()
        await self.hub.typing(self, parsed.transaction_id)


class _PostsInFlight:
    """A connection's posts in flight: each holds a slot, and the latest
    per transaction is kept so that the next one to it waits its turn."""

    __slots__ = ("latest", "slots")

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(_POSTS_IN_FLIGHT)
        self.latest: dict[uuid.UUID, asyncio.Task[None]] = {}


def _request_id_of(text: str) -> str | None:
    """The ``id`` of a frame that failed validation, when it is a string."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


async def _finish(write: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Run a coroutine on from where it waited, as its task would have.

    ``waiting_on`` is what the coroutine yielded when it could not go on
    (an asyncio future). If we are cancelled meanwhile, the coroutine is
    closed, so it cleans up as a cancelled write would.
    """
    try:
        while True:
            if waiting_on is None:
                await asyncio.sleep(0)  # a bare yield: just let others run
            else:
                # The coroutine's yield marked the future as awaited by a
                # task, which it now is: ours. Unmark it, as a task does
                # when it takes up a yielded future, or awaiting it fails.
                waiting_on._asyncio_future_blocking = False
                await waiting_on
            try:
                waiting_on = write.send(None)
            except StopIteration:
                return
    finally:
        write.close()
