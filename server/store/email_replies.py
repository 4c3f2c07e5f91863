"""What a reply by email needs to know about the conversation it joins."""

from __future__ import annotations

import uuid

from server.store.database import Conn


__all__ = ["addressee_of_reply"]


async def addressee_of_reply(
    conn: Conn, transaction_id: uuid.UUID, user_id: uuid.UUID
) -> uuid.UUID | None:
    """Who a reply from ``user_id`` on the transaction answers.

    That is the author of the newest message on the transaction addressed
    to the user by someone else; None when nobody wrote to them there.
    """
    author_id: uuid.UUID | None = await conn.fetchval(
        """
        SELECT m.author_id
        FROM conversations c
        JOIN message_recipients r ON r.conversation_id = c.id AND r.user_id = $2
        JOIN messages m ON m.id = r.message_id
        WHERE c.transaction_id = $1 AND m.author_id IS NOT NULL
          AND m.author_id <> $2
        ORDER BY r.seq DESC
        LIMIT 1
        """,
        transaction_id,
        user_id,
    )
    return author_id
