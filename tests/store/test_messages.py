"""Appending messages: one statement per message, whole or not at all."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest

from server.store import companies, messages
from server.store.database import Database
from server.store.messages import Draft, Recipient
from tests.world import World


NOON = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def _draft(
    world: World,
    recipients: list[uuid.UUID],
    *,
    body: str = "Receipt attached?",
    key: str | None = None,
    txn: str = "bill",
) -> Draft:
    return Draft(
        transaction_id=world.txa[txn],
        company_id=world.a,
        author_id=world.ana.id,
        author_role="accountant",
        body=body,
        recipient_ids=recipients,
        idempotency_key=key or str(uuid.uuid4()),
        created_at=NOON,
    )


async def _outbox(db: Database) -> list[tuple[uuid.UUID, uuid.UUID, dt.datetime]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT message_id, user_id, due_at FROM mail_outbox ORDER BY due_at"
        )
    return [(r["message_id"], r["user_id"], r["due_at"]) for r in rows]


async def test_the_answer_is_the_message_as_readers_read_it(
    db: Database, world: World
) -> None:
    async with db.connection() as conn:
        [(message, created)] = await messages.append(
            conn, [_draft(world, [world.cora.id, world.carl.id])]
        )
        read = await messages.by_id(conn, message.id)
    assert created is True
    assert read == message
    assert message.seq == 1
    assert message.company_seq == 1
    assert message.author_name == "Ana Moreau"
    # Sorted by name, whatever the order they were named in.
    assert message.recipients == (
        Recipient(world.carl.id, "Carl Ibsen"),
        Recipient(world.cora.id, "Cora Lind"),
    )


async def test_email_intents_come_with_the_message_for_people_with_email_on(
    db: Database, world: World
) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE users SET email_delay_secs = 600 WHERE id = $1", world.carl.id
        )
        await conn.execute(
            "UPDATE users SET email_notifications = false WHERE id = $1",
            world.cora.id,
        )
        [(quiet, _)] = await messages.append(conn, [_draft(world, [world.carl.id])])
        [(mailed, _)] = await messages.append(
            conn,
            [_draft(world, [world.carl.id, world.cora.id])],
            mail_delay_secs=120,
        )
        # Ana keeps the default delay.
        [(reply, _)] = await messages.append(
            conn,
            [
                Draft(
                    world.txa["bill"],
                    world.a,
                    world.carl.id,
                    "client",
                    "Attached.",
                    [world.ana.id],
                    "carl-1",
                    NOON,
                )
            ],
            mail_delay_secs=120,
        )
    assert quiet.seq == 1
    assert await _outbox(db) == [
        (reply.id, world.ana.id, NOON + dt.timedelta(seconds=120)),
        (mailed.id, world.carl.id, NOON + dt.timedelta(seconds=600)),
    ]


async def test_a_reused_key_stores_nothing_and_answers_with_the_first(
    db: Database, world: World
) -> None:
    async with db.connection() as conn:
        [(first, _)] = await messages.append(
            conn, [_draft(world, [world.carl.id], key="k-1")], mail_delay_secs=0
        )
        # On another transaction, which has no conversation yet.
        [(again, created)] = await messages.append(
            conn,
            [_draft(world, [world.cora.id], body="Other", key="k-1", txn="invoice")],
            mail_delay_secs=0,
        )
        conversations = await conn.fetchval("SELECT count(*) FROM conversations")
        unread = await conn.fetch("SELECT user_id, unread FROM unread_counts")
    assert created is False
    assert again == first
    assert conversations == 1
    assert [(r["user_id"], r["unread"]) for r in unread] == [(world.carl.id, 1)]
    assert [row[1] for row in await _outbox(db)] == [world.carl.id]


async def test_drafts_appended_together_are_stored_all_or_none(
    db: Database, world: World
) -> None:
    nobody = uuid.uuid4()
    async with db.connection() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await messages.append(
                conn,
                [
                    _draft(world, [world.carl.id]),
                    _draft(world, [world.cora.id], txn="invoice"),
                    # Not a user: the third call fails after two succeeded.
                    _draft(world, [nobody], txn="vendor_check"),
                ],
                mail_delay_secs=0,
            )
        counts = await conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM messages) AS messages,
                (SELECT count(*) FROM conversations) AS conversations,
                (SELECT count(*) FROM unread_counts) AS unread,
                (SELECT last_message_seq FROM companies WHERE id = $1) AS head
            """,
            world.a,
        )
        # The next post takes the numbers the failed ones would have.
        [(after, _)] = await messages.append(conn, [_draft(world, [world.carl.id])])
    assert counts is not None
    assert dict(counts) == {"messages": 0, "conversations": 0, "unread": 0, "head": 0}
    assert await _outbox(db) == []
    assert (after.seq, after.company_seq) == (1, 1)


# Checked posts: the statement reads the facts and stores only what they allow.

TYPES = ("bill", "invoice")


def _post(
    world: World,
    recipients: list[uuid.UUID],
    *,
    author: uuid.UUID | None = None,
    company: uuid.UUID | None = None,
    txn: uuid.UUID | None = None,
    key: str | None = None,
) -> Draft:
    return Draft(
        transaction_id=txn or world.txa["bill"],
        company_id=company or world.a,
        author_id=author or world.ana.id,
        author_role=None,
        body="Receipt attached?",
        recipient_ids=recipients,
        idempotency_key=key or str(uuid.uuid4()),
        created_at=NOON,
    )


