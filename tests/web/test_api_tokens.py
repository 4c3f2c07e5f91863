"""API tokens and bots: made, scoped, listed and revoked by their owners."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from server.store.database import Database
from tests.servers import PUBLIC_URL
from tests.world import PASSWORD, World, post


@contextlib.asynccontextmanager
async def _session(world: World, email: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client signed in with a session cookie."""
    async with httpx.AsyncClient(
        base_url=world.base_url, headers={"Origin": PUBLIC_URL}, timeout=30
    ) as client:
        response = await client.post(
            "/api/auth/sign-in", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 200
        yield client


def _bearer(world: World, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=world.base_url, headers={"Authorization": f"Bearer {token}"}
    )


async def _bot(world: World, owner: httpx.AsyncClient, **token: Any) -> tuple[str, str]:
    """Make a bot in company A and a token for it; returns (bot id, secret)."""
    made = await owner.post(
        f"/api/companies/{world.a}/bots", json={"name": "Recon bot"}
    )
    assert made.status_code == 201, made.text
    bot_id = made.json()["bot"]["id"]
    issued = await owner.post(
        "/api/tokens", json={"name": "recon", "user_id": bot_id} | token
    )
    assert issued.status_code == 201, issued.text
    return bot_id, issued.json()["token"]


async def test_a_read_only_bot_reads_but_cannot_post(world: World) -> None:
    async with _session(world, world.ana.email) as ana:
        await post(ana, world, world.a, world.txa["bill"], "For Carl", [world.carl])
        _, token = await _bot(world, ana, scopes=["read", "subscribe"])
    async with _bearer(world, token) as bot:
        thread = await bot.get(world.tx_url(world.a, world.txa["bill"]) + "/messages")
        posted = await post(bot, world, world.a, world.txa["bill"], "Hi", [world.carl])
    assert [m["body"] for m in thread.json()["messages"]] == ["For Carl"]
    assert posted.status_code == 403
    assert posted.json()["error"]["code"] == "missing_scope"


async def test_a_bots_messages_show_the_bot_role(world: World) -> None:
    async with _session(world, world.ana.email) as ana:
        bot_id, token = await _bot(world, ana, scopes=["read", "post"])
    async with _bearer(world, token) as bot:
        posted = await post(
            bot,
            world,
            world.a,
            world.txa["bill"],
            "Please upload the receipt.",
            [world.carl],
        )
    async with world.client(world.carl) as carl:
        members = (await carl.get(f"/api/companies/{world.a}/members")).json()
    assert posted.json()["message"]["author"] == {
        "id": bot_id,
        "name": "Recon bot",
        "role": "bot",
    }
    assert {"id": bot_id, "name": "Recon bot", "role": "bot"} in members["members"]


async def test_a_bot_without_a_grant_sees_nothing_of_another_company(
    world: World,
) -> None:
    async with _session(world, world.ana.email) as ana:
        _, token = await _bot(world, ana, scopes=["read", "post", "subscribe"])
    async with _bearer(world, token) as bot:
        companies = (await bot.get("/api/companies")).json()["companies"]
        other = await bot.get(f"/api/companies/{world.b}/transactions")
        foreign = await bot.get(world.tx_url(world.b, world.txb["bill"]))
    assert [c["name"] for c in companies] == ["Northwind Ledger Ltd"]
    assert other.status_code == 404
    assert foreign.status_code == 404


async def test_tokens_are_listed_without_secrets_and_revoked_by_their_owner(
    world: World,
) -> None:
    async with _session(world, world.ana.email) as ana:
        bot_id, token = await _bot(world, ana, scopes=["read"])
        listed = (await ana.get("/api/tokens")).json()["tokens"]
        mine = next(t for t in listed if t["user"]["id"] == bot_id)
        async with world.client(world.carl) as carl:
            by_someone_else = await carl.delete(f"/api/tokens/{mine['id']}")
        revoked = await ana.delete(f"/api/tokens/{mine['id']}")
        again = await ana.delete(f"/api/tokens/{mine['id']}")
    async with _bearer(world, token) as bot:
        after = await bot.get("/api/companies")
    assert token not in str(listed)
    assert mine["scopes"] == ["read"]
    assert mine["name"] == "recon"
    assert by_someone_else.status_code == 404
    assert revoked.status_code == 204
    assert again.status_code == 404
    assert after.status_code == 401


async def test_only_accountants_make_bots_and_only_in_their_companies(
    world: World,
) -> None:
    async with world.client(world.carl) as carl:
        as_client = await carl.post(
            f"/api/companies/{world.a}/bots", json={"name": "x"}
        )
    async with world.client(world.ben) as ben:
        elsewhere = await ben.post(f"/api/companies/{world.a}/bots", json={"name": "x"})
    assert as_client.status_code == 403
    assert elsewhere.status_code == 404


async def test_a_token_makes_only_narrower_tokens_that_go_with_it(
    world: World, db: Database
) -> None:
    async with _session(world, world.ana.email) as ana:
        parent = (
            await ana.post(
                "/api/tokens",
                json={"name": "rp", "scopes": ["read", "post"], "expires_in_days": 7},
            )
        ).json()
    async with _bearer(world, parent["token"]) as client:
        wider = await client.post(
            "/api/tokens", json={"name": "w", "scopes": ["read", "subscribe"]}
        )
        child = await client.post(
            "/api/tokens",
            json={"name": "c", "scopes": ["read"], "expires_in_days": 365},
        )
        await client.post("/api/auth/sign-out")
    async with _bearer(world, child.json()["token"]) as orphan:
        after = await orphan.get("/api/companies")
    assert wider.status_code == 403
    assert child.status_code == 201
    # No longer-lived than its parent, and revoked with it.
    assert child.json()["expires_at"] == parent["expires_at"]
    assert after.status_code == 401


async def test_read_only_or_company_limited_tokens_cannot_manage_tokens(
    world: World,
) -> None:
    async with _session(world, world.ana.email) as ana:
        read_only = (
            await ana.post("/api/tokens", json={"name": "ro", "scopes": ["read"]})
        ).json()["token"]
        limited = (
            await ana.post(
                "/api/tokens",
                json={
                    "name": "only C",
                    "scopes": ["read", "post"],
                    "company_ids": [str(world.c)],
                },
            )
        ).json()["token"]
    answers = []
    for token in (read_only, limited):
        async with _bearer(world, token) as client:
            answers.append((await client.get("/api/tokens")).status_code)
            answers.append(
                (
                    await client.post(
                        "/api/tokens", json={"name": "x", "scopes": ["read"]}
                    )
                ).status_code
            )
            answers.append(
                (
                    await client.post(
                        f"/api/companies/{world.a}/webhooks",
                        json={"url": "https://hooks.example.com/x"},
                    )
                ).status_code
            )
    assert answers == [403, 403, 403, 403, 403, 404]


async def test_an_accountant_who_leaves_takes_their_bots_and_webhooks_along(
    world: World, db: Database
) -> None:
    from server.store import companies

    async with db.transaction() as conn:
        await companies.add_member(conn, world.a, world.ben.id, "accountant")
    async with _session(world, world.ben.email) as ben:
        bot_id, token = await _bot(world, ben, scopes=["read", "post"])
        hook = await ben.post(
            f"/api/companies/{world.a}/webhooks",
            json={"url": "https://hooks.example.com/ben"},
        )
    async with db.transaction() as conn:
        await companies.remove_member(conn, world.a, world.ben.id)
    async with _bearer(world, token) as bot:
        read = await bot.get(world.tx_url(world.a, world.txa["bill"]))
    async with world.client(world.ana) as ana:
        hooks = (await ana.get(f"/api/companies/{world.a}/webhooks")).json()
        bots = (await ana.get(f"/api/companies/{world.a}/bots")).json()
    async with _session(world, world.ben.email) as ben:
        new_token = await ben.post(
            "/api/tokens", json={"name": "again", "user_id": bot_id, "scopes": ["read"]}
        )
    assert hook.status_code == 201
    assert read.status_code == 404
    assert hooks == {"webhooks": []}
    assert bots == {"bots": []}
    # A new token for the bot reaches nothing of the company either.
    async with _bearer(world, new_token.json()["token"]) as again:
        assert (await again.get(f"/api/companies/{world.a}/members")).status_code == 404


async def test_any_accountant_of_the_company_sees_and_removes_its_bots(
    world: World, db: Database
) -> None:
    from server.store import companies

    async with db.transaction() as conn:
        await companies.add_member(conn, world.a, world.ben.id, "accountant")
    async with _session(world, world.ben.email) as ben:
        bot_id, token = await _bot(world, ben, scopes=["read"])
    async with world.client(world.ana) as ana:
        listed = (await ana.get(f"/api/companies/{world.a}/bots")).json()
        removed = await ana.delete(f"/api/companies/{world.a}/bots/{bot_id}")
        again = await ana.delete(f"/api/companies/{world.a}/bots/{bot_id}")
    async with world.client(world.carl) as carl:
        as_client = await carl.get(f"/api/companies/{world.a}/bots")
    async with _bearer(world, token) as bot:
        after = await bot.get(f"/api/companies/{world.a}/members")
    assert listed == {
        "bots": [
            {
                "id": bot_id,
                "name": "Recon bot",
                "owner": {"id": str(world.ben.id), "name": "Ben Ortiz"},
            }
        ]
    }
    assert removed.status_code == 204
    assert again.status_code == 404
    assert as_client.status_code == 403
    assert after.status_code == 404


async def test_write_transactions_is_granted_by_accountants_for_their_companies(
    world: World,
) -> None:
    async with _session(world, world.ana.email) as ana:
        for_a = await ana.post(
            "/api/tokens",
            json={
                "name": "books",
                "scopes": ["write_transactions"],
                "company_ids": [str(world.a)],
            },
        )
        everywhere = await ana.post(
            "/api/tokens", json={"name": "books", "scopes": ["write_transactions"]}
        )
    async with _session(world, world.carl.email) as carl:
        as_client = await carl.post(
            "/api/tokens",
            json={
                "name": "books",
                "scopes": ["write_transactions"],
                "company_ids": [str(world.a)],
            },
        )
    assert for_a.status_code == 201
    # Ana is an accountant of both her companies, so all of them is fine.
    assert everywhere.status_code == 201
    assert as_client.status_code == 403


async def test_token_requests_are_validated(world: World) -> None:
    async with _session(world, world.ana.email) as ana:
        answers = [
            await ana.post("/api/tokens", json=body)
            for body in (
                {"name": "x", "scopes": ["admin"]},
                {"name": "x", "scopes": []},
                {"name": "", "scopes": ["read"]},
                {"name": "x", "scopes": ["read"], "expires_in_days": 0},
                {"name": "x", "scopes": ["read"], "user_id": str(uuid.uuid4())},
                {"name": "x", "scopes": ["read"], "company_ids": [str(world.b)]},
            )
        ]
    assert [(a.status_code, a.json()["error"].get("field")) for a in answers] == [
        (422, "scopes.0"),
        (422, "scopes"),
        (422, "name"),
        (422, "expires_in_days"),
        (404, None),
        (404, None),
    ]
