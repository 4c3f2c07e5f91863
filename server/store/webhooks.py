"""Webhooks and their queue of deliveries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import asyncpg

from server.store.database import Conn


__all__ = [
    "Claimed",
    "Delivery",
    "Webhook",
    "claim_due",
    "deactivate",
    "deliveries",
    "insert",
    "list_active",
    "mark_delivered",
    "mark_failed",
    "schedule_retry",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Webhook:
    id: uuid.UUID
    company_id: uuid.UUID
    url: str
    secret: str
    created_at: dt.datetime
    # Who registered it; None once their account is gone.
    created_by: uuid.UUID | None


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    webhook_id: uuid.UUID
    message_id: uuid.UUID
    # 'pending', 'delivered' or 'failed'.
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


_COLUMNS = "id, company_id, url, secret, created_at, created_by"


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(
        row["id"],
        row["company_id"],
        row["url"],
        row["secret"],
        row["created_at"],
        row["created_by"],
    )


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        message_id=row["message_id"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


async def insert(
    conn: Conn, company_id: uuid.UUID, url: str, secret: str, created_by: uuid.UUID
) -> Webhook:
    row = await conn.fetchrow(
        f"""
        INSERT INTO webhooks (id, company_id, url, secret, created_by)
        VALUES ($1, $2, $3, $4, $5)
        RETURNING {_COLUMNS}
        """,
        uuid.uuid4(),
        company_id,
        url,
        secret,
        created_by,
    )
    assert row is not None
    return _webhook(row)


async def list_active(conn: Conn, company_id: uuid.UUID) -> list[Webhook]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM webhooks
        WHERE company_id = $1 AND active ORDER BY created_at
        """,
        company_id,
    )
    return [_webhook(r) for r in rows]


async def deactivate(conn: Conn, company_id: uuid.UUID, webhook_id: uuid.UUID) -> bool:
    """Stop a webhook; its pending deliveries fail. False if none such."""
    status = await conn.execute(
        """
        UPDATE webhooks SET active = false
        WHERE id = $1 AND company_id = $2 AND active
        """,
        webhook_id,
        company_id,
    )
    if status == "UPDATE 0":
        return False
    await conn.execute(
        """
        UPDATE webhook_deliveries SET state = 'failed', last_error = 'webhook deleted'
        WHERE webhook_id = $1 AND state = 'pending'
        """,
        webhook_id,
    )
    return True


async def deliveries(
    conn: Conn, company_id: uuid.UUID, webhook_id: uuid.UUID, limit: int
) -> list[Delivery] | None:
    """A webhook's delivery log, newest first; None when it is not the company's."""
    owner = await conn.fetchval(
        "SELECT company_id FROM webhooks WHERE id = $1", webhook_id
    )
    if owner != company_id:
        return None
    rows = await conn.fetch(
        """
        SELECT * FROM webhook_deliveries WHERE webhook_id = $1
        ORDER BY created_at DESC, id LIMIT $2
        """,
        webhook_id,
        limit,
    )
    return [_delivery(r) for r in rows]


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken by one dispatcher, with what it needs to send it."""

    delivery: Delivery
    webhook: Webhook
    company_id: uuid.UUID


async def claim_due(
    conn: Conn, now: dt.datetime, lease: dt.timedelta, limit: int
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries, oldest first.

    Several dispatchers can run: rows locked by one are skipped by the
    others, and a claimed row's next attempt moves ``lease`` ahead, so a
    dispatcher that dies mid-send leaves it to be tried again then.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT d.id FROM webhook_deliveries d
            JOIN webhooks w ON w.id = d.webhook_id AND w.active
            WHERE d.state = 'pending' AND d.next_attempt_at <= $1
            ORDER BY d.next_attempt_at, d.created_at
            LIMIT $3
            FOR UPDATE OF d SKIP LOCKED
        )
        UPDATE webhook_deliveries d
        SET attempts = d.attempts + 1, next_attempt_at = $1 + $2::interval
        FROM due WHERE d.id = due.id
        RETURNING d.*
        """,
        now,
        lease,
        limit,
    )
    claimed = []
    for row in rows:
        delivery = _delivery(row)
        hook = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM webhooks WHERE id = $1",
            delivery.webhook_id,
        )
        assert hook is not None
        webhook = _webhook(hook)
        claimed.append(Claimed(delivery, webhook, webhook.company_id))
    return claimed


async def mark_delivered(
    conn: Conn, delivery_id: uuid.UUID, status: int, now: dt.datetime
) -> None:
    await conn.execute(
        """
        UPDATE webhook_deliveries
        SET state = 'delivered', last_status = $2, last_error = NULL, delivered_at = $3
        WHERE id = $1
        """,
        delivery_id,
        status,
        now,
    )


async def schedule_retry(
    conn: Conn,
    delivery_id: uuid.UUID,
    at: dt.datetime,
    status: int | None,
    error: str,
) -> None:
    await conn.execute(
        """
        UPDATE webhook_deliveries
        SET next_attempt_at = $2, last_status = $3, last_error = $4
        WHERE id = $1 AND state = 'pending'
        """,
        delivery_id,
        at,
        status,
        error[:500],
    )


async def mark_failed(
    conn: Conn, delivery_id: uuid.UUID, status: int | None, error: str
) -> None:
    await conn.execute(
        """
        UPDATE webhook_deliveries
        SET state = 'failed', last_status = $2, last_error = $3
        WHERE id = $1
        """,
        delivery_id,
        status,
        error[:500],
    )
