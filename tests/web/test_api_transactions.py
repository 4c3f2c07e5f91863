"""Listing transactions for members, and taking them from the books."""

from __future__ import annotations

from typing import Any

import httpx

from server.core import accounts
from server.store import users
from server.store.database import Database
from tests.world import TYPES, World, post


async def _writer(db: Database, world: World, who: str = "ana") -> httpx.AsyncClient:
    """A client holding a token allowed to write transactions."""
    person = getattr(world, who)
    async with db.transaction() as conn:
        user = await users.by_id(conn, person.id)
        assert user is not None
        issued = await accounts.issue_token(
            conn,
            user,
            name="books",
            scopes=frozenset({"read", "write_transactions"}),
            company_ids=None,
            expires_at=None,
        )
    return httpx.AsyncClient(
        base_url=world.base_url, headers={"Authorization": f"Bearer {issued.secret}"}
    )


def _item(external_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "type": "invoice",
        "doc_number": "1042",
        "date": "2026-03-14",
        "counterparty": "Harbor View Dental",
        "memo": "Retainer",
        "amount": "1850.00",
        "currency": "usd",
    } | overrides


async def test_list_is_newest_first_and_filters(world: World) -> None:
    url = f"/api/companies/{world.a}/transactions"
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "x", [world.carl])
        await post(ana, world, world.a, world.txa["invoice"], "y", [world.cora])
    async with world.client(world.carl) as carl:
        everything = (await carl.get(url)).json()["transactions"]
        bills = (await carl.get(url, params={"type": "bill"})).json()["transactions"]
        talked = (await carl.get(url, params={"has_conversation": "true"})).json()
        quiet = (await carl.get(url, params={"has_conversation": "false"})).json()
        unread = (await carl.get(url, params={"unread": "true"})).json()
    assert [t["type"] for t in everything] == list(reversed(TYPES))
    assert [t["doc_number"] for t in bills] == ["A-1001"]
    assert bills[0]["takes_conversation"] is True
    assert bills[0]["amount"] == "101.00"
    assert bills[0]["conversation"]["unread"] == 1
    assert {t["type"] for t in talked["transactions"]} == {"bill", "invoice"}
    assert len(quiet["transactions"]) == len(TYPES) - 2
    assert [t["type"] for t in unread["transactions"]] == ["bill"]


