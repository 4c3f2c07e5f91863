"""The mail worker: turns due outbox rows into emails and sends them.

Each pass does two things. It forms batches: for each recipient with a
due row, the rule in :mod:`server.core.notifications` decides what is
still worth mailing and records one batch per company, with its
Message-ID, committed before anything is sent. Then it sends ready
batches, each in a transaction of its own that holds the batch's row lock
while the SMTP server is talking, so no two workers send one batch at once.

Crashes: a worker killed mid-send leaves its batch 'ready' (the
transaction never committed) and its lock is gone with its session, so the
next pass of any worker sends it again, under the same Message-ID. A mail
may thus arrive twice, never under two Message-IDs, and never not at all.

Failures: a temporary SMTP error puts the batch off with exponential
backoff and jitter; a permanent one marks it failed. Any other error in a
pass is logged with its traceback and the loop backs off and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import random
import uuid
from collections.abc import Callable

from server.clock import Clock
from server.core import notifications
from server.core.eligibility import TransactionType
from server.core.notifications import BatchContents, NotificationPolicy, SkipReason
from server.mail.compose import (
    Notification,
    NotifiedMessage,
    Recipient,
    TransactionGroup,
    compose_notification,
)
from server.mail.links import MailLinks
from server.mail.sender import MailSender, PermanentMailError, TemporaryMailError
from server.store.database import Conn, Database
from server.store.outbox import Batch, OutboxItem


__all__ = ["MailWorker", "WorkerTimings", "retry_delay_secs"]

logger = logging.getLogger(__name__)

#: Batches sent at once by one worker. Each holds a database connection
#: while its SMTP server answers, so this stays well under DB_POOL_SIZE.
SEND_CONCURRENCY = 4

#: Recipients whose due rows one pass turns into batches, and batches one
#: sending task sends in a pass: bounds a pass after a long outage, so
#: shutdown never waits long.
PASS_LIMIT = 100

#: A batch still not sent this long after it was formed is given up: the
#: news in it is stale, and the messages are in the app anyway. The GAP
#: portal retries for 12 hours; a day covers a weekend SMTP outage less
#: well but a night's one fully.
GIVE_UP_AFTER = dt.timedelta(hours=24)

#: Sent batches and skipped rows are kept this long for operators, then
#: pruned; the hourly cap only ever looks one hour back.
KEEP_FOR = dt.timedelta(days=7)
_PRUNE_EVERY_SECS = 3600.0

# Longest pause between passes after errors in a row.
_MAX_PASS_BACKOFF_SECS = 60.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkerTimings:
    """How often the worker looks, and how it backs off.

    Raises:
        ValueError: a value that is not positive, or a retry cap below the
            base.

    """

    poll_secs: float = 2.0
    retry_base_secs: float = 30.0
    retry_max_secs: float = 1800.0
    # The longest one send may take (the sender's own budget). A worker's
    # session is ended by PostgreSQL if it sits in a transaction for twice
    # this plus a minute, which frees the batches of a wedged worker.
    send_budget_secs: float = 60.0

    def __post_init__(self) -> None:
        for name in ("poll_secs", "retry_base_secs", "send_budget_secs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.retry_max_secs < self.retry_base_secs:
            raise ValueError("retry_max_secs must be at least retry_base_secs")


def retry_delay_secs(
    attempts: int,
    timings: WorkerTimings,
    rand: Callable[[], float] = random.random,
) -> float:
    """The wait before the next try, after ``attempts`` failed ones.

    The base doubles with each failure up to the cap; a random half of it
    is taken off, so batches that failed together (SMTP down for everyone)
    do not all come back in the same second.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    # Exponent bounded: 2**64 seconds is past any cap already.
    ceiling: float = timings.retry_base_secs * 2.0 ** min(attempts - 1, 64)
    delay = min(timings.retry_max_secs, ceiling)
    return delay / 2 + rand() * delay / 2


