"""Posting, reading and paging a transaction's conversation over HTTP."""

from __future__ import annotations

import asyncio

import httpx

from server.store import companies
from server.store.database import Database
from tests.world import World, post


async def test_post_stores_the_message_with_author_recipients_and_seq(
    world: World,
) -> None:
    async with world.client(world.ana) as ana:
        response = await post(
            ana,
            world,
            world.a,
            world.txa["bill"],
            "Is this the March bill?",
            [world.carl],
        )
    assert response.status_code == 201
    message = response.json()["message"]
    assert response.json()["created"] is True
    assert message["seq"] == 1
    assert message["company_seq"] == 1
    assert message["body"] == "Is this the March bill?"
    assert message["kind"] == "message"
    assert message["author"] == {
        "id": str(world.ana.id),
        "name": "Ana Moreau",
        "role": "accountant",
    }
    assert message["recipients"] == [{"id": str(world.carl.id), "name": "Carl Ibsen"}]
    assert message["transaction_id"] == str(world.txa["bill"])
    assert message["created_at"].endswith("Z")


async def test_either_side_posts_and_the_thread_keeps_order(world: World) -> None:
    txn = world.txa["invoice"]
    async with world.client(world.ana) as ana, world.client(world.carl) as carl:
        await post(ana, world, world.a, txn, "Question", [world.carl])
        await post(carl, world, world.a, txn, "Answer", [world.ana])
        await post(ana, world, world.a, txn, "Thanks", [world.carl, world.cora])
        page = (await carl.get(world.tx_url(world.a, txn) + "/messages")).json()
    assert [(m["seq"], m["body"], m["author"]["role"]) for m in page["messages"]] == [
        (1, "Question", "accountant"),
        (2, "Answer", "client"),
        (3, "Thanks", "accountant"),
    ]
    assert page["last_seq"] == 3
    assert page["has_more"] is False


async def test_retry_with_the_same_key_returns_the_first_message(world: World) -> None:
    txn = world.txa["bill"]
    async with world.client(world.ana) as ana:
        first = await post(ana, world, world.a, txn, "Once", [world.carl], key="k-1")
        again = await post(ana, world, world.a, txn, "Once", [world.carl], key="k-1")
        page = (await ana.get(world.tx_url(world.a, txn) + "/messages")).json()
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    assert len(page["messages"]) == 1


async def test_concurrent_retries_store_exactly_one_message(
    world: World, db: Database
) -> None:
    txn = world.txa["bill"]
    async with world.client(world.ana) as ana:
        responses = await asyncio.gather(
            *(
                post(ana, world, world.a, txn, "Only once", [world.carl], key="same")
                for _ in range(20)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201]
    assert len({r.json()["message"]["id"] for r in responses}) == 1
    async with db.connection() as conn:
        count = await conn.fetchval("SELECT count(*) FROM messages")
    assert count == 1


async def test_reusing_a_key_for_another_message_is_a_conflict(world: World) -> None:
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "One", [world.carl], key="k")
        other = await post(
            ana, world, world.a, world.txa["invoice"], "Two", [world.carl], key="k"
        )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert other.json()["error"]["field"] == "idempotency_key"


async def test_concurrent_posts_get_gapless_sequence_numbers(
    world: World, db: Database
) -> None:
    txn = world.txa["invoice"]
    async with world.client(world.ana) as ana, world.client(world.carl) as carl:
        responses = await asyncio.gather(
            *(
                post(
                    ana if i % 2 else carl,
                    world,
                    world.a,
                    txn,
                    f"message {i}",
                    [world.carl] if i % 2 else [world.ana],
                )
                for i in range(40)
            )
        )
    assert all(r.status_code == 201 for r in responses)
    assert sorted(r.json()["message"]["seq"] for r in responses) == list(range(1, 41))
    async with db.connection() as conn:
        seqs = await conn.fetch("SELECT seq FROM messages ORDER BY seq")
        company_seqs = await conn.fetch(
            "SELECT company_seq FROM messages ORDER BY company_seq"
        )
    assert [r["seq"] for r in seqs] == list(range(1, 41))
    assert [r["company_seq"] for r in company_seqs] == list(range(1, 41))


