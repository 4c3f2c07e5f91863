"""Posting on a transaction, reading its thread, and marking it read."""

from __future__ import annotations

import dataclasses
import logging
import uuid

import asyncpg

from server.core import access, notifications
from server.core.eligibility import TransactionType, check_takes_conversation
from server.core.principal import Principal, Scope
from server.core.services import Services
from server.core.text import check_body, check_idempotency_key
from server.errors import Conflict, InvalidInput, TickmarkError
from server.store import companies, messages, reads
from server.store.database import Conn
from server.store.messages import Message


__all__ = [
    "MAX_PAGE",
    "MAX_RECIPIENTS",
    "MessagePage",
    "PostResult",
    "list_company_messages",
    "list_messages",
    "mark_read",
    "post_message",
]

logger = logging.getLogger(__name__)

#: Most recipients one message may name.
MAX_RECIPIENTS = 50
#: Most messages one page holds.
MAX_PAGE = 200


@dataclasses.dataclass(frozen=True, slots=True)
class PostResult:
    message: Message
    # False when an earlier post with the same idempotency key is returned.
    created: bool


@dataclasses.dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    # Seq of the conversation's newest message (0 when it has none).
    last_seq: int
    # Whether more messages lie beyond this page in the direction asked.
    has_more: bool


def _check_recipients(principal: Principal, recipient_ids: list[uuid.UUID]) -> None:
    if not recipient_ids:
        raise InvalidInput("Choose at least one recipient.", field="recipients")
    if len(recipient_ids) > MAX_RECIPIENTS:
        raise InvalidInput(
            f"At most {MAX_RECIPIENTS} recipients per message.", field="recipients"
        )
    if len(set(recipient_ids)) != len(recipient_ids):
        raise InvalidInput("A recipient is named twice.", field="recipients")
    if principal.user_id in recipient_ids:
        raise InvalidInput(
            "You cannot address a message to yourself.", field="recipients"
        )


def _replay(existing: Message, transaction_id: uuid.UUID, body: str) -> PostResult:
    """Answer a retry with the message its first attempt stored."""
    if existing.transaction_id != transaction_id or existing.body != body:
        raise Conflict(
            "This idempotency key was already used for a different message.",
            code="idempotency_conflict",
            field="idempotency_key",
        )
    return PostResult(existing, created=False)


async def post_message(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    transaction_id: uuid.UUID,
    *,
    body: str,
    recipient_ids: list[uuid.UUID],
    idempotency_key: str,
) -> PostResult:
    """Store a message on a transaction's conversation, then announce it.

    Retrying with the same idempotency key returns the first message, and
    concurrent retries store it once: they queue on the conversation's lock
    and the later ones find it there.

    Raises:
        NotFound: the company or transaction is not the principal's.
        Forbidden: the credential may not post.
        ConversationNotAllowed: the transaction's type takes no conversation.
        InvalidInput: bad body, key or recipients.
        Conflict: the key was used before for a different message.

    """
    check_body(body)
    check_idempotency_key(idempotency_key)
    _check_recipients(principal, recipient_ids)

    try:
        async with services.db.transaction() as conn:
            result = await _post(
                conn,
                services,
                principal,
                company_id,
                transaction_id,
                body=body,
                recipient_ids=recipient_ids,
                idempotency_key=idempotency_key,
            )
    except asyncpg.UniqueViolationError:
        # The same key raced in on another conversation and committed
        # first; what it stored decides the answer.
        async with services.db.connection() as conn:
            existing = await messages.by_idempotency_key(
                conn, principal.user_id, idempotency_key
            )
        if existing is None:
            raise
        return _replay(existing, transaction_id, body)

    if result.created:
        logger.debug(
            "message stored",
            extra={"message_id": str(result.message.id), "seq": result.message.seq},
        )
        await services.events.message_posted(result.message)
    return result