async def test_list_pages_with_a_cursor(world: World) -> None:
    url = f"/api/companies/{world.a}/transactions"
    seen: list[str] = []
    cursor = None
    async with world.client(world.carl) as carl:
        for _ in range(10):
            params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
            page = (await carl.get(url, params=params)).json()
            seen += [t["type"] for t in page["transactions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == list(reversed(TYPES))


async def test_one_transaction_shows_its_conversation_state(world: World) -> None:
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "x", [world.carl])
    async with world.client(world.carl) as carl:
        bill = (await carl.get(world.tx_url(world.a, world.txa["bill"]))).json()
        receipt = (
            await carl.get(world.tx_url(world.a, world.txa["sales_receipt"]))
        ).json()
    assert bill["transaction"]["type_label"] == "Bill"
    assert bill["transaction"]["conversation"]["last_seq"] == 1
    assert bill["transaction"]["conversation"]["unread"] == 1
    assert receipt["transaction"]["takes_conversation"] is False
    assert receipt["transaction"]["conversation"] is None


async def test_upsert_creates_then_changes_nothing_on_repeat(
    world: World, db: Database
) -> None:
    url = f"/api/companies/{world.a}/transactions"
    batch = {"transactions": [_item("qb-1"), _item("qb-2", type="bill")]}
    async with await _writer(db, world) as books:
        first = await books.post(url, json=batch)
        again = await books.post(url, json=batch)
    assert [r["status"] for r in first.json()["results"]] == ["created", "created"]
    assert [r["status"] for r in again.json()["results"]] == ["unchanged", "unchanged"]
    assert [r["id"] for r in first.json()["results"]] == [
        r["id"] for r in again.json()["results"]
    ]
    async with db.connection() as conn:
        stored = await conn.fetchrow(
            "SELECT currency, amount::text FROM transactions WHERE external_id = 'qb-1'"
        )
    assert stored is not None
    assert tuple(stored) == ("USD", "1850.00")


async def test_an_amount_change_after_talk_starts_is_noted_on_the_thread(
    world: World, db: Database
) -> None:
    url = f"/api/companies/{world.a}/transactions"
    async with await _writer(db, world) as books:
        created = await books.post(url, json={"transactions": [_item("qb-9")]})
        txn_id = created.json()["results"][0]["id"]
        async with world.client(world.ana) as ana:
            await post(ana, world, world.a, txn_id, "Is 1850 right?", [world.carl])
        updated = await books.post(
            url, json={"transactions": [_item("qb-9", amount="1580.00", memo="New")]}
        )
        memo_only = await books.post(
            url, json={"transactions": [_item("qb-9", amount="1580.00", memo="Newer")]}
        )
        retyped = await books.post(
            url,
            json={
                "transactions": [
                    _item("qb-9", amount="1580.00", memo="Newer", type="sales_receipt")
                ]
            },
        )
    async with world.client(world.carl) as carl:
        thread = (await carl.get(world.tx_url(world.a, txn_id) + "/messages")).json()
    assert updated.json()["results"][0]["status"] == "updated"
    assert memo_only.json()["results"][0]["status"] == "updated"
    assert [
        (m["seq"], m["kind"], m["author"], m["body"]) for m in thread["messages"]
    ] == [
        (1, "message", thread["messages"][0]["author"], "Is 1850 right?"),
        (
            2,
            "system",
            None,
            "The accounting system changed the amount from 1850.00 USD to 1580.00 USD.",
        ),
        (
            3,
            "system",
            None,
            "The accounting system changed the type from invoice to sales receipt.",
        ),
    ]
    assert retyped.json()["results"][0]["status"] == "updated"


async def test_only_accountants_with_the_scope_write_transactions(
    world: World, db: Database
) -> None:
    url = f"/api/companies/{world.a}/transactions"
    batch = {"transactions": [_item("qb-1")]}
    async with world.client(world.ana) as ana:
        no_scope = await ana.post(url, json=batch)
    async with await _writer(db, world, "carl") as client_books:
        client = await client_books.post(url, json=batch)
    assert no_scope.status_code == 403
    assert no_scope.json()["error"]["code"] == "missing_scope"
    assert client.status_code == 403
    assert client.json()["error"]["code"] == "forbidden"


async def test_one_bad_item_refuses_the_whole_batch(world: World, db: Database) -> None:
    url = f"/api/companies/{world.a}/transactions"
    cases = [
        (_item("qb-2", type="journal_entry"), "transactions.1.type"),
        (_item("qb-2", date="14/03/2026"), "transactions.1.date"),
        (_item("qb-2", amount="12,00"), "transactions.1.amount"),
        (_item("qb-2", amount="1.005"), "transactions.1.amount"),
        (_item("qb-2", amount="1e5"), "transactions.1.amount"),
        (_item("qb-2", amount="1_000.00"), "transactions.1.amount"),
        (_item("qb-2", amount=" 1.00"), "transactions.1.amount"),
        (_item("qb-2", amount="\u0663.\u0660\u0660"), "transactions.1.amount"),
        (_item("qb-2", currency="dollars"), "transactions.1.currency"),
        (_item("qb 2"), "transactions.1.external_id"),
        (_item("qb-1"), "transactions.1.external_id"),
    ]
    async with await _writer(db, world) as books:
        answers = [
            await books.post(url, json={"transactions": [_item("qb-1"), bad]})
            for bad, _ in cases
        ]
    for (_, field), answer in zip(cases, answers, strict=True):
        assert answer.status_code == 422
        assert answer.json()["error"]["field"] == field
    async with db.connection() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM transactions WHERE external_id LIKE 'qb%'"
            )
            == 0
        )
