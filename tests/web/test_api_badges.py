"""Unread counts: after posts, reads, repeated reads and membership changes."""

from __future__ import annotations

import httpx

from server.store import companies
from server.store.database import Database
from tests.world import World, post


async def _badges(client: httpx.AsyncClient) -> tuple[int, dict[str, int]]:
    badges = (await client.get("/api/me/badges")).json()["badges"]
    return badges["total"], {c["company_id"]: c["unread"] for c in badges["companies"]}


async def test_a_new_member_has_zero_everywhere(world: World) -> None:
    async with world.client(world.ana) as ana:
        total, by_company = await _badges(ana)
    assert total == 0
    assert by_company == {str(world.a): 0, str(world.c): 0}


async def test_posts_count_for_their_recipients_only(world: World) -> None:
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "1", [world.carl])
        await post(
            ana, world, world.a, world.txa["bill"], "2", [world.carl, world.cora]
        )
        await post(ana, world, world.a, world.txa["invoice"], "3", [world.carl])
        author = await _badges(ana)
    async with world.client(world.carl) as carl:
        carl_badges = await _badges(carl)
    async with world.client(world.cora) as cora:
        cora_badges = await _badges(cora)
    assert author == (0, {str(world.a): 0, str(world.c): 0})
    assert carl_badges == (3, {str(world.a): 3})
    assert cora_badges == (1, {str(world.a): 1})


async def test_reading_clears_a_conversation_and_never_goes_below_zero(
    world: World,
) -> None:
    bill = world.tx_url(world.a, world.txa["bill"])
    async with world.client(world.ana) as ana:
        for i in range(3):
            await post(ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl])
        await post(ana, world, world.a, world.txa["invoice"], "other", [world.carl])
    async with world.client(world.carl) as carl:
        first = await carl.post(bill + "/read", json={"seq": 2})
        assert first.json() == {
            "last_read_seq": 2,
            "badges": {
                "total": 2,
                "companies": [{"company_id": str(world.a), "unread": 2}],
            },
        }
        # Reading past the end stops at the newest message.
        beyond = await carl.post(bill + "/read", json={"seq": 99})
        assert beyond.json()["last_read_seq"] == 3
        # An older read from another tab does not move the marker back.
        stale = await carl.post(bill + "/read", json={"seq": 1})
        assert stale.json()["last_read_seq"] == 3
        again = await carl.post(bill + "/read", json={"seq": 3})
        assert again.json()["last_read_seq"] == 3
        assert await _badges(carl) == (1, {str(world.a): 1})
        txn = (await carl.get(bill)).json()["transaction"]
    assert txn["conversation"]["unread"] == 0
    assert txn["conversation"]["last_read_seq"] == 3


async def test_a_company_left_counts_for_nothing(world: World, db: Database) -> None:
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "x", [world.carl])
    async with db.transaction() as conn:
        await companies.remove_member(conn, world.a, world.carl.id)
    async with world.client(world.carl) as carl:
        assert await _badges(carl) == (0, {})
        waiting = (await carl.get("/api/me/waiting")).json()
    assert waiting == {"messages": []}


async def test_my_companies_carry_my_unread_counts(world: World) -> None:
    async with world.client(world.carl) as carl:
        await post(carl, world, world.a, world.txa["bill"], "for Ana", [world.ana])
    async with world.client(world.ana) as ana:
        found = (await ana.get("/api/companies")).json()["companies"]
    assert found == [
        {"id": str(world.c), "name": "Cobalt Books", "role": "accountant", "unread": 0},
        {
            "id": str(world.a),
            "name": "Northwind Ledger Ltd",
            "role": "accountant",
            "unread": 1,
        },
    ]


async def test_waiting_messages_are_newest_first_and_name_the_transaction(
    world: World,
) -> None:
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "older", [world.carl])
        await post(ana, world, world.a, world.txa["invoice"], "newer", [world.carl])
        await post(
            ana, world, world.a, world.txa["invoice"], "not for Carl", [world.cora]
        )
    async with world.client(world.carl) as carl:
        waiting = (await carl.get("/api/me/waiting")).json()["messages"]
    assert [
        (m["body"], m["transaction_label"], m["company_name"], m["author_name"])
        for m in waiting
    ] == [
        ("newer", "Invoice A-1000", "Northwind Ledger Ltd", "Ana Moreau"),
        ("older", "Bill A-1001", "Northwind Ledger Ltd", "Ana Moreau"),
    ]
