"""How far each reader has read each conversation, and what they have not."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict

from server.store.database import Conn


__all__ = ["UnreadMessage", "advance", "unread_by_company", "unread_messages"]


async def advance(
    conn: Conn, user_id: uuid.UUID, conversation_id: uuid.UUID, seq: int
) -> int:
    """Move the user's read marker forward to ``seq``; never backwards.

    ``seq`` is capped at the conversation's newest message, so a marker
    can never claim to have read what does not exist yet. The user's
    unread count for the conversation is recounted with it (the
    ``advance_read`` function of migration 0008).

    Returns:
        The marker after the call.

    """
    marker: int = await conn.fetchval(
        "SELECT advance_read($1, $2, $3)", user_id, conversation_id, seq
    )
    return marker


async def unread_by_company(
    conn: Conn, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
    """Each user's unread count per company they are a member of.

    Summed from ``unread_counts`` (kept per conversation where messages and
    markers change, see migration 0008) over the user's current
    memberships: a company the user has left counts for nothing, and every
    company they belong to appears, with 0 when all is read.

    Returns:
        user id -> company id -> messages addressed to the user past
        their read marker.

    """
    rows = await conn.fetch(
        """
        SELECT m.user_id, m.company_id, coalesce(sum(u.unread), 0)::int AS unread
        FROM memberships m
        LEFT JOIN unread_counts u
            ON u.user_id = m.user_id AND u.company_id = m.company_id
        WHERE m.user_id = ANY($1::uuid[])
        GROUP BY m.user_id, m.company_id
        """,
        user_ids,
    )
    counts: dict[uuid.UUID, dict[uuid.UUID, int]] = defaultdict(dict)
    for user_id in user_ids:
        counts[user_id] = {}
    for row in rows:
        counts[row["user_id"]][row["company_id"]] = row["unread"]
    return dict(counts)


@dataclasses.dataclass(frozen=True, slots=True)
class UnreadMessage:
    message_id: uuid.UUID
    company_id: uuid.UUID
    company_name: str
    transaction_id: uuid.UUID
    transaction_type: str
    doc_number: str
    seq: int
    author_name: str | None
    body: str
    created_at: dt.datetime


async def unread_messages(
    conn: Conn, user_id: uuid.UUID, *, limit: int
) -> list[UnreadMessage]:
    """Messages waiting for the user, newest first, across their companies."""
    rows = await conn.fetch(
        """
        SELECT m.id, m.company_id, c.name AS company_name, m.transaction_id,
            t.type, t.doc_number, m.seq, u.display_name AS author_name,
            m.body, m.created_at
        FROM message_recipients r
        JOIN memberships mb ON mb.company_id = r.company_id AND mb.user_id = r.user_id
        LEFT JOIN read_states rs
            ON rs.user_id = r.user_id AND rs.conversation_id = r.conversation_id
        JOIN messages m ON m.id = r.message_id
        JOIN companies c ON c.id = m.company_id
        JOIN transactions t ON t.id = m.transaction_id
        LEFT JOIN users u ON u.id = m.author_id
        WHERE r.user_id = $1 AND r.seq > coalesce(rs.last_read_seq, 0)
        ORDER BY m.created_at DESC, m.company_seq DESC
        LIMIT $2
        """,
        user_id,
        limit,
    )
    return [
        UnreadMessage(
            message_id=r["id"],
            company_id=r["company_id"],
            company_name=r["company_name"],
            transaction_id=r["transaction_id"],
            transaction_type=r["type"],
            doc_number=r["doc_number"],
            seq=r["seq"],
            author_name=r["author_name"],
            body=r["body"],
            created_at=r["created_at"],
        )
        for r in rows
    ]
