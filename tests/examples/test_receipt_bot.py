"""The example bot answers receipt questions once per conversation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from examples.receipt_bot import INSTRUCTIONS, State, run
from server.store.database import Database
from tests.servers import PUBLIC_URL, RunningServer, make_settings
from tests.timing import secs
from tests.world import PASSWORD, World, post


async def _bot_token(url: str, world: World) -> str:
    async with httpx.AsyncClient(base_url=url, headers={"Origin": PUBLIC_URL}) as ana:
        await ana.post(
            "/api/auth/sign-in", json={"email": world.ana.email, "password": PASSWORD}
        )
        bot = (
            await ana.post(f"/api/companies/{world.a}/bots", json={"name": "Receipts"})
        ).json()["bot"]
        issued = await ana.post(
            "/api/tokens",
            json={
                "name": "receipt bot",
                "user_id": bot["id"],
                "scopes": ["read", "post", "subscribe"],
            },
        )
    token: str = issued.json()["token"]
    return token


async def _thread(url: str, world: World) -> list[tuple[str, str]]:
    async with world.client(world.carl, base_url=url) as carl:
        page = (
            await carl.get(world.tx_url(world.a, world.txa["bill"]) + "/messages")
        ).json()
    return [(m["author"]["role"], m["body"]) for m in page["messages"]]


@contextlib.asynccontextmanager
async def _running_bot(
    url: str, token: str, state_path: Path
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run(url, token, State(state_path)))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _settle(url: str, world: World, count: int) -> list[tuple[str, str]]:
    for _ in range(int(secs(10) / 0.1)):
        thread = await _thread(url, world)
        if len(thread) >= count:
            await asyncio.sleep(secs(0.5))
            return await _thread(url, world)
        await asyncio.sleep(0.1)
    return await _thread(url, world)


async def test_the_bot_answers_a_clients_receipt_once_and_survives_a_restart(
    world: World, db: Database, tmp_path: Path
) -> None:
    state_path = tmp_path / "bot.json"
    async with RunningServer(make_settings(), db) as url:
        token = await _bot_token(url, world)
        async with world.client(world.carl, base_url=url) as carl:
            async with _running_bot(url, token, state_path):
                await asyncio.sleep(secs(0.5))
                await post(
                    carl,
                    world,
                    world.a,
                    world.txa["bill"],
                    "I'll attach the receipt tomorrow.",
                    [world.ana],
                )
                first = await _settle(url, world, 2)
                await post(
                    carl,
                    world,
                    world.a,
                    world.txa["bill"],
                    "Here is the receipt photo.",
                    [world.ana],
                )
                second = await _settle(url, world, 3)
            async with world.client(world.ana, base_url=url) as ana:
                await post(
                    ana, world, world.a, world.txa["bill"], "Receipt?", [world.carl]
                )
            # Restarted from its state file: nothing old is answered again.
            async with _running_bot(url, token, state_path):
                # Time to catch up on everything, and to answer wrongly.
                await asyncio.sleep(secs(1.5))
                third = await _settle(url, world, 4)
    assert first == [
        ("client", "I'll attach the receipt tomorrow."),
        ("bot", INSTRUCTIONS),
    ]
    assert second == [*first, ("client", "Here is the receipt photo.")]
    assert third == [*second, ("accountant", "Receipt?")]
