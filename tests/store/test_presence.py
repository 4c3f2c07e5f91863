"""Presence rows: who is attentive, who has a transaction open."""

from __future__ import annotations

import datetime as dt
import uuid

from server.store import presence
from server.store.database import Database
from tests.world import World


async def test_viewers_are_named_up_to_a_limit_and_counted_in_all(
    db: Database, world: World
) -> None:
    now = dt.datetime.now(dt.UTC)
    txn = world.txa["bill"]
    rows = [
        presence.PresenceRow(uuid.uuid4(), person.id, now, now, (txn,))
        for person in (world.ana, world.carl, world.cora, world.cora)
    ]
    async with db.connection() as conn:
        await presence.upsert(conn, "node-1", rows, now)
        named, total = await presence.viewers(conn, txn, now, limit=2)
        nobody, none = await presence.viewers(conn, world.txa["invoice"], now, limit=2)
    # Cora has two tabs open; she is one viewer.
    assert total == 3
    assert named == [(world.ana.id, "Ana Moreau"), (world.carl.id, "Carl Ibsen")]
    assert (nobody, none) == ([], 0)


async def test_stale_rows_and_idle_connections_do_not_count_as_attentive(
    db: Database, world: World
) -> None:
    now = dt.datetime.now(dt.UTC)
    later = now + dt.timedelta(hours=1)
    async with db.connection() as conn:
        await presence.upsert(
            conn,
            "node-1",
            [
                presence.PresenceRow(uuid.uuid4(), world.ana.id, now, later, ()),
                presence.PresenceRow(uuid.uuid4(), world.carl.id, now, now, ()),
            ],
            now,
        )
        active_now = await presence.users_active(
            conn, [world.ana.id, world.carl.id], now
        )
        # Nobody refreshed the rows for longer than a live process would.
        active_later = await presence.users_active(
            conn, [world.ana.id], now + presence.STALE_AFTER + dt.timedelta(seconds=1)
        )
    assert active_now == {world.ana.id}
    assert active_later == set()
