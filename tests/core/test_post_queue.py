"""Posts stored together: one commit for all, each answered as if alone.

The queue is driven here directly, on the test database, with posts that
arrive at once (gathered before the queue's task first runs), so every
test below stores them as one batch.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from server.app import policy_from
from server.clock import SystemClock
from server.core import conversations
from server.core.conversations import PostQueue, PostResult
from server.core.events import NoEvents
from server.core.principal import PERSON_SCOPES, Principal
from server.core.services import Services
from server.errors import Conflict, ConversationNotAllowed, NotFound, Unavailable
from server.settings import Settings
from server.store.database import Database
from server.store.messages import Message
from tests.world import Person, World


class Heard(NoEvents):
    """The messages posts announce, in the order they announced them."""

    def __init__(self) -> None:
        self.posted: list[Message] = []

    async def messages_posted(self, messages: Sequence[Message]) -> None:
        self.posted.extend(messages)


def principal_of(person: Person) -> Principal:
    return Principal(
        user_id=person.id,
        display_name=person.name,
        user_kind="person",
        credential_id=uuid.uuid4(),
        credential_kind="token",
        scopes=PERSON_SCOPES,
        company_ids=None,
    )


@pytest.fixture
def heard() -> Heard:
    return Heard()


@pytest.fixture
async def services(db: Database, heard: Heard) -> AsyncIterator[Services]:
    plain = Services(db, SystemClock(), heard, policy_from(Settings()))
    queue = PostQueue(plain)
    queue.start()
    yield Services(db, plain.clock, heard, plain.policy, posting=queue)
    await queue.close()


async def post(
    services: Services,
    author: Person,
    company: uuid.UUID,
    txn: uuid.UUID,
    body: str,
    recipient: Person,
    key: str | None = None,
) -> PostResult:
    return await conversations.post_message(
        services,
        principal_of(author),
        company,
        txn,
        body=body,
        recipient_ids=[recipient.id],
        idempotency_key=key or str(uuid.uuid4()),
    )


async def stored(db: Database) -> list[tuple[str, int, int]]:
    """Every message as (body, seq, company_seq), in the company's order."""
    async with db.connection() as conn:
        rows = await conn.fetch(
            """
            SELECT body, seq, company_seq FROM messages
            ORDER BY company_id, company_seq
            """
        )
    return [(r["body"], r["seq"], r["company_seq"]) for r in rows]


async def test_posts_arriving_together_keep_each_threads_order(
    services: Services, world: World, heard: Heard
) -> None:
    bill, invoice = world.txa["bill"], world.txa["invoice"]
    posts = [
        post(services, world.ana, world.a, txn, f"{name} {i}", world.carl)
        for i in range(6)
        for txn, name in ((bill, "bill"), (invoice, "invoice"))
    ]
    results = await asyncio.gather(*posts)

    assert [r.created for r in results] == [True] * 12
    by_body = {r.message.body: r.message for r in results}
    assert [by_body[f"bill {i}"].seq for i in range(6)] == [1, 2, 3, 4, 5, 6]
    assert [by_body[f"invoice {i}"].seq for i in range(6)] == [1, 2, 3, 4, 5, 6]
    # Company numbers are taken without a gap, one thread's in its order.
    assert sorted(m.company_seq for m in by_body.values()) == list(range(1, 13))
    bill_seqs = [by_body[f"bill {i}"].company_seq for i in range(6)]
    assert bill_seqs == sorted(bill_seqs)
    # All in one database transaction.
    async with services.db.connection() as conn:
        writers = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM messages")
    assert writers == 1
    # Announced once each, and each thread in its order.
    assert sorted(m.body for m in heard.posted) == sorted(by_body)
    assert [m.body for m in heard.posted if m.transaction_id == bill] == [
        f"bill {i}" for i in range(6)
    ]


async def test_a_refused_post_is_answered_alone_and_the_rest_are_stored(
    services: Services, world: World, heard: Heard, db: Database
) -> None:
    results = await asyncio.gather(
        post(services, world.ana, world.a, world.txa["bill"], "first", world.carl),
        # Company B's transaction, under company A: not found for Ana.
        post(services, world.ana, world.a, world.txb["bill"], "astray", world.carl),
        # Payroll takes no conversation.
        post(services, world.ana, world.a, world.txa["payroll"], "pay", world.carl),
        post(services, world.ben, world.b, world.txb["bill"], "second", world.bea),
        return_exceptions=True,
    )

    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], ConversationNotAllowed)
    assert [r.message.body for r in results if isinstance(r, PostResult)] == [
        "first",
        "second",
    ]
    assert sorted(await stored(db)) == [("first", 1, 1), ("second", 1, 1)]
    assert sorted(m.body for m in heard.posted) == ["first", "second"]


async def test_a_retry_in_the_same_batch_gets_the_first_message(
    services: Services, world: World, heard: Heard, db: Database
) -> None:
    bill = world.txa["bill"]
    first, retry, reused = await asyncio.gather(
        post(services, world.ana, world.a, bill, "once", world.carl, key="k-1"),
        post(services, world.ana, world.a, bill, "once", world.carl, key="k-1"),
        post(services, world.ana, world.a, bill, "other", world.carl, key="k-1"),
        return_exceptions=True,
    )

    assert isinstance(first, PostResult) and isinstance(retry, PostResult)
    assert (first.created, retry.created) == (True, False)
    assert retry.message.id == first.message.id
    assert isinstance(reused, Conflict)
    assert reused.code == "idempotency_conflict"
    assert await stored(db) == [("once", 1, 1)]
    assert [m.body for m in heard.posted] == ["once"]