async def test_company_sequence_spans_the_company_conversations(world: World) -> None:
    async with world.client(world.ana) as ana:
        first = await post(ana, world, world.a, world.txa["bill"], "x", [world.carl])
        second = await post(
            ana, world, world.a, world.txa["invoice"], "y", [world.carl]
        )
    async with world.client(world.ben) as ben:
        other = await post(ben, world, world.b, world.txb["bill"], "z", [world.bea])
    assert (first.json()["message"]["seq"], first.json()["message"]["company_seq"]) == (
        1,
        1,
    )
    assert (
        second.json()["message"]["seq"],
        second.json()["message"]["company_seq"],
    ) == (
        1,
        2,
    )
    assert other.json()["message"]["company_seq"] == 1


async def test_pages_by_sequence_in_both_directions(world: World) -> None:
    txn = world.txa["bill"]
    url = world.tx_url(world.a, txn) + "/messages"
    async with world.client(world.ana) as ana:
        for i in range(1, 8):
            await post(ana, world, world.a, txn, f"m{i}", [world.carl])
        newest = (await ana.get(url, params={"limit": 3})).json()
        older = (await ana.get(url, params={"limit": 3, "before": 5})).json()
        oldest = (await ana.get(url, params={"limit": 3, "before": 2})).json()
        after = (await ana.get(url, params={"limit": 3, "after": 2})).json()
        tail = (await ana.get(url, params={"limit": 3, "after": 5})).json()
        past_end = (await ana.get(url, params={"after": 7})).json()

    def bodies(page: dict[str, object]) -> list[object]:
        return [m["body"] for m in page["messages"]]  # type: ignore[attr-defined]

    assert (bodies(newest), newest["has_more"]) == (["m5", "m6", "m7"], True)
    assert (bodies(older), older["has_more"]) == (["m2", "m3", "m4"], True)
    assert (bodies(oldest), oldest["has_more"]) == (["m1"], False)
    assert (bodies(after), after["has_more"]) == (["m3", "m4", "m5"], True)
    assert (bodies(tail), tail["has_more"]) == (["m6", "m7"], False)
    assert (bodies(past_end), past_end["has_more"], past_end["last_seq"]) == (
        [],
        False,
        7,
    )


async def test_a_transaction_without_messages_has_an_empty_thread(world: World) -> None:
    async with world.client(world.carl) as carl:
        page = await carl.get(world.tx_url(world.a, world.txa["bill"]) + "/messages")
    assert page.status_code == 200
    assert page.json() == {"messages": [], "last_seq": 0, "has_more": False}


async def test_messages_keep_unicode_byte_for_byte(world: World) -> None:
    body = "Ça coûte 12 400 € 👨‍👩‍👧 🇫🇷 e\u0301 क्षि 𠀀 \u202eRTL\u202c\nline two"
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], body, [world.carl])
        page = await ana.get(world.tx_url(world.a, world.txa["bill"]) + "/messages")
    assert page.json()["messages"][0]["body"].encode() == body.encode()


