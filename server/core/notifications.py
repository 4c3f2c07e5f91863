"""Who is mailed about which messages, and when: the email fallback's rule.

A message's recipient gets an email about it when, once their delay has
passed, they have not read it, are still a member of its company, still
have email turned on, and are not paying attention in any live session
right then. The rule is applied twice: when a recipient's rows are turned
into emails (batches), and again before every attempt to send one, since
an attempt may come much later (SMTP down, a worker restarted).

Batching: the first pending row of a recipient opens a window; when it
falls due, every message waiting for that recipient goes out together, one
email per company. A recipient gets at most ``max_emails_per_hour``
emails; beyond that, messages wait for the next free slot and go out
together then. docs/email.md tells the same for operators.

The outbox itself is written by the statement that stores the message
(``append_message``, see :func:`server.store.messages.append`), so the
intent to mail commits with the message or not at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import uuid
from collections.abc import Callable, Iterable

from server.clock import Clock
from server.store import companies, outbox, presence
from server.store.database import Conn, Database
from server.store.outbox import Batch, MailRecipient, OutboxItem


__all__ = [
    "DEFAULT_DELAY_SECS",
    "DEFAULT_MAX_EMAILS_PER_HOUR",
    "MAX_DELAY_SECS",
    "BatchContents",
    "NotificationPolicy",
    "SkipReason",
    "drop_batch",
    "form_due_batches",
    "mark_failed",
    "mark_sent",
    "prune",
    "recheck_batch",
    "retry_later",
    "take_ready_batch",
]

logger = logging.getLogger(__name__)

#: Zulip's default: long enough for someone who stepped away to come back
#: and read it, short enough that the email still helps.
DEFAULT_DELAY_SECS = 120
#: The longest delay a person may choose: beyond an hour the email stops
#: being a prompt to answer and becomes a digest, which this is not.
MAX_DELAY_SECS = 3600
#: One email per five minutes on average, even for someone in several
#: busy threads; a burst of messages costs one email, not thirty (R11).
DEFAULT_MAX_EMAILS_PER_HOUR = 12

_CAP_WINDOW = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationPolicy:
    """The server-wide settings of the email fallback.

    Raises:
        ValueError: a delay outside 0..MAX_DELAY_SECS, or a cap below 1.

    """

    # Delay for people who have not chosen their own.
    default_delay_secs: int = DEFAULT_DELAY_SECS
    max_emails_per_hour: int = DEFAULT_MAX_EMAILS_PER_HOUR

    def __post_init__(self) -> None:
        if not 0 <= self.default_delay_secs <= MAX_DELAY_SECS:
            raise ValueError(
                f"default_delay_secs must be 0..{MAX_DELAY_SECS}, "
                f"got {self.default_delay_secs}"
            )
        if self.max_emails_per_hour < 1:
            raise ValueError(
                f"max_emails_per_hour must be at least 1, "
                f"got {self.max_emails_per_hour}"
            )


class SkipReason(enum.StrEnum):
    """Why a waiting message was not mailed."""

    READ = "read"
    NOT_MEMBER = "not_member"
    ATTENTIVE = "attentive"
    EMAIL_OFF = "email_off"


@dataclasses.dataclass(frozen=True, slots=True)
class BatchContents:
    """What one email says, read again just before it is sent."""

    recipient: MailRecipient
    company_name: str
    # Oldest first; never empty.
    items: tuple[OutboxItem, ...]


# Forming batches


async def form_due_batches(
    db: Database,
    clock: Clock,
    policy: NotificationPolicy,
    *,
    message_id_for: Callable[[uuid.UUID], str],
    max_recipients: int,
) -> int:
    """Turn the due rows of up to ``max_recipients`` recipients into batches.

    Each recipient is handled in a transaction of their own, under a lock
    that keeps other workers off their rows, so one recipient's window is
    never split between two emails sent at once.

    Args:
        message_id_for: the Message-ID header for a batch id.

    Returns:
        How many batches were made.

    """
    made = 0
    passed_over: list[uuid.UUID] = []
    for _ in range(max_recipients):
        async with db.transaction() as conn:
            now = clock.now()
            user_id = await outbox.claim_due_user(conn, now, passed_over)
            if user_id is None:
                break
            if not await outbox.try_lock_user(conn, user_id):
                # Another worker is on this recipient; it takes all of
                # their rows, this one included.
                passed_over.append(user_id)
                continue
            made += await _form_for_user(
                conn, user_id, now, policy, message_id_for=message_id_for
            )
    return made


async def _form_for_user(
    conn: Conn,
    user_id: uuid.UUID,
    now: dt.datetime,
    policy: NotificationPolicy,
    *,
    message_id_for: Callable[[uuid.UUID], str],
) -> int:
    items = await outbox.pending_for_user(conn, user_id)
    if not items or min(i.due_at for i in items) > now:
        # Taken by another worker between our claim and our lock.
        return 0
    recipient = await outbox.recipient(conn, user_id)
    assert recipient is not None, "outbox rows cascade with their user"
    kept, _ = await _apply_rule(conn, recipient, items, now)
    if not kept:
        return 0

    # The hourly allowance. Companies beyond it wait until the oldest email
    # that counts against it is an hour old; everything pending for them
    # then goes out in one email.
    by_company = list(_by_company(kept).items())
    recent = await outbox.emails_since(conn, user_id, now - _CAP_WINDOW)
    allowed = max(0, policy.max_emails_per_hour - len(recent))
    counted = recent + [now] * min(allowed, len(by_company))
    for company_id, company_items in by_company[allowed:]:
        free_at = counted[len(counted) - policy.max_emails_per_hour] + _CAP_WINDOW
        await outbox.postpone(
            conn, user_id, [i.message_id for i in company_items], free_at
        )
        logger.info(
            "email held back by the hourly cap",
            extra={"user_id": str(user_id), "company_id": str(company_id)},
        )

    for company_id, company_items in by_company[:allowed]:
        batch_id = uuid.uuid4()
        await outbox.insert_batch(
            conn,
            batch_id=batch_id,
            user_id=user_id,
            company_id=company_id,
            message_id=message_id_for(batch_id),
            now=now,
            message_ids=[i.message_id for i in company_items],
        )
    return min(allowed, len(by_company))


def _by_company(items: Iterable[OutboxItem]) -> dict[uuid.UUID, list[OutboxItem]]:
    """Items per company, the company with the oldest message first."""
    grouped: dict[uuid.UUID, list[OutboxItem]] = {}
    for item in items:
        grouped.setdefault(item.company_id, []).append(item)
    return grouped


async def _apply_rule(
    conn: Conn,
    recipient: MailRecipient,
    items: list[OutboxItem],
    now: dt.datetime,
) -> tuple[list[OutboxItem], SkipReason | None]:
    """Skip the items the rule says not to mail.

    Returns:
        The items still to mail, and when there are none, why.

    """
    user_id = recipient.id
    everything = [i.message_id for i in items]
    if not recipient.email_notifications:
        await outbox.skip(conn, user_id, everything, SkipReason.EMAIL_OFF)
        return [], SkipReason.EMAIL_OFF
    # Known limitation: attention is judged now, not over the window, since
    # presence rows keep no history. Someone who was in the app meanwhile
    # but has left is mailed, which errs toward telling them.
    if await presence.users_active(conn, [user_id], now):
        # Paying attention right now: the live badge has told them.
        await outbox.skip(conn, user_id, everything, SkipReason.ATTENTIVE)
        return [], SkipReason.ATTENTIVE

    read = [i.message_id for i in items if i.read]
    # A company they have left must not reach them by email either.
    gone = [i.message_id for i in items if not i.member and not i.read]
    if read:
        await outbox.skip(conn, user_id, read, SkipReason.READ)
    if gone:
        await outbox.skip(conn, user_id, gone, SkipReason.NOT_MEMBER)
    kept = [i for i in items if i.member and not i.read]
    if kept:
        return kept, None
    return [], SkipReason.NOT_MEMBER if gone else SkipReason.READ


# Sending batches


async def take_ready_batch(conn: Conn, now: dt.datetime) -> Batch | None:
    """Lock the next batch to send; the lock lasts until the transaction ends.

    A worker holds the lock while it talks to the SMTP server, so no other
    worker sends the same batch meanwhile. If the worker dies, PostgreSQL
    ends its session and the lock with it, and the batch is taken again at
    once, under the same Message-ID.
    """
    return await outbox.take_ready_batch(conn, now)


async def recheck_batch(
    conn: Conn, batch: Batch, now: dt.datetime
) -> BatchContents | SkipReason:
    """Apply the rule again to a batch about to be sent.

    Messages read, or of a company the recipient has left, are taken out
    of the batch. Returns what is left to say, or why nothing is.
    """
    recipient = await outbox.recipient(conn, batch.user_id)
    assert recipient is not None, "batches cascade with their user"
    items = await outbox.batch_items(conn, batch.id)
    kept, reason = await _apply_rule(conn, recipient, items, now)
    if reason is not None:
        return reason
    company = await companies.by_id(conn, batch.company_id)
    assert company is not None, "batches cascade with their company"
    return BatchContents(recipient, company.name, tuple(kept))


async def mark_sent(conn: Conn, batch: Batch, now: dt.datetime) -> None:
    await outbox.finish_batch(conn, batch.id, "sent", now, attempted=True)


async def mark_failed(
    conn: Conn, batch: Batch, now: dt.datetime, error: str, *, attempted: bool
) -> None:
    await outbox.finish_batch(
        conn, batch.id, "failed", now, attempted=attempted, error=error
    )


async def drop_batch(conn: Conn, batch: Batch, now: dt.datetime) -> None:
    """Close a batch that has nothing left to say; nothing was sent."""
    await outbox.finish_batch(conn, batch.id, "dropped", now, attempted=False)


async def retry_later(
    conn: Conn, batch: Batch, next_attempt_at: dt.datetime, error: str
) -> None:
    await outbox.retry_batch(conn, batch.id, next_attempt_at, error)


async def prune(db: Database, before: dt.datetime) -> None:
    """Forget finished emails and skipped rows older than ``before``."""
    async with db.transaction() as conn:
        await outbox.prune(conn, before)
