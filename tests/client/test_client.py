"""The Python client resumes across drops and restarts, once and in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from server.store.database import Database
from tests.chaos import ChaosProxy
from tests.servers import RunningServer, free_port, make_settings
from tests.timing import secs
from tests.world import World, post
from tickmark_client import AuthenticationError, Client, Delivery


async def _collect(client: Client, into: list[Delivery]) -> None:
    async for delivery in client.messages():
        into.append(delivery)


async def _until(
    received: list[Delivery], count: int, timeout_secs: float = 10
) -> None:
    for _ in range(int(secs(timeout_secs) / 0.05)):
        if len(received) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"got {len(received)} of {count}: {received}")


@contextlib.asynccontextmanager
async def _following(
    url: str, token: str, channel: str, since: int | None = None
) -> AsyncIterator[tuple[Client, list[Delivery]]]:
    client = Client(url, token, backoff_start_secs=0.05, backoff_max_secs=0.5)
    received: list[Delivery] = []
    collector = asyncio.create_task(_collect(client, received))
    try:
        async with client:
            await client.wait_connected()
            await client.subscribe(channel, since=since)
            yield client, received
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError, AuthenticationError):
            await collector


def _bodies(received: list[Delivery]) -> list[str]:
    return [d.message["body"] for d in received]


async def test_the_client_resumes_after_the_server_restarts(
    world: World, db: Database
) -> None:
    port = free_port()
    channel = f"transaction:{world.txa['bill']}"
    first = RunningServer(make_settings(), db, port=port)
    url = await first.__aenter__()
    async with (
        RunningServer(make_settings(), db) as other,
        world.client(world.ana, base_url=url) as ana,
        world.client(world.ana, base_url=other) as ana_elsewhere,
        _following(url, world.carl.token, channel, since=0) as (_, received),
    ):
        await post(ana, world, world.a, world.txa["bill"], "m1", [world.carl])
        await _until(received, 1)
        await first.__aexit__(None, None, None)
        # While the client's server is down, another one takes the posts.
        for i in (2, 3, 4):
            await post(
                ana_elsewhere, world, world.a, world.txa["bill"], f"m{i}", [world.carl]
            )
        async with RunningServer(make_settings(), db, port=port):
            await _until(received, 4)
            await post(ana, world, world.a, world.txa["bill"], "m5", [world.carl])
            await _until(received, 5)
            await asyncio.sleep(secs(0.3))
    assert _bodies(received) == ["m1", "m2", "m3", "m4", "m5"]
    assert [d.position for d in received] == [1, 2, 3, 4, 5]


async def test_the_client_resumes_after_a_dropped_link(
    world: World, db: Database
) -> None:
    channel = f"company:{world.a}"
    async with RunningServer(make_settings(), db) as url:
        proxy = ChaosProxy("127.0.0.1", int(url.rsplit(":", 1)[1]))
        proxy_port = await proxy.start()
        try:
            async with (
                world.client(world.ana, base_url=url) as ana,
                _following(
                    f"http://127.0.0.1:{proxy_port}", world.cora.token, channel, since=0
                ) as (client, received),
            ):
                await post(ana, world, world.a, world.txa["bill"], "m1", [world.carl])
                await _until(received, 1)
                proxy.cut()
                await post(
                    ana, world, world.a, world.txa["invoice"], "m2", [world.carl]
                )
                await post(ana, world, world.a, world.txa["bill"], "m3", [world.cora])
                await asyncio.sleep(secs(0.3))
                proxy.heal()
                await _until(received, 3)
                await post(ana, world, world.a, world.txa["bill"], "m4", [world.carl])
                await _until(received, 4)
                await asyncio.sleep(secs(0.3))
                positions = dict(client.positions)
        finally:
            await proxy.close()
    assert _bodies(received) == ["m1", "m2", "m3", "m4"]
    assert [d.position for d in received] == [1, 2, 3, 4]
    assert positions == {channel: 4}


async def test_the_client_pages_over_http_what_the_server_will_not_replay(
    world: World, db: Database
) -> None:
    channel = f"company:{world.a}"
    async with (
        RunningServer(make_settings(ws_replay_limit=2), db) as url,
        world.client(world.ana, base_url=url) as ana,
    ):
        for i in range(1, 8):
            await post(ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl])
        async with _following(url, world.cora.token, channel, since=1) as (_, received):
            await _until(received, 6)
            await post(ana, world, world.a, world.txa["bill"], "m8", [world.carl])
            await _until(received, 7)
            await asyncio.sleep(secs(0.3))
    assert _bodies(received) == [f"m{i}" for i in range(2, 9)]


async def test_a_post_is_acknowledged_once_even_when_sent_twice(
    world: World, db: Database
) -> None:
    async with (
        RunningServer(make_settings(), db) as url,
        Client(url, world.ana.token) as client,
    ):
        await client.wait_connected()
        sent = [
            await client.post(
                str(world.txa["bill"]),
                "From the Python client",
                [str(world.carl.id)],
                idempotency_key="py-1",
            )
            for _ in range(2)
        ]
    async with db.connection() as conn:
        stored = await conn.fetchval("SELECT count(*) FROM messages")
    assert sent[0]["seq"] == 1
    assert sent[0]["author"]["name"] == "Ana Moreau"
    assert sent[1]["id"] == sent[0]["id"]
    assert stored == 1


async def test_a_revoked_token_stops_the_client_for_good(
    world: World, db: Database
) -> None:
    async with RunningServer(make_settings(), db) as url:
        client = Client(url, world.carl.token, backoff_start_secs=0.05)
        async with client:
            await client.wait_connected()
            async with db.connection() as conn:
                await conn.execute(
                    "UPDATE credentials SET revoked_at = now() WHERE user_id = $1",
                    world.carl.id,
                )
            stopped: Exception | None = None
            try:
                async with asyncio.timeout(secs(5)):
                    async for _ in client.messages():
                        pass
            except AuthenticationError as error:
                stopped = error
    assert isinstance(stopped, AuthenticationError)