class MailWorker:
    """Sends the email fallback; several may run against one database.

    Args:
        db: the pool; each sending task holds one connection while it sends.
        clock: the time source for due times, presence and backoff.
        sender: where finished emails go.
        policy: the delay and cap the server runs with.
        links: builds the links and addresses the emails carry.
        from_address: the From of every email.
        timings: polling and backoff.

    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        sender: MailSender,
        policy: NotificationPolicy,
        links: MailLinks,
        *,
        from_address: str,
        timings: WorkerTimings,
    ) -> None:
        self._db = db
        self._clock = clock
        self._sender = sender
        self._policy = policy
        self._links = links
        self._from_address = from_address
        self._timings = timings
        # When the last prune ran, on the clock's monotonic scale; None
        # until the first pass prunes.
        self._pruned_at: float | None = None
        # Set while run() runs; once it is set, a pass sends no new batch.
        self._stop: asyncio.Event | None = None

    # Running

    async def run(self, stop: asyncio.Event) -> None:
        """Make passes until ``stop`` is set; emails under way finish first."""
        logger.info("mail worker started")
        self._stop = stop
        failures = 0
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                # Whatever went wrong (the database away, a bug), the next
                # pass may go better; the batches stay where they were.
                failures += 1
                logger.exception("mail pass failed")
            else:
                failures = 0
            pause_secs = min(
                _MAX_PASS_BACKOFF_SECS,
                self._timings.poll_secs * 2.0 ** min(failures, 16),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause_secs)
        logger.info("mail worker stopped")

    async def run_once(self) -> int:
        """Form due batches and send the ready ones.

        Returns:
            How many batches were handled (sent, failed, put off, dropped).

        """
        await self._maybe_prune()
        await notifications.form_due_batches(
            self._db,
            self._clock,
            self._policy,
            message_id_for=self._links.message_id,
            max_recipients=PASS_LIMIT,
        )
        # Not a TaskGroup: one task's failure must not cancel the others in
        # the middle of talking to the SMTP server.
        results = await asyncio.gather(
            *(self._send_ready() for _ in range(SEND_CONCURRENCY)),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, Exception):
                raise error
        if errors:
            raise ExceptionGroup(
                "sending failed", [e for e in errors if isinstance(e, Exception)]
            )
        return sum(r for r in results if isinstance(r, int))

    async def _maybe_prune(self) -> None:
        now_mono = self._clock.monotonic()
        if (
            self._pruned_at is not None
            and now_mono - self._pruned_at < _PRUNE_EVERY_SECS
        ):
            return
        self._pruned_at = now_mono
        await notifications.prune(self._db, self._clock.now() - KEEP_FOR)

    # Sending

    async def _send_ready(self) -> int:
        handled = 0
        while handled < PASS_LIMIT and not self._stopping() and await self._send_one():
            handled += 1
        return handled

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _send_one(self) -> bool:
        """Send the next ready batch; False when there is none."""
        idle_ms = int((2 * self._timings.send_budget_secs + 60) * 1000)
        async with self._db.connection() as conn, conn.transaction():
            await conn.execute(
                f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms}"
            )
            now = self._clock.now()
            batch = await notifications.take_ready_batch(conn, now)
            if batch is None:
                return False
            contents = await notifications.recheck_batch(conn, batch, now)
            if isinstance(contents, SkipReason):
                await notifications.drop_batch(conn, batch, now)
                logger.debug(
                    "email dropped",
                    extra={"batch_id": str(batch.id), "reason": str(contents)},
                )
                return True
            await self._attempt(conn, batch, contents)
        return True

    async def _attempt(self, conn: Conn, batch: Batch, contents: BatchContents) -> None:
        """Compose and send one batch, and record how it went."""
        extra = {"batch_id": str(batch.id), "user_id": str(batch.user_id)}
        now = self._clock.now()
        try:
            mail = compose_notification(
                self._notification(batch, contents), sent_at=now
            )
        except ValueError as exc:
            # Bad stored data (an address the composer refuses) or our
            # bug: composing again will not help.
            logger.exception("email cannot be composed", extra=extra)
            await notifications.mark_failed(
                conn, batch, now, f"cannot compose: {exc}", attempted=False
            )
            return

        try:
            await self._sender.send(mail)
        except TemporaryMailError as exc:
            await self._put_off(conn, batch, str(exc))
        except PermanentMailError as exc:
            logger.warning("email refused", extra=extra | {"error": str(exc)})
            await notifications.mark_failed(
                conn, batch, self._clock.now(), str(exc), attempted=True
            )
        except Exception as exc:
            # A sender bug; the batch is put off like any failure, so that
            # it neither spins nor blocks the others.
            logger.exception("email send crashed", extra=extra)
            await self._put_off(conn, batch, f"internal error: {type(exc).__name__}")
        else:
            await notifications.mark_sent(conn, batch, self._clock.now())
            logger.debug("email sent", extra=extra)

    async def _put_off(self, conn: Conn, batch: Batch, error: str) -> None:
        extra = {"batch_id": str(batch.id), "error": error}
        now = self._clock.now()
        if now - batch.created_at > GIVE_UP_AFTER:
            logger.warning("email given up", extra=extra)
            await notifications.mark_failed(conn, batch, now, error, attempted=True)
            return
        delay_secs = retry_delay_secs(batch.attempts + 1, self._timings)
        logger.warning("email put off", extra=extra | {"retry_in_secs": delay_secs})
        await notifications.retry_later(
            conn, batch, now + dt.timedelta(seconds=delay_secs), error
        )

    # Composing

    def _notification(self, batch: Batch, contents: BatchContents) -> Notification:
        links = self._links
        recipient = contents.recipient
        by_transaction: dict[uuid.UUID, list[OutboxItem]] = {}
        for item in contents.items:
            by_transaction.setdefault(item.transaction_id, []).append(item)

        groups = []
        for transaction_id, items in by_transaction.items():
            company_id = batch.company_id
            messages = tuple(
                NotifiedMessage(
                    author_name=item.author_name or "Tickmark",
                    author_role=item.author_role or "",
                    created_at=item.created_at,
                    body=item.body,
                    link_url=links.message_url(
                        company_id, transaction_id, item.message_id
                    ),
                )
                for item in items
            )
            groups.append(
                TransactionGroup(
                    label=_label(items[0]),
                    # The oldest unread message: where reading should start.
                    link_url=links.message_url(
                        company_id, transaction_id, items[0].message_id
                    ),
                    messages=messages,
                )
            )

        # One reply address per email, so only an email about a single
        # transaction can say where a reply belongs.
        reply_to = None
        if len(by_transaction) == 1:
            reply_to = links.reply_address(recipient.id, next(iter(by_transaction)))
        return Notification(
            recipient=Recipient(
                display_name=recipient.display_name,
                email=recipient.email,
                time_zone=recipient.time_zone,
                clock_24h=recipient.clock_24h,
            ),
            company_name=contents.company_name,
            transactions=tuple(groups),
            message_id=batch.message_id,
            from_address=self._from_address,
            public_url=links.public_url,
            settings_url=links.settings_url,
            unsubscribe_url=links.unsubscribe_url(recipient.id),
            reply_to=reply_to,
        )


def _label(item: OutboxItem) -> str:
    """What people call the transaction, such as "Invoice 1042"."""
    try:
        kind = TransactionType(item.transaction_type).label
    except ValueError:
        kind = item.transaction_type.replace("_", " ").capitalize()
    return f"{kind} {item.doc_number}".strip()
