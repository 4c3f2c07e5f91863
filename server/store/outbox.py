"""Messages waiting to be mailed, and the emails (batches) made from them.

A row of ``mail_outbox`` is written with each message, one per recipient
who may need an email; a row of ``mail_batches`` is one email to one
recipient about one company. See docs/email.md for the rules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import asyncpg

from server.store.database import Conn


__all__ = [
    "Batch",
    "MailRecipient",
    "OutboxItem",
    "batch_items",
    "claim_due_user",
    "emails_since",
    "finish_batch",
    "insert_batch",
    "pending_for_user",
    "postpone",
    "prune",
    "recipient",
    "retry_batch",
    "skip",
    "take_ready_batch",
    "try_lock_user",
]

# First key of the advisory locks that keep one worker at a time on one
# recipient's pending rows ("mail" in ASCII); the second is a hash of the
# user id. A collision only makes two recipients wait for each other.
_USER_LOCK_CLASS = 0x6D61696C


@dataclasses.dataclass(frozen=True, slots=True)
class MailRecipient:
    id: uuid.UUID
    email: str
    display_name: str
    # 'person' or 'bot'.
    kind: str
    # IANA zone name, or None for UTC.
    time_zone: str | None
    clock_24h: bool
    email_notifications: bool


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxItem:
    """A message waiting to be mailed, with what decides whether it still is."""

    message_id: uuid.UUID
    company_id: uuid.UUID
    transaction_id: uuid.UUID
    transaction_type: str
    doc_number: str
    seq: int
    created_at: dt.datetime
    due_at: dt.datetime
    # None for system entries (which have no recipients, so never here).
    author_name: str | None
    author_role: str | None
    body: str
    # The recipient's read marker is at or past the message.
    read: bool
    # The recipient is still a member of the message's company.
    member: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    id: uuid.UUID
    user_id: uuid.UUID
    company_id: uuid.UUID
    # The Message-ID header, "<id@host>".
    message_id: str
    attempts: int
    created_at: dt.datetime


_ITEM_SELECT = """
    SELECT o.message_id, o.company_id, o.due_at, m.transaction_id, m.seq,
        m.created_at, m.body, m.author_role, u.display_name AS author_name,
        t.type AS transaction_type, t.doc_number,
        m.seq <= coalesce(rs.last_read_seq, 0) AS read,
        EXISTS (
            SELECT 1 FROM memberships mb
            WHERE mb.company_id = o.company_id AND mb.user_id = o.user_id
        ) AS member
    FROM mail_outbox o
    JOIN messages m ON m.id = o.message_id
    JOIN transactions t ON t.id = m.transaction_id
    LEFT JOIN users u ON u.id = m.author_id
    LEFT JOIN read_states rs
        ON rs.user_id = o.user_id AND rs.conversation_id = m.conversation_id
"""


def _item(row: asyncpg.Record) -> OutboxItem:
    return OutboxItem(
        message_id=row["message_id"],
        company_id=row["company_id"],
        transaction_id=row["transaction_id"],
        transaction_type=row["transaction_type"],
        doc_number=row["doc_number"],
        seq=row["seq"],
        created_at=row["created_at"],
        due_at=row["due_at"],
        author_name=row["author_name"],
        author_role=row["author_role"],
        body=row["body"],
        read=row["read"],
        member=row["member"],
    )


def _batch(row: asyncpg.Record) -> Batch:
    return Batch(
        id=row["id"],
        user_id=row["user_id"],
        company_id=row["company_id"],
        message_id=row["message_id"],
        attempts=row["attempts"],
        created_at=row["created_at"],
    )


# Writing the intent to mail


# Turning due rows into batches


async def claim_due_user(
    conn: Conn, now: dt.datetime, passed_over: list[uuid.UUID]
) -> uuid.UUID | None:
    """Lock the oldest due pending row no other worker holds; return its user.

    Args:
        passed_over: users to leave out (another worker has them).

    """
    user_id: uuid.UUID | None = await conn.fetchval(
        """
        SELECT user_id FROM mail_outbox
        WHERE state = 'pending' AND due_at <= $1 AND NOT (user_id = ANY($2::uuid[]))
        ORDER BY due_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """,
        now,
        passed_over,
    )
    return user_id


async def try_lock_user(conn: Conn, user_id: uuid.UUID) -> bool:
    """Take the user's mail lock until the transaction ends, if it is free."""
    taken: bool = await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock($1, hashtext($2::uuid::text))",
        _USER_LOCK_CLASS,
        user_id,
    )
    return taken


async def pending_for_user(conn: Conn, user_id: uuid.UUID) -> list[OutboxItem]:
    """The user's pending rows, oldest message first, locked."""
    rows = await conn.fetch(
        _ITEM_SELECT
        + """
        WHERE o.user_id = $1 AND o.state = 'pending'
        ORDER BY m.created_at, m.company_seq
        FOR UPDATE OF o
        """,
        user_id,
    )
    return [_item(r) for r in rows]


