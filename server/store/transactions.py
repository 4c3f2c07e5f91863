"""Transactions from the accounting system, one company's at a time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import asyncpg

from server.store.database import Conn


__all__ = [
    "Transaction",
    "TransactionFields",
    "TransactionSummary",
    "Upserted",
    "company_of",
    "get",
    "insert",
    "list_for_member",
    "upsert_by_external_id",
]


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionFields:
    """What the accounting system says about a transaction."""

    type: str
    doc_number: str
    txn_date: dt.date
    counterparty: str
    memo: str
    amount: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class Transaction:
    id: uuid.UUID
    company_id: uuid.UUID
    # The accounting system's id, or None for one entered by hand.
    external_id: str | None
    fields: TransactionFields
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionSummary:
    """A transaction with its conversation, as one member sees them."""

    transaction: Transaction
    # None until the first message is posted.
    conversation_id: uuid.UUID | None
    last_seq: int
    last_message_at: dt.datetime | None
    # Messages addressed to this member that they have not read.
    unread: int
    last_read_seq: int


_COLUMNS = """
    t.id, t.company_id, t.external_id, t.type, t.doc_number, t.txn_date,
    t.counterparty, t.memo, t.amount, t.currency, t.created_at, t.updated_at
"""


def _transaction(row: asyncpg.Record) -> Transaction:
    return Transaction(
        id=row["id"],
        company_id=row["company_id"],
        external_id=row["external_id"],
        fields=TransactionFields(
            type=row["type"],
            doc_number=row["doc_number"],
            txn_date=row["txn_date"],
            counterparty=row["counterparty"],
            memo=row["memo"],
            amount=row["amount"],
            currency=row["currency"],
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _summary(row: asyncpg.Record) -> TransactionSummary:
    return TransactionSummary(
        transaction=_transaction(row),
        conversation_id=row["conversation_id"],
        last_seq=row["last_seq"],
        last_message_at=row["last_message_at"],
        unread=row["unread"],
        last_read_seq=row["last_read_seq"],
    )


# A member's view: the transaction, its conversation if any, and how many
# messages addressed to the member lie past their read marker.
_SUMMARY_SELECT = f"""
    SELECT {_COLUMNS},
        c.id AS conversation_id,
        coalesce(c.last_seq, 0) AS last_seq,
        c.last_message_at,
        coalesce(rs.last_read_seq, 0) AS last_read_seq,
        coalesce(uc.unread, 0) AS unread
    FROM transactions t
    LEFT JOIN conversations c ON c.transaction_id = t.id
    LEFT JOIN read_states rs ON rs.conversation_id = c.id AND rs.user_id = $2
    LEFT JOIN unread_counts uc ON uc.conversation_id = c.id AND uc.user_id = $2
"""


async def get(
    conn: Conn, company_id: uuid.UUID, transaction_id: uuid.UUID, user_id: uuid.UUID
) -> TransactionSummary | None:
    """One transaction of the company, or None if the company has no such one."""
    row = await conn.fetchrow(
        _SUMMARY_SELECT + " WHERE t.company_id = $1 AND t.id = $3",
        company_id,
        user_id,
        transaction_id,
    )
    return None if row is None else _summary(row)


async def list_for_member(
    conn: Conn,
    company_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    type: str | None,
    has_conversation: bool | None,
    unread_only: bool,
    after: tuple[dt.date, uuid.UUID] | None,
    limit: int,
) -> list[TransactionSummary]:
    """The company's transactions, newest date first, filtered.

    Args:
        after: the (date, id) of the last transaction of the previous page.

    """
    after_date, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        _SUMMARY_SELECT
        + """
        WHERE t.company_id = $1
          AND ($3::text IS NULL OR t.type = $3)
          AND ($4::bool IS NULL OR (coalesce(c.last_seq, 0) > 0) = $4)
          AND (NOT $5 OR coalesce(uc.unread, 0) > 0)
          AND ($6::date IS NULL OR (t.txn_date, t.id) < ($6, $7::uuid))
        ORDER BY t.txn_date DESC, t.id DESC
        LIMIT $8
        """,
        company_id,
        user_id,
        type,
        has_conversation,
        unread_only,
        after_date,
        after_id,
        limit,
    )
    return [_summary(r) for r in rows]


async def insert(
    conn: Conn,
    company_id: uuid.UUID,
    fields: TransactionFields,
    *,
    external_id: str | None = None,
) -> Transaction:
    row = await conn.fetchrow(
        f"""
        INSERT INTO transactions AS t (
            id, company_id, external_id, type, doc_number, txn_date,
            counterparty, memo, amount, currency
        ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING {_COLUMNS}
        """,
        uuid.uuid4(),
        company_id,
        external_id,
        *dataclasses.astuple(fields),
    )
    assert row is not None
    return _transaction(row)


@dataclasses.dataclass(frozen=True, slots=True)
class Upserted:
    transaction: Transaction
    # 'created', 'updated' or 'unchanged'.
    status: str
    # The fields before an update; None when created or unchanged.
    before: TransactionFields | None = None


async def upsert_by_external_id(
    conn: Conn, company_id: uuid.UUID, external_id: str, fields: TransactionFields
) -> Upserted:
    """Insert or update the transaction the accounting system calls external_id.

    Must run inside a transaction: the existing row stays locked until
    commit, so two importers cannot interleave their updates.
    """
    existing = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS} FROM transactions t
        WHERE t.company_id = $1 AND t.external_id = $2 FOR NO KEY UPDATE
        """,
        company_id,
        external_id,
    )
    if existing is None:
        row = await conn.fetchrow(
            f"""
            INSERT INTO transactions AS t (
                id, company_id, external_id, type, doc_number, txn_date,
                counterparty, memo, amount, currency
            ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (company_id, external_id) DO NOTHING
            RETURNING {_COLUMNS}
            """,
            uuid.uuid4(),
            company_id,
            external_id,
            *dataclasses.astuple(fields),
        )
        if row is not None:
            return Upserted(_transaction(row), "created")
        # A concurrent importer inserted it after our SELECT: update theirs.
        return await upsert_by_external_id(conn, company_id, external_id, fields)

    before = _transaction(existing)
    if before.fields == fields:
        return Upserted(before, "unchanged")
    row = await conn.fetchrow(
        f"""
        UPDATE transactions AS t SET
            type = $2, doc_number = $3, txn_date = $4, counterparty = $5,
            memo = $6, amount = $7, currency = $8, updated_at = now()
        WHERE t.id = $1
        RETURNING {_COLUMNS}
        """,
        before.id,
        *dataclasses.astuple(fields),
    )
    assert row is not None
    return Upserted(_transaction(row), "updated", before.fields)


async def company_of(conn: Conn, transaction_id: uuid.UUID) -> uuid.UUID | None:
    """The company a transaction belongs to, or None when there is none."""
    company_id: uuid.UUID | None = await conn.fetchval(
        "SELECT company_id FROM transactions WHERE id = $1", transaction_id
    )
    return company_id
