"""Kept unread counts always equal the count recomputed from their source."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid

from server.store import companies, messages, reads
from server.store.database import Database
from tests.world import World


RECOMPUTED = """
    SELECT r.user_id, r.conversation_id,
        count(*) FILTER (WHERE r.seq > coalesce(rs.last_read_seq, 0)) AS unread
    FROM message_recipients r
    LEFT JOIN read_states rs
        ON rs.user_id = r.user_id AND rs.conversation_id = r.conversation_id
    GROUP BY r.user_id, r.conversation_id
"""


async def _post(
    db: Database, world: World, author: uuid.UUID, recipients: list[uuid.UUID], txn: str
) -> None:
    async with db.transaction() as conn:
        await messages.insert(
            conn,
            transaction_id=world.txa[txn],
            company_id=world.a,
            author_id=author,
            author_role="accountant",
            body="x",
            recipient_ids=recipients,
            idempotency_key=str(uuid.uuid4()),
            created_at=dt.datetime.now(dt.UTC),
        )


async def test_counts_survive_a_random_mix_of_posts_reads_and_leaving(
    db: Database, world: World
) -> None:
    rng = random.Random(20261204)
    people = [world.ana.id, world.carl.id, world.cora.id]
    kinds = ["bill", "invoice", "vendor_check"]

    async def step() -> None:
        roll = rng.random()
        if roll < 0.55:
            author = rng.choice(people)
            others = [p for p in people if p != author]
            await _post(
                db,
                world,
                author,
                rng.sample(others, rng.randint(1, 2)),
                rng.choice(kinds),
            )
        elif roll < 0.9:
            async with db.connection() as conn:
                conversation = await messages.conversation_of(
                    conn, world.txa[rng.choice(kinds)]
                )
                if conversation is not None:
                    # Any marker, stale ones and ones past the end included.
                    await reads.advance(
                        conn, rng.choice(people), conversation, rng.randint(0, 60)
                    )
        else:
            async with db.transaction() as conn:
                who = rng.choice(people[1:])
                if rng.random() < 0.5:
                    await companies.remove_member(conn, world.a, who)
                else:
                    await companies.add_member(conn, world.a, who, "client")

    for _ in range(60):
        # Five at a time, so posts and reads race as they do in production.
        await asyncio.gather(*(step() for _ in range(5)))

    async with db.connection() as conn:
        kept = {
            (r["user_id"], r["conversation_id"]): r["unread"]
            for r in await conn.fetch(
                "SELECT user_id, conversation_id, unread FROM unread_counts"
            )
        }
        recomputed = {
            (r["user_id"], r["conversation_id"]): r["unread"]
            for r in await conn.fetch(RECOMPUTED)
        }
        badges = await reads.unread_by_company(conn, people)
        members = {
            r["user_id"]
            for r in await conn.fetch(
                "SELECT user_id FROM memberships WHERE company_id = $1", world.a
            )
        }
    assert kept == recomputed
    assert sum(recomputed.values()) > 0
    for person in people:
        expected = sum(n for (user, _), n in recomputed.items() if user == person)
        if person in members:
            assert badges[person][world.a] == expected
        else:
            assert world.a not in badges[person]