async def recipient(conn: Conn, user_id: uuid.UUID) -> MailRecipient | None:
    row = await conn.fetchrow(
        """
        SELECT id, email, display_name, kind, time_zone, clock_24h,
            email_notifications
        FROM users WHERE id = $1
        """,
        user_id,
    )
    if row is None:
        return None
    return MailRecipient(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        kind=row["kind"],
        time_zone=row["time_zone"],
        clock_24h=row["clock_24h"],
        email_notifications=row["email_notifications"],
    )


async def skip(
    conn: Conn, user_id: uuid.UUID, message_ids: list[uuid.UUID], reason: str
) -> None:
    """Mark rows as never to be mailed, saying why."""
    await conn.execute(
        """
        UPDATE mail_outbox SET state = 'skipped', skip_reason = $3
        WHERE user_id = $1 AND message_id = ANY($2::uuid[])
        """,
        user_id,
        message_ids,
        reason,
    )


async def postpone(
    conn: Conn, user_id: uuid.UUID, message_ids: list[uuid.UUID], due_at: dt.datetime
) -> None:
    await conn.execute(
        """
        UPDATE mail_outbox SET due_at = $3
        WHERE user_id = $1 AND message_id = ANY($2::uuid[])
        """,
        user_id,
        message_ids,
        due_at,
    )


async def emails_since(
    conn: Conn, user_id: uuid.UUID, since: dt.datetime
) -> list[dt.datetime]:
    """When each email to the user made after ``since`` was made, oldest first.

    Emails that were dropped unsent do not count.
    """
    rows = await conn.fetch(
        """
        SELECT created_at FROM mail_batches
        WHERE user_id = $1 AND created_at > $2 AND state <> 'dropped'
        ORDER BY created_at
        """,
        user_id,
        since,
    )
    return [r["created_at"] for r in rows]


async def insert_batch(
    conn: Conn,
    *,
    batch_id: uuid.UUID,
    user_id: uuid.UUID,
    company_id: uuid.UUID,
    message_id: str,
    now: dt.datetime,
    message_ids: list[uuid.UUID],
) -> None:
    """Record an email, ready to send now, and point its rows at it."""
    await conn.execute(
        """
        INSERT INTO mail_batches
            (id, user_id, company_id, message_id, next_attempt_at, created_at)
        VALUES ($1, $2, $3, $4, $5, $5)
        """,
        batch_id,
        user_id,
        company_id,
        message_id,
        now,
    )
    await conn.execute(
        """
        UPDATE mail_outbox SET state = 'batched', batch_id = $3
        WHERE user_id = $1 AND message_id = ANY($2::uuid[])
        """,
        user_id,
        message_ids,
        batch_id,
    )


# Sending batches


async def take_ready_batch(conn: Conn, now: dt.datetime) -> Batch | None:
    """Lock the batch whose turn came first, that no other worker holds.

    Must run inside a transaction, which holds the lock until it ends.
    """
    row = await conn.fetchrow(
        """
        SELECT id, user_id, company_id, message_id, attempts, created_at
        FROM mail_batches
        WHERE state = 'ready' AND next_attempt_at <= $1
        ORDER BY next_attempt_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """,
        now,
    )
    return None if row is None else _batch(row)


async def batch_items(conn: Conn, batch_id: uuid.UUID) -> list[OutboxItem]:
    """The rows of a batch still meant for it, oldest message first."""
    rows = await conn.fetch(
        _ITEM_SELECT
        + """
        WHERE o.batch_id = $1 AND o.state = 'batched'
        ORDER BY m.created_at, m.company_seq
        """,
        batch_id,
    )
    return [_item(r) for r in rows]


async def finish_batch(
    conn: Conn,
    batch_id: uuid.UUID,
    state: str,
    now: dt.datetime,
    *,
    attempted: bool,
    error: str | None = None,
) -> None:
    """Move a batch to 'sent', 'failed' or 'dropped'."""
    await conn.execute(
        """
        UPDATE mail_batches SET state = $2, finished_at = $3,
            attempts = attempts + $4::int, last_error = coalesce($5, last_error)
        WHERE id = $1
        """,
        batch_id,
        state,
        now,
        1 if attempted else 0,
        error,
    )


async def retry_batch(
    conn: Conn, batch_id: uuid.UUID, next_attempt_at: dt.datetime, error: str
) -> None:
    """Count a failed attempt and set the time of the next one."""
    await conn.execute(
        """
        UPDATE mail_batches SET attempts = attempts + 1, next_attempt_at = $2,
            last_error = $3
        WHERE id = $1
        """,
        batch_id,
        next_attempt_at,
        error,
    )


async def prune(conn: Conn, before: dt.datetime) -> None:
    """Forget finished batches and skipped rows older than ``before``."""
    await conn.execute(
        "DELETE FROM mail_batches WHERE state <> 'ready' AND finished_at < $1", before
    )
    await conn.execute(
        "DELETE FROM mail_outbox WHERE state = 'skipped' AND due_at < $1", before
    )
