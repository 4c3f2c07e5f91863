"""A person's settings over HTTP, and the one-click unsubscribe link."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from server.core.mail_tokens import unsubscribe_token
from server.store.database import Database
from tests.world import World, post


DEFAULTS = {
    "email_notifications": True,
    "email_delay_secs": None,
    "default_email_delay_secs": 120,
    "time_zone": "America/Los_Angeles",
    "clock_24h": False,
}


async def test_settings_start_with_email_on_and_the_server_delay(
    world: World,
) -> None:
    async with world.client(world.carl) as carl:
        response = await carl.get("/api/me/settings")
    assert response.status_code == 200
    assert response.json() == {"settings": DEFAULTS}


async def test_put_changes_only_the_fields_given(world: World) -> None:
    async with world.client(world.carl) as carl:
        first = await carl.put(
            "/api/me/settings",
            json={"email_delay_secs": 600, "clock_24h": True},
        )
        second = await carl.put("/api/me/settings", json={"time_zone": "Asia/Kolkata"})
        read_back = await carl.get("/api/me/settings")
    assert first.status_code == second.status_code == 200
    expected = DEFAULTS | {
        "email_delay_secs": 600,
        "clock_24h": True,
        "time_zone": "Asia/Kolkata",
    }
    assert second.json() == {"settings": expected}
    assert read_back.json() == {"settings": expected}


async def test_null_returns_the_delay_to_the_server_default_and_the_zone_to_utc(
    world: World,
) -> None:
    async with world.client(world.carl) as carl:
        await carl.put("/api/me/settings", json={"email_delay_secs": 30})
        response = await carl.put(
            "/api/me/settings", json={"email_delay_secs": None, "time_zone": None}
        )
    assert response.json() == {"settings": DEFAULTS | {"time_zone": None}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email_delay_secs": 3601}, "email_delay_secs"),
        ({"email_delay_secs": -1}, "email_delay_secs"),
        ({"email_delay_secs": "60"}, "email_delay_secs"),
        ({"email_delay_secs": True}, "email_delay_secs"),
        ({"email_delay_secs": 1.5}, "email_delay_secs"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"time_zone": "localtime"}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"time_zone": "Europe/Paris" * 10}, "time_zone"),
        ({"email_notifications": None}, "email_notifications"),
        ({"email_notifications": "false"}, "email_notifications"),
        ({"clock_24h": 1}, "clock_24h"),
        ({"theme": "dark"}, "theme"),
    ],
)
async def test_put_refuses_bad_values_naming_the_field(
    world: World, body: dict[str, Any], field: str
) -> None:
    async with world.client(world.carl) as carl:
        response = await carl.put("/api/me/settings", json=body)
        unchanged = await carl.get("/api/me/settings")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == field
    assert unchanged.json() == {"settings": DEFAULTS}


async def test_settings_need_a_signed_in_caller(world: World) -> None:
    async with world.client() as anonymous:
        got = await anonymous.get("/api/me/settings")
        put = await anonymous.put("/api/me/settings", json={"clock_24h": True})
    assert got.status_code == put.status_code == 401


async def test_email_off_means_no_outbox_row(world: World, db: Database) -> None:
    async with world.client(world.carl) as carl:
        await carl.put("/api/me/settings", json={"email_notifications": False})
    async with world.client(world.ana) as ana:
        response = await post(
            ana, world, world.a, world.txa["bill"], "Hi", [world.carl, world.cora]
        )
    assert response.status_code == 201
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT user_id FROM mail_outbox")
    assert [r["user_id"] for r in rows] == [world.cora.id]


async def test_outbox_row_is_due_after_the_recipients_delay(
    world: World, db: Database
) -> None:
    async with world.client(world.cora) as cora:
        await cora.put("/api/me/settings", json={"email_delay_secs": 45})
    async with world.client(world.ana) as ana:
        response = await post(
            ana, world, world.a, world.txa["bill"], "Hi", [world.carl, world.cora]
        )
    message_id = response.json()["message"]["id"]
    async with db.connection() as conn:
        rows = await conn.fetch(
            """
            SELECT o.user_id, o.due_at - m.created_at AS delay, o.state
            FROM mail_outbox o JOIN messages m ON m.id = o.message_id
            WHERE o.message_id = $1
            """,
            message_id,
        )
    delays = {r["user_id"]: (r["delay"].total_seconds(), r["state"]) for r in rows}
    assert delays == {
        world.carl.id: (120.0, "pending"),
        world.cora.id: (45.0, "pending"),
    }


async def test_a_retried_post_writes_no_second_outbox_row(
    world: World, db: Database
) -> None:
    async with world.client(world.ana) as ana:
        for _ in range(2):
            await post(
                ana, world, world.a, world.txa["bill"], "Once", [world.carl], key="k"
            )
    async with db.connection() as conn:
        count = await conn.fetchval("SELECT count(*) FROM mail_outbox")
    assert count == 1


# One-click unsubscribe (RFC 8058)


async def email_on(db: Database, world: World) -> bool:
    async with db.connection() as conn:
        value: bool = await conn.fetchval(
            "SELECT email_notifications FROM users WHERE id = $1", world.carl.id
        )
    return value


async def test_one_click_post_turns_email_off_without_a_session(
    world: World, db: Database
) -> None:
    token = unsubscribe_token("test-secret", world.carl.id)
    async with httpx.AsyncClient(base_url=world.base_url) as mail_program:
        response = await mail_program.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        again = await mail_program.post(f"/unsubscribe/{token}")
    assert response.status_code == 200
    assert "Emails are off" in response.text
    assert again.status_code == 200
    assert await email_on(db, world) is False
    async with world.client(world.carl) as carl:
        settings = (await carl.get("/api/me/settings")).json()["settings"]
    assert settings["email_notifications"] is False


async def test_unsubscribe_get_only_asks(world: World, db: Database) -> None:
    token = unsubscribe_token("test-secret", world.carl.id)
    async with httpx.AsyncClient(base_url=world.base_url) as browser:
        response = await browser.get(f"/unsubscribe/{token}")
    assert response.status_code == 200
    assert '<form method="post">' in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert await email_on(db, world) is True


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        # Signed with another key.
        unsubscribe_token("another-secret", uuid.UUID(int=1)),
    ],
)
async def test_unsubscribe_refuses_tokens_that_are_not_ours(
    world: World, db: Database, token: str
) -> None:
    async with httpx.AsyncClient(base_url=world.base_url) as client:
        posted = await client.post(f"/unsubscribe/{token}")
        got = await client.get(f"/unsubscribe/{token}")
    assert posted.status_code == got.status_code == 404
    assert await email_on(db, world) is True


async def test_unsubscribe_refuses_someone_elses_mac(
    world: World, db: Database
) -> None:
    # Carl's id with Cora's signature: the pair does not match.
    cora_mac = unsubscribe_token("test-secret", world.cora.id).split(".")[1]
    forged = f"{world.carl.id.hex}.{cora_mac}"
    async with httpx.AsyncClient(base_url=world.base_url) as client:
        response = await client.post(f"/unsubscribe/{forged}")
    assert response.status_code == 404
    assert await email_on(db, world) is True
