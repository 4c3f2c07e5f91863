"""Posting on a transaction, reading its thread, and marking it read."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any

import asyncpg

from server.core import access
from server.core.eligibility import (
    TransactionType,
    check_takes_conversation,
    takes_conversation,
)
from server.core.principal import Principal, Scope
from server.core.services import Services
from server.core.text import check_body, check_idempotency_key
from server.errors import Conflict, InvalidInput, TickmarkError
from server.store import messages, reads
from server.store.database import Conn
from server.store.messages import Message


__all__ = [
    "MAX_PAGE",
    "MAX_RECIPIENTS",
    "MessagePage",
    "PostQueue",
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


def _replay(existing: Message, post: _Post) -> PostResult | TickmarkError:
    """Answer a retry with the message its first attempt stored."""
    if existing.transaction_id != post.transaction_id or existing.body != post.body:
        return Conflict(
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
    post = _Post(
        principal, company_id, transaction_id, body, recipient_ids, idempotency_key
    )
    if services.posting is not None:
        return await services.posting.store(post)
    return await _store_alone(services, post)


@dataclasses.dataclass(frozen=True, slots=True)
class _Post:
    """A checked post, waiting to be stored."""

    principal: Principal
    company_id: uuid.UUID
    transaction_id: uuid.UUID
    body: str
    recipient_ids: list[uuid.UUID]
    idempotency_key: str

    def order(self) -> tuple[uuid.UUID, uuid.UUID]:
        # The order in which posts stored together take their locks:
        # company, then conversation, as append_message does for one.
        return (self.company_id, self.transaction_id)


async def _store_alone(services: Services, post: _Post) -> PostResult:
    """Store one post, then announce it."""
    try:
        async with services.db.connection() as conn:
            [outcome] = await _store(conn, services, [post])
            if isinstance(outcome, TickmarkError):
                raise outcome
    except asyncpg.UniqueViolationError:
        # The same key raced in on another conversation and committed
        # first; what it stored decides the answer.
        async with services.db.connection() as conn:
            existing = await messages.by_idempotency_key(
                conn, post.principal.user_id, post.idempotency_key
            )
        if existing is None:
            raise
        outcome = _replay(existing, post)
        if isinstance(outcome, TickmarkError):
            raise outcome from None
    if outcome.created:
        await services.events.messages_posted([outcome.message])
    return outcome


class PostQueue:
    """Stores the posts that arrive together in one database transaction.

    A commit waits for the disk, and every post of a company waits for the
    company's lock, held until commit, to take its number: stored one per
    transaction, a company's posts would go one commit at a time. Each of
    the queue's tasks takes every post waiting (up to ``max_batch``),
    stores them in one transaction, sorted by company and then transaction
    (the order of arrival kept within each, so a thread keeps its order),
    and answers each once they are committed and announced. A post that
    arrives alone is stored alone, at once.

    A post refused by a check (not found, not allowed, a reused key) is
    answered with its error and does not hold back the others: checks fail
    before anything is written. Any other failure rolls the whole batch
    back, and each post is then stored on its own, so one post's fault is
    only ever its own.

    Two batches are in flight at once, so that while PostgreSQL works on
    one, this process announces and answers the other: one at a time, each
    waited for the other, and the queue backed up long before either was
    busy. Two batches cannot deadlock, as both take their locks in the
    same order, and posts on one company still wait for each other's
    commit. A client that waits for each answer before its next post (as
    the socket does, per transaction) sees its posts numbered in the order
    it sent them; posts sent at the same moment by different clients are
    numbered in the order their batches reach the company's lock.
    """

    def __init__(
        self, services: Services, *, max_batch: int = 64, in_flight: int = 2
    ) -> None:
        self._services = services
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._waiting: list[tuple[_Post, asyncio.Future[PostResult]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"post-queue-{n}")
            for n in range(self._in_flight)
        ]

    async def close(self) -> None:
        """Store what is waiting, then stop; later posts are stored alone."""
        self._closing = True
        self._wake.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)

    async def store(self, post: _Post) -> PostResult:
        if self._closing or all(task.done() for task in self._tasks):
            return await _store_alone(self._services, post)
        future: asyncio.Future[PostResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((post, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing:
                # Closing leaves it set, so that every task sees the close.
                self._wake.clear()
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                # A caller that has gone (its request cancelled) before its
                # batch began is not stored.
                batch = [(p, f) for p, f in batch if not f.done()]
                if batch:
                    await self._store_batch(batch)
            if self._closing:
                return

    async def _store_batch(
        self, batch: list[tuple[_Post, asyncio.Future[PostResult]]]
    ) -> None:
        if len(batch) == 1:
            post, future = batch[0]
            await _settle(future, _store_alone(self._services, post))
            return
        batch.sort(key=lambda item: item[0].order())
        try:
            async with self._services.db.connection() as conn:
                outcomes = await _store(conn, self._services, [p for p, _ in batch])
        except Exception:
            logger.info(
                "a batch of posts failed; storing each alone",
                extra={"posts": len(batch)},
                exc_info=True,
            )
            for post, future in batch:
                await _settle(future, _store_alone(self._services, post))
            return
        created = [
            outcome.message
            for outcome in outcomes
            if isinstance(outcome, PostResult) and outcome.created
        ]
        answers: list[PostResult | Exception] = list(outcomes)
        if created:
            try:
                await self._services.events.messages_posted(created)
            except Exception as exc:  # handed to the callers, as when alone
                answers = [
                    exc if isinstance(a, PostResult) and a.created else a
                    for a in answers
                ]
        for (_, future), answer in zip(batch, answers, strict=True):
            _hand(future, answer)


async def _settle(
    future: asyncio.Future[PostResult], work: Coroutine[Any, Any, PostResult]
) -> None:
    """Run ``work`` and hand its outcome to ``future``."""
    try:
        result = await work
    except Exception as exc:  # handed to the caller, who raises it
        _hand(future, exc)
    else:
        _hand(future, result)


def _hand(future: asyncio.Future[PostResult], outcome: PostResult | Exception) -> None:
    """Answer whoever still waits on ``future`` (a cancelled caller does not)."""
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def _store(
    conn: Conn, services: Services, posts: Sequence[_Post]
) -> list[PostResult | TickmarkError]:
    """Store posts, in the order given, all or none of those allowed.

    One round trip however many posts (:func:`messages.append_checked`):
    each post's facts are read, and the post stored only if they allow it,
    by a single statement, and the facts come back to be judged here,
    where the errors are named. Each post gets its result or the error
    that refuses it; nothing is written for a refused post.
    """
    now = services.clock.now()
    appended = await messages.append_checked(
        conn,
        [
            (
                messages.Draft(
                    transaction_id=post.transaction_id,
                    company_id=post.company_id,
                    author_id=post.principal.user_id,
                    # A person posts in their role in the company.
                    author_role="bot" if post.principal.user_kind == "bot" else None,
                    body=post.body,
                    recipient_ids=post.recipient_ids,
                    idempotency_key=post.idempotency_key,
                    created_at=now,
                ),
                _CONVERSATION_TYPES if _may_post(post) else (),
            )
            for post in posts
        ],
        mail_delay_secs=services.notifications.default_delay_secs,
    )
    results: list[PostResult | TickmarkError] = []
    for post, outcome in zip(posts, appended, strict=True):
        try:
            _judge(post, outcome.facts)
        except TickmarkError as exc:
            results.append(_retry_or(exc, post, outcome))
            continue
        # The statement stores exactly what the judgement allows.
        assert outcome.message is not None
        if outcome.created:
            results.append(PostResult(outcome.message, created=True))
        else:
            results.append(_replay(outcome.message, post))
    return results


def _retry_or(
    refusal: TickmarkError, post: _Post, outcome: messages.Checked
) -> PostResult | TickmarkError:
    """A refused post's answer: the first message, for a retry, or the refusal.

    A retry is answered with the message its key stored even when the
    thread's rules would now refuse it (a recipient has left since, say):
    the first attempt passed, and the client only missed our answer. Not
    when the caller may no longer post there at all (a credential limited
    elsewhere or without the post scope, an author no longer a member):
    they get the refusal, as for any other post, and learn nothing of the
    message.
    """
    existing = outcome.message
    if (
        existing is None
        or existing.company_id != post.company_id
        or not _may_post(post)
        or outcome.facts.role is None
        or outcome.facts.type is None
    ):
        return refusal
    return _replay(existing, post)


#: The transaction types a post may be stored on, as the database names them.
_CONVERSATION_TYPES = tuple(
    sorted(kind.value for kind in TransactionType if takes_conversation(kind))
)


def _may_post(post: _Post) -> bool:
    """Whether the credential allows this post, whatever the facts."""
    return post.principal.reaches(post.company_id) and post.principal.may(Scope.POST)


def _judge(post: _Post, facts: messages.PostingFacts) -> None:
    """Raise the error that refuses the post, if the rules refuse it."""
    access.postable_role(post.principal, post.company_id, facts)
    assert facts.type is not None
    check_takes_conversation(TransactionType(facts.type))
    if facts.members != len(post.recipient_ids):
        # Unknown ids and members of other companies get the same answer.
        raise InvalidInput(
            "Every recipient must be a member of this company.", field="recipients"
        )


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
