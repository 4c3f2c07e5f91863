"""Conversations and their messages, numbered without gaps."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence

import asyncpg

from server.store.database import Conn


__all__ = [
    "Checked",
    "Draft",
    "Message",
    "PostingFacts",
    "Recipient",
    "append",
    "append_checked",
    "by_id",
    "by_idempotency_key",
    "company_head",
    "conversation_of",
    "insert",
    "page_after",
    "page_before",
    "page_company_after",
    "transaction_head",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Recipient:
    id: uuid.UUID
    display_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    conversation_id: uuid.UUID
    transaction_id: uuid.UUID
    company_id: uuid.UUID
    # Position in the conversation: 1, 2, 3... with no gaps.
    seq: int
    # Position in the company's stream of messages, across conversations.
    company_seq: int
    # 'message', or 'system' for entries Tickmark writes itself.
    kind: str
    # None for system entries.
    author_id: uuid.UUID | None
    author_name: str | None
    # 'accountant', 'client' or 'bot'; None for system entries.
    author_role: str | None
    body: str
    created_at: dt.datetime
    recipients: tuple[Recipient, ...]
    idempotency_key: str | None


# message_rows (a view, migration 0010) adds the author's name and the
# recipients, as (id, name) pairs sorted by name, to each message.
_SELECT = "SELECT * FROM message_rows m"


def _message(row: asyncpg.Record) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        transaction_id=row["transaction_id"],
        company_id=row["company_id"],
        seq=row["seq"],
        company_seq=row["company_seq"],
        kind=row["kind"],
        author_id=row["author_id"],
        author_name=row["author_name"],
        author_role=row["author_role"],
        body=row["body"],
        created_at=row["created_at"],
        recipients=tuple(
            Recipient(uuid.UUID(pair[0]), pair[1]) for pair in row["recipients"]
        ),
        idempotency_key=row["idempotency_key"],
    )


async def conversation_of(conn: Conn, transaction_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the transaction's conversation; None before the first post."""
    conversation_id: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM conversations WHERE transaction_id = $1", transaction_id
    )
    return conversation_id


async def by_id(conn: Conn, message_id: uuid.UUID) -> Message | None:
    row = await conn.fetchrow(_SELECT + " WHERE m.id = $1", message_id)
    return None if row is None else _message(row)


async def by_idempotency_key(
    conn: Conn, author_id: uuid.UUID, key: str
) -> Message | None:
    row = await conn.fetchrow(
        _SELECT + " WHERE m.author_id = $1 AND m.idempotency_key = $2",
        author_id,
        key,
    )
    return None if row is None else _message(row)


@dataclasses.dataclass(frozen=True, slots=True)
class Draft:
    """A message to append, as ``append_message`` takes it."""

    transaction_id: uuid.UUID
    company_id: uuid.UUID
    # None, with author_role and idempotency_key, for system entries.
    author_id: uuid.UUID | None
    author_role: str | None
    body: str
    recipient_ids: list[uuid.UUID]
    idempotency_key: str | None
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class PostingFacts:
    """What the rules for a post are judged on."""

    # The author's role in the company; None when they are no member.
    role: str | None
    # The transaction's type; None when the company has no such transaction.
    type: str | None
    # How many of the named recipients are members of the company; None
    # when the checks stopped before counting them.
    members: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class Checked:
    """What became of a post appended with :func:`append_checked`."""

    facts: PostingFacts
    # The message stored, or the one the author's idempotency key already
    # named (then ``created`` is False); None when neither.
    message: Message | None
    created: bool


_APPEND = "SELECT * FROM append_message($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"


def _arguments(
    draft: Draft, mail_delay_secs: int | None, types: Sequence[str] | None
) -> tuple[object, ...]:
    return (
        draft.transaction_id,
        draft.company_id,
        draft.author_id,
        draft.author_role,
        draft.body,
        draft.recipient_ids,
        draft.idempotency_key,
        draft.created_at,
        mail_delay_secs,
        types,
    )