async def _stored(db: Database) -> tuple[int, int]:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM messages) AS m,"
            " (SELECT count(*) FROM conversations) AS c"
        )
    assert row is not None
    return row["m"], row["c"]


async def test_a_checked_post_takes_its_role_and_reports_its_facts(
    db: Database, world: World
) -> None:
    async with db.connection() as conn:
        [checked] = await messages.append_checked(
            conn, [(_post(world, [world.carl.id]), TYPES)], mail_delay_secs=None
        )
    assert checked.facts == messages.PostingFacts("accountant", "bill", 1)
    assert checked.created is True
    assert checked.message is not None
    assert checked.message.author_role == "accountant"


async def test_posts_the_facts_refuse_store_nothing(db: Database, world: World) -> None:
    refused = [
        # Ben is not a member of company A.
        (_post(world, [world.carl.id], author=world.ben.id), TYPES),
        # Company B's transaction, named under company A.
        (_post(world, [world.carl.id], txn=world.txb["bill"]), TYPES),
        # A type that takes no conversation.
        (_post(world, [world.carl.id], txn=world.txa["payroll"]), TYPES),
        # Bea is a member of company B only.
        (_post(world, [world.carl.id, world.bea.id]), TYPES),
        # The caller may not post at all.
        (_post(world, [world.carl.id]), ()),
    ]
    async with db.connection() as conn:
        outcomes = await messages.append_checked(conn, refused, mail_delay_secs=0)
    assert [(o.facts, o.message, o.created) for o in outcomes] == [
        (messages.PostingFacts(None, "bill", None), None, False),
        (messages.PostingFacts("accountant", None, None), None, False),
        (messages.PostingFacts("accountant", "payroll", None), None, False),
        (messages.PostingFacts("accountant", "bill", 1), None, False),
        (messages.PostingFacts("accountant", "bill", None), None, False),
    ]
    assert await _stored(db) == (0, 0)
    assert await _outbox(db) == []


async def test_a_refused_retry_still_sees_what_its_key_stored(
    db: Database, world: World
) -> None:
    async with db.connection() as conn:
        [first] = await messages.append_checked(
            conn, [(_post(world, [world.carl.id], key="k-1"), TYPES)], mail_delay_secs=0
        )
        await companies.remove_member(conn, world.a, world.ana.id)
        [retry] = await messages.append_checked(
            conn, [(_post(world, [world.carl.id], key="k-1"), TYPES)], mail_delay_secs=0
        )
    assert retry.facts.role is None
    assert retry.created is False
    assert retry.message == first.message


async def test_a_stranger_naming_a_company_does_not_wait_for_its_lock(
    db: Database, world: World
) -> None:
    async with db.transaction() as holder:
        await holder.execute(
            "SELECT 1 FROM companies WHERE id = $1 FOR UPDATE", world.a
        )
        async with db.connection() as conn:
            [outcome] = await asyncio.wait_for(
                messages.append_checked(
                    conn,
                    [(_post(world, [world.carl.id], author=world.ben.id), TYPES)],
                    mail_delay_secs=0,
                ),
                timeout=5,
            )
    assert outcome.facts.role is None


@pytest.mark.parametrize("removed", ["author", "recipient"])
async def test_a_post_waiting_on_a_removal_is_judged_by_what_it_left(
    db: Database, world: World, removed: str
) -> None:
    gone = world.ana.id if removed == "author" else world.carl.id
    async with db.connection() as holder, db.connection() as conn:
        removal = holder.transaction()
        await removal.start()
        # Takes the company's lock, and holds it until the commit.
        assert await companies.remove_member(holder, world.a, gone)
        posting = asyncio.create_task(
            messages.append_checked(
                conn, [(_post(world, [world.carl.id]), TYPES)], mail_delay_secs=0
            )
        )
        # The post has read the facts ahead and now waits for the lock.
        await _until_waiting(db)
        await removal.commit()
        [outcome] = await posting
    assert outcome.facts == (
        messages.PostingFacts(None, "bill", 1)
        if removed == "author"
        else messages.PostingFacts("accountant", "bill", 0)
    )
    assert outcome.message is None
    assert outcome.created is False
    assert await _stored(db) == (0, 0)


async def test_a_removal_waits_for_a_post_of_its_company(
    db: Database, world: World
) -> None:
    async with db.connection() as poster, db.connection() as remover:
        post = poster.transaction()
        await post.start()
        [stored] = await messages.append_checked(
            poster, [(_post(world, [world.carl.id]), TYPES)], mail_delay_secs=0
        )
        removing = asyncio.create_task(
            companies.remove_member(remover, world.a, world.carl.id)
        )
        await _until_waiting(db)
        assert not removing.done()
        await post.commit()
        assert await removing is True
    assert stored.created is True
    assert await _stored(db) == (1, 1)


async def _until_waiting(db: Database) -> None:
    """Return once some session waits for a lock."""
    async with db.connection() as conn:
        for _ in range(500):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            if waiting:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("no session came to wait for a lock")