async def test_a_failing_post_rolls_back_only_itself(
    services: Services, world: World, heard: Heard, db: Database
) -> None:
    # A database fault on one message aborts the batch's transaction; the
    # queue then stores each post alone, so only that one fails.
    async with db.connection() as conn:
        await conn.execute(
            """
            CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'poisoned message';
            END $$;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON messages
            FOR EACH ROW WHEN (NEW.body = 'poison') EXECUTE FUNCTION refuse_poison();
            """
        )
    try:
        bill, invoice = world.txa["bill"], world.txa["invoice"]
        results = await asyncio.gather(
            post(services, world.ana, world.a, bill, "before", world.carl),
            post(services, world.ana, world.a, invoice, "poison", world.carl),
            post(services, world.ana, world.a, bill, "after", world.carl),
            return_exceptions=True,
        )
    finally:
        async with db.connection() as conn:
            await conn.execute(
                "DROP TRIGGER refuse_poison ON messages; DROP FUNCTION refuse_poison()"
            )

    assert isinstance(results[0], PostResult)
    assert isinstance(results[2], PostResult)
    assert "poisoned message" in str(results[1])
    assert await stored(db) == [("before", 1, 1), ("after", 2, 2)]
    assert [m.body for m in heard.posted] == ["before", "after"]


async def test_closing_stores_what_waits_and_later_posts_go_alone(
    db: Database, world: World, heard: Heard
) -> None:
    plain = Services(db, SystemClock(), heard, policy_from(Settings()))
    queue = PostQueue(plain)
    queue.start()
    services = Services(db, plain.clock, heard, plain.policy, posting=queue)
    bill = world.txa["bill"]

    waiting = [
        asyncio.create_task(post(services, world.ana, world.a, bill, b, world.carl))
        for b in ("one", "two")
    ]
    await asyncio.sleep(0)
    await queue.close()
    late = await post(services, world.ana, world.a, bill, "three", world.carl)

    assert [t.result().message.seq for t in waiting] == [1, 2]
    assert (late.message.seq, late.created) == (3, True)
    assert [m.body for m in heard.posted] == ["one", "two", "three"]


async def test_a_lost_database_fails_every_post_of_the_batch(
    database_url: str, world: World, heard: Heard
) -> None:
    db = await Database.connect(database_url, pool_size=2)
    plain = Services(db, SystemClock(), heard, policy_from(Settings()))
    queue = PostQueue(plain)
    queue.start()
    services = Services(db, plain.clock, heard, plain.policy, posting=queue)
    await db.close()
    try:
        results = await asyncio.gather(
            *(
                post(services, world.ana, world.a, world.txa["bill"], b, world.carl)
                for b in ("one", "two")
            ),
            return_exceptions=True,
        )
    finally:
        await queue.close()

    assert [type(r) for r in results] == [Unavailable, Unavailable]
    assert heard.posted == []


@pytest.mark.parametrize("together", [False, True], ids=["alone", "together"])
async def test_a_reused_key_starts_no_conversation(
    services: Services, world: World, db: Database, together: bool
) -> None:
    bill, invoice = world.txa["bill"], world.txa["invoice"]
    first = await post(
        services, world.ana, world.a, bill, "on the bill", world.carl, key="k"
    )
    reuses = [
        post(services, world.ana, world.a, invoice, "elsewhere", world.carl, key="k")
    ]
    if together:
        reuses.append(
            post(services, world.ana, world.a, bill, "on the bill", world.carl, key="k")
        )
    answers = await asyncio.gather(*reuses, return_exceptions=True)

    assert isinstance(answers[0], Conflict)
    if together:
        assert isinstance(answers[1], PostResult)
        assert (answers[1].message.id, answers[1].created) == (first.message.id, False)
    async with db.connection() as conn:
        threads = await conn.fetchval(
            "SELECT count(*) FROM conversations WHERE transaction_id = $1", invoice
        )
    assert threads == 0
    assert await stored(db) == [("on the bill", 1, 1)]


async def test_batches_in_flight_together_keep_numbers_gapless_and_order_kept(
    services: Services, world: World, db: Database
) -> None:
    """Four clients each post one after another, all at once, on two
    companies: the queue's batches overlap and every number still comes
    without a gap, each client's posts in the order it sent them."""

    async def client(
        author: Person, company: uuid.UUID, txn: uuid.UUID, name: str, to: Person
    ) -> list[PostResult]:
        return [
            await post(services, author, company, txn, f"{name} {i}", to)
            for i in range(15)
        ]

    runs = await asyncio.gather(
        client(world.ana, world.a, world.txa["bill"], "a-bill", world.carl),
        client(world.ana, world.a, world.txa["invoice"], "a-invoice", world.carl),
        client(world.ben, world.b, world.txb["bill"], "b-bill", world.bea),
        client(world.ben, world.b, world.txb["invoice"], "b-invoice", world.bea),
    )

    for run in runs:
        assert [r.message.seq for r in run] == list(range(1, 16))
    rows = await stored(db)
    assert len(rows) == 60
    by_company: dict[str, list[int]] = {"a": [], "b": []}
    for body, _, company_seq in rows:
        by_company[body[0]].append(company_seq)
    assert by_company == {"a": list(range(1, 31)), "b": list(range(1, 31))}
    async with db.connection() as conn:
        commits = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM messages")
    # Posts were stored in several batches, not one by one nor all at once.
    assert 1 < commits < 60