async def append(
    conn: Conn, drafts: Sequence[Draft], *, mail_delay_secs: int | None = None
) -> list[tuple[Message, bool]]:
    """Append messages to their transactions' conversations, in order,
    without checking who may post (system entries, demo data).

    The work is the ``append_message`` database function (its latest
    version is in the 0010 migration): it locks the company's row, then
    makes the conversation if need be and locks it, so posts to one
    conversation take their numbers one after another and a retry racing
    its original finds it stored. The locks are always taken in that order,
    company then conversation, so drafts appended together cannot deadlock
    with others as long as they come sorted by company.

    The calls go to PostgreSQL in one pipeline, which is atomic on its own
    (one sync ends it) or part of the caller's transaction: one round trip
    however many drafts, with each stored message coming back as readers
    will see it.

    Args:
        mail_delay_secs: write the intent to email each recipient who gets
            email, due after their own delay or this one; None writes none.

    Returns:
        For each draft, the message, and True when this call stored it;
        False when the author had already sent one with its idempotency key.

    """
    if not drafts:
        return []
    rows = await conn.fetchmany(
        _APPEND, [_arguments(d, mail_delay_secs, None) for d in drafts]
    )
    return [(_message(row), row["created"]) for row in rows]


async def append_checked(
    conn: Conn,
    posts: Sequence[tuple[Draft, Sequence[str]]],
    *,
    mail_delay_secs: int | None,
) -> list[Checked]:
    """Append posts as :func:`append` does, each only if its facts allow.

    Each post comes with the transaction types that take a conversation
    (empty when its author may not post at all). A post is stored only
    when its author is a member of the company, the transaction is the
    company's and of one of those types, and every recipient is a member,
    as read under the company's lock. A person's draft
    leaves ``author_role`` None and takes their role in the company.

    The facts come back with each outcome, for the caller to judge and to
    name the error of a post that was not stored. One round trip however
    many posts, atomic as :func:`append` is; a refused post does not stop
    the others.
    """
    if not posts:
        return []
    rows = await conn.fetchmany(
        _APPEND,
        [_arguments(d, mail_delay_secs, types) for d, types in posts],
    )
    return [
        Checked(
            PostingFacts(row["role"], row["type"], row["members"]),
            None if row["id"] is None else _message(row),
            row["created"],
        )
        for row in rows
    ]


async def insert(
    conn: Conn,
    *,
    transaction_id: uuid.UUID,
    company_id: uuid.UUID,
    author_id: uuid.UUID | None,
    author_role: str | None,
    body: str,
    recipient_ids: list[uuid.UUID],
    idempotency_key: str | None,
    created_at: dt.datetime,
) -> tuple[Message, bool]:
    """Append one message: :func:`append` for a single draft."""
    [appended] = await append(
        conn,
        [
            Draft(
                transaction_id,
                company_id,
                author_id,
                author_role,
                body,
                recipient_ids,
                idempotency_key,
                created_at,
            )
        ],
    )
    return appended


async def page_after(
    conn: Conn, conversation_id: uuid.UUID, after_seq: int, limit: int
) -> list[Message]:
    """Up to ``limit`` messages with seq > after_seq, oldest first."""
    rows = await conn.fetch(
        _SELECT
        + " WHERE m.conversation_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3",
        conversation_id,
        after_seq,
        limit,
    )
    return [_message(r) for r in rows]


async def page_before(
    conn: Conn, conversation_id: uuid.UUID, before_seq: int, limit: int
) -> list[Message]:
    """Up to ``limit`` messages with seq < before_seq, oldest first."""
    rows = await conn.fetch(
        f"""
        SELECT * FROM (
            {_SELECT} WHERE m.conversation_id = $1 AND m.seq < $2
            ORDER BY m.seq DESC LIMIT $3
        ) page ORDER BY seq
        """,
        conversation_id,
        before_seq,
        limit,
    )
    return [_message(r) for r in rows]


async def transaction_head(
    conn: Conn, transaction_id: uuid.UUID
) -> tuple[uuid.UUID | None, int]:
    """The transaction's conversation id (None before the first post) and
    the seq of its newest message (0 when none)."""
    row = await conn.fetchrow(
        "SELECT id, last_seq FROM conversations WHERE transaction_id = $1",
        transaction_id,
    )
    if row is None:
        return None, 0
    return row["id"], row["last_seq"]


async def company_head(conn: Conn, company_id: uuid.UUID) -> int:
    """The company_seq of the company's newest message (0 when none)."""
    head: int | None = await conn.fetchval(
        "SELECT last_message_seq FROM companies WHERE id = $1", company_id
    )
    return head or 0


async def page_company_after(
    conn: Conn, company_id: uuid.UUID, after_company_seq: int, limit: int
) -> list[Message]:
    """Up to ``limit`` of the company's messages past a company_seq, in order."""
    rows = await conn.fetch(
        _SELECT
        + """
        WHERE m.company_id = $1 AND m.company_seq > $2
        ORDER BY m.company_seq LIMIT $3
        """,
        company_id,
        after_company_seq,
        limit,
    )
    return [_message(r) for r in rows]
