"""Signing in and out with a password, cookies, tokens and their limits."""

from __future__ import annotations

import httpx

from server.store.database import Database
from tests.servers import PUBLIC_URL, RunningServer, make_settings
from tests.world import PASSWORD, World, post


SIGN_IN = "/api/auth/sign-in"
ORIGIN = {"Origin": PUBLIC_URL}


async def _sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        SIGN_IN, json={"email": email, "password": password}, headers=ORIGIN
    )


async def test_sign_in_sets_an_httponly_lax_session_cookie(world: World) -> None:
    async with world.client() as client:
        response = await _sign_in(client, "Ana.Moreau@Example.TEST")
        me = await client.get("/api/me")
    assert response.status_code == 200
    assert response.json()["user"]["id"] == str(world.ana.id)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("tickmark_session=tmk_")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie
    assert me.json()["user"] == {
        "id": str(world.ana.id),
        "name": "Ana Moreau",
        "kind": "person",
        "email": "ana.moreau@example.test",
        "time_zone": "Europe/Paris",
    }


async def test_cookie_is_secure_when_the_public_url_is_https(
    world: World, db: Database
) -> None:
    settings = make_settings(public_url="https://tickmark.test")
    async with (
        RunningServer(settings, db) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        response = await client.post(
            SIGN_IN,
            json={"email": world.ana.email, "password": PASSWORD},
            headers={"Origin": "https://tickmark.test"},
        )
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    world: World,
) -> None:
    async with world.client() as client:
        wrong = await _sign_in(client, world.ana.email, "not the password")
        unknown = await _sign_in(client, "nobody@example.test", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": {
                "code": "unauthenticated",
                "message": "The email or the password is wrong.",
            }
        }
    )
    assert "set-cookie" not in wrong.headers


async def test_sign_out_ends_the_session(world: World) -> None:
    async with world.client() as client:
        await _sign_in(client, world.carl.email)
        session = client.cookies["tickmark_session"]
        out = await client.post("/api/auth/sign-out", headers=ORIGIN)
        client.cookies.set("tickmark_session", session)
        after = await client.get("/api/me")
    assert out.status_code == 204
    assert after.status_code == 401


async def test_a_program_signs_in_for_a_bearer_token_and_out_again(
    world: World,
) -> None:
    async with world.client() as client:
        issued = await client.post(
            "/api/auth/token", json={"email": world.carl.email, "password": PASSWORD}
        )
        token = issued.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        me = await client.get("/api/me", headers=bearer)
        out = await client.post("/api/auth/sign-out", headers=bearer)
        after = await client.get("/api/me", headers=bearer)
    assert issued.status_code == 201
    assert token.startswith("tmk_")
    assert me.json()["user"]["id"] == str(world.carl.id)
    assert out.status_code == 204
    assert after.status_code == 401


async def test_an_expired_session_is_refused(world: World, db: Database) -> None:
    async with world.client() as client:
        await _sign_in(client, world.carl.email)
        async with db.connection() as conn:
            await conn.execute(
                "UPDATE credentials SET expires_at = now() - interval '1 second'"
                " WHERE kind = 'session'"
            )
        response = await client.get("/api/me")
    assert response.status_code == 401
    assert (
        response.json()["error"]["message"] == "Your session has ended; sign in again."
    )


async def test_failures_per_account_are_limited(world: World) -> None:
    async with world.client() as client:
        for _ in range(10):
            assert (await _sign_in(client, world.ana.email, "guess")).status_code == 401
        limited = await _sign_in(client, world.ana.email)
        other_account = await _sign_in(client, world.carl.email)
    # Even the right password waits once the account is locked.
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 15 * 60 + 1
    assert other_account.status_code == 200


async def test_failures_per_unknown_account_are_limited_the_same(world: World) -> None:
    async with world.client() as client:
        for _ in range(10):
            await _sign_in(client, "nobody@example.test", "guess")
        limited = await _sign_in(client, "nobody@example.test", "guess")
    assert limited.status_code == 429


async def test_failures_per_address_are_limited(world: World) -> None:
    async with world.client() as client:
        for i in range(50):
            response = await _sign_in(client, f"guess{i}@example.test", "guess")
            assert response.status_code == 401
        limited = await _sign_in(client, world.ana.email)
    assert limited.status_code == 429


async def test_cookie_requests_from_another_site_cannot_change_anything(
    world: World,
) -> None:
    async with world.client() as client:
        await _sign_in(client, world.ana.email)
        evil = await post(client, world, world.a, world.txa["bill"], "x", [world.carl])
        client.headers["Origin"] = "https://evil.example"
        evil = await post(client, world, world.a, world.txa["bill"], "x", [world.carl])
        read = await client.get("/api/companies")
        client.headers["Origin"] = PUBLIC_URL
        ours = await post(client, world, world.a, world.txa["bill"], "y", [world.carl])
    assert evil.status_code == 403
    assert evil.json()["error"]["code"] == "bad_origin"
    assert read.status_code == 200
    assert ours.status_code == 201


async def test_sign_in_from_another_site_is_refused(world: World) -> None:
    async with world.client() as client:
        response = await client.post(
            SIGN_IN,
            json={"email": world.ana.email, "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_failing_on_purpose_does_not_lock_the_owner_out(world: World) -> None:
    """Failures from one address lock that address out of the account,
    not the person who signs in from elsewhere."""

    def from_address(address: str) -> dict[str, str]:
        return ORIGIN | {"X-Forwarded-For": address}

    async with world.client() as client:
        for _ in range(10):
            await client.post(
                SIGN_IN,
                json={"email": world.ana.email, "password": "guess"},
                headers=from_address("203.0.113.7"),
            )
        attacker = await client.post(
            SIGN_IN,
            json={"email": world.ana.email, "password": PASSWORD},
            headers=from_address("203.0.113.7"),
        )
        owner = await client.post(
            SIGN_IN,
            json={"email": world.ana.email, "password": PASSWORD},
            headers=from_address("198.51.100.20"),
        )
    assert attacker.status_code == 429
    assert owner.status_code == 200


async def test_guessing_from_many_addresses_is_limited_per_account(
    world: World, db: Database
) -> None:
    # The 100 failures a distributed guesser would need, made directly.
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO sign_in_failures (key, failed_at) VALUES ($1, now())",
            [(f"account:{world.ana.email}",)] * 100,
        )
    async with world.client() as client:
        response = await _sign_in(client, world.ana.email)
    assert response.status_code == 429