async def _post(
    conn: Conn,
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    transaction_id: uuid.UUID,
    *,
    body: str,
    recipient_ids: list[uuid.UUID],
    idempotency_key: str,
) -> PostResult:
    try:
        role, kind = await access.require_postable(
            conn, principal, company_id, transaction_id
        )
        check_takes_conversation(TransactionType(kind))
        members = await companies.members_among(conn, company_id, recipient_ids)
        if len(members) != len(recipient_ids):
            # Unknown ids and members of other companies get the same answer.
            raise InvalidInput(
                "Every recipient must be a member of this company.",
                field="recipients",
            )
    except TickmarkError:
        # A retry is answered with the first message even when a check
        # would now refuse it (a recipient has left since, say): the first
        # attempt passed, and the client only missed our answer.
        existing = await messages.by_idempotency_key(
            conn, principal.user_id, idempotency_key
        )
        if existing is None or existing.company_id != company_id:
            raise
        return _replay(existing, transaction_id, body)

    message, created = await messages.insert(
        conn,
        transaction_id=transaction_id,
        company_id=company_id,
        author_id=principal.user_id,
        author_role="bot" if principal.user_kind == "bot" else role,
        body=body,
        recipient_ids=recipient_ids,
        idempotency_key=idempotency_key,
        created_at=services.clock.now(),
    )
    if not created:
        return _replay(message, transaction_id, body)
    # In the message's own transaction: the intent to mail its recipients
    # commits with it, or neither does.
    await notifications.schedule(conn, message, services.notifications)
    return PostResult(message, created=True)


async def list_messages(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    transaction_id: uuid.UUID,
    *,
    after_seq: int | None,
    before_seq: int | None,
    limit: int,
) -> MessagePage:
    """A page of the transaction's thread, oldest first within the page.

    With ``after_seq``, the messages just after it (catching up); with
    ``before_seq``, the ones just before it (scrolling back); with neither,
    the newest page.

    Raises:
        NotFound: the company or transaction is not the principal's.
        InvalidInput: both cursors given, or a bad limit.

    """
    if after_seq is not None and before_seq is not None:
        raise InvalidInput("Give either after or before, not both.", field="after")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit is between 1 and {MAX_PAGE}.", field="limit")

    async with services.db.connection() as conn:
        _, summary = await access.require_transaction(
            conn, principal, company_id, transaction_id, Scope.READ
        )
        conversation_id = summary.conversation_id
        if conversation_id is None:
            return MessagePage([], 0, has_more=False)
        # One more than asked tells whether there is more.
        if after_seq is not None:
            found = await messages.page_after(
                conn, conversation_id, after_seq, limit + 1
            )
            return MessagePage(found[:limit], summary.last_seq, len(found) > limit)
        bound = before_seq if before_seq is not None else summary.last_seq + 1
        found = await messages.page_before(conn, conversation_id, bound, limit + 1)
        return MessagePage(found[-limit:], summary.last_seq, len(found) > limit)


async def list_company_messages(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    *,
    after_company_seq: int,
    limit: int,
) -> MessagePage:
    """The company's stream of messages after a position, oldest first.

    This is how a bot resumes a company stream after hours or days: it
    keeps the ``company_seq`` of the last message it handled and pages
    from there, then subscribes to ``company:<id>`` with that position.

    Raises:
        NotFound: the company is not the principal's.
        InvalidInput: a bad limit.

    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit is between 1 and {MAX_PAGE}.", field="limit")
    async with services.db.connection() as conn:
        await access.require_member(conn, principal, company_id, Scope.READ)
        head = await messages.company_head(conn, company_id)
        found = await messages.page_company_after(
            conn, company_id, after_company_seq, limit + 1
        )
    return MessagePage(found[:limit], head, len(found) > limit)


async def mark_read(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    transaction_id: uuid.UUID,
    seq: int,
) -> int:
    """Move the principal's read marker forward to ``seq``.

    A marker never moves backwards and never past the newest message, so
    repeated or out-of-order calls from several tabs cannot lower it and
    counts cannot go below zero.

    Returns:
        The marker after the call.

    Raises:
        NotFound: the company or transaction is not the principal's.
        InvalidInput: a negative seq.

    """
    if seq < 0:
        raise InvalidInput("seq is 0 or more.", field="seq")
    async with services.db.connection() as conn:
        _, summary = await access.require_transaction(
            conn, principal, company_id, transaction_id, Scope.READ
        )
        if summary.conversation_id is None:
            return 0
        before = summary.last_read_seq
        marker = await reads.advance(
            conn, principal.user_id, summary.conversation_id, seq
        )
    if marker != before:
        await services.events.read_advanced(
            principal.user_id, company_id, transaction_id, marker
        )
    return marker