async def test_a_message_at_the_size_limit_is_kept_whole(world: World) -> None:
    body = "é" * (16 * 1024 // 2)
    async with world.client(world.ana) as ana:
        response = await post(
            ana, world, world.a, world.txa["bill"], body, [world.carl]
        )
    assert response.status_code == 201
    assert response.json()["message"]["body"] == body


async def test_the_company_stream_pages_by_company_seq(world: World) -> None:
    url = f"/api/companies/{world.a}/messages"
    async with world.client(world.ana) as ana:
        for i, kind in enumerate(["bill", "invoice", "bill", "vendor_check", "bill"]):
            await post(ana, world, world.a, world.txa[kind], f"c{i + 1}", [world.carl])
    async with world.client(world.ben) as ben:
        await post(ben, world, world.b, world.txb["bill"], "other company", [world.bea])
    async with world.client(world.carl) as carl:
        first = (await carl.get(url, params={"limit": 2})).json()
        rest = (await carl.get(url, params={"after": 2, "limit": 10})).json()
    assert [(m["company_seq"], m["body"]) for m in first["messages"]] == [
        (1, "c1"),
        (2, "c2"),
    ]
    assert (first["has_more"], first["last_seq"]) == (True, 5)
    assert [m["body"] for m in rest["messages"]] == ["c3", "c4", "c5"]
    assert rest["has_more"] is False


async def test_catching_up_gives_the_same_messages_for_any_page_size(
    world: World,
) -> None:
    """Catch-up by sequence, never by time (field report R04)."""
    txn = world.txa["bill"]
    url = world.tx_url(world.a, txn) + "/messages"
    async with world.client(world.ana) as ana:
        for i in range(1, 11):
            await post(ana, world, world.a, txn, f"m{i}", [world.carl])
        cursor = 10
        await asyncio.gather(
            *(
                post(ana, world, world.a, txn, f"m{i}", [world.carl])
                for i in range(11, 15)
            )
        )

        async def catch_up(page_size: int) -> list[tuple[int, str]]:
            got: list[tuple[int, str]] = []
            after = cursor
            while True:
                page = (
                    await ana.get(url, params={"after": after, "limit": page_size})
                ).json()
                got += [(m["seq"], m["body"]) for m in page["messages"]]
                if not page["has_more"]:
                    return got
                after = page["messages"][-1]["seq"]

        by_one = await catch_up(1)
        by_hundred = await catch_up(100)
    assert [seq for seq, _ in by_one] == [11, 12, 13, 14]
    assert by_one == by_hundred
    assert sorted(body for _, body in by_one) == ["m11", "m12", "m13", "m14"]


async def _token(world: World, **asked: object) -> httpx.AsyncClient:
    """A client with a token of Ana's made with ``asked``."""
    async with world.client(world.ana) as ana:
        made = await ana.post("/api/tokens", json={"name": "narrow"} | asked)
    assert made.status_code == 201, made.text
    return httpx.AsyncClient(
        base_url=world.base_url,
        headers={"Authorization": f"Bearer {made.json()['token']}"},
    )


async def test_a_retry_is_answered_with_its_message_after_a_recipient_left(
    world: World, db: Database
) -> None:
    txn = world.txa["bill"]
    async with world.client(world.ana) as ana:
        first = await post(ana, world, world.a, txn, "Once", [world.carl], key="k-1")
        async with db.connection() as conn:
            await companies.remove_member(conn, world.a, world.carl.id)
        again = await post(ana, world, world.a, txn, "Once", [world.carl], key="k-1")
        fresh = await post(ana, world, world.a, txn, "New", [world.carl])
    assert again.status_code == 200
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    assert fresh.status_code == 422
    assert fresh.json()["error"]["code"] == "invalid"


async def test_a_retry_by_a_caller_who_may_no_longer_post_there_is_refused(
    world: World, db: Database
) -> None:
    txn = world.txa["bill"]
    elsewhere = await _token(world, scopes=["read", "post"], company_ids=[str(world.c)])
    read_only = await _token(world, scopes=["read"])
    async with world.client(world.ana) as ana, elsewhere, read_only:
        await post(ana, world, world.a, txn, "Once", [world.carl], key="k-1")
        answers = {
            "limited elsewhere": await post(
                elsewhere, world, world.a, txn, "Once", [world.carl], key="k-1"
            ),
            "limited elsewhere, other body": await post(
                elsewhere, world, world.a, txn, "Other", [world.carl], key="k-1"
            ),
            "no post scope": await post(
                read_only, world, world.a, txn, "Once", [world.carl], key="k-1"
            ),
        }
        async with db.connection() as conn:
            await companies.remove_member(conn, world.a, world.ana.id)
        answers["author left"] = await post(
            ana, world, world.a, txn, "Once", [world.carl], key="k-1"
        )
    assert {
        name: (r.status_code, r.json()["error"]["code"]) for name, r in answers.items()
    } == {
        "limited elsewhere": (404, "not_found"),
        "limited elsewhere, other body": (404, "not_found"),
        "no post scope": (403, "missing_scope"),
        "author left": (404, "not_found"),
    }
