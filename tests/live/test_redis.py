"""Several server processes sharing Redis, and Redis failing under them."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from server.broker.redis_pubsub import RedisBroker
from server.store.database import Database
from tests.chaos import ChaosProxy
from tests.servers import (
    RedisServer,
    RunningServer,
    ServerProcess,
    make_settings,
)
from tests.timing import secs
from tests.world import World, post
from tests.wsclient import WsClient


def tx(txn: uuid.UUID) -> str:
    return f"transaction:{txn}"


async def _subscribe(client: WsClient, channel: str) -> None:
    answer = await client.request(
        {"type": "subscribe", "id": channel, "channel": channel}
    )
    assert answer["type"] == "subscribed", answer


def _bodies(client: WsClient, channel: str) -> list[str]:
    return [m["body"] for m in client.messages(channel)]


@contextlib.asynccontextmanager
async def _processes(
    count: int, database_url: str, redis_url: str
) -> AsyncIterator[list[str]]:
    servers = [
        ServerProcess({"DATABASE_URL": database_url, "REDIS_URL": redis_url})
        for _ in range(count)
    ]
    try:
        yield [await s.start() for s in servers]
    finally:
        for server in servers:
            await server.stop()


async def test_a_client_on_one_process_receives_what_another_process_stored_once(
    world: World, db: Database, database_url: str, redis_server: RedisServer
) -> None:
    channel = tx(world.txa["bill"])
    async with _processes(2, database_url, redis_server.url) as (p1, p2):
        carl = await WsClient.open(p1, token=world.carl.token)
        cora = await WsClient.open(p1, token=world.cora.token)
        ana_tab = await WsClient.open(p2, token=world.ana.token)
        try:
            await _subscribe(carl, channel)
            await _subscribe(cora, f"company:{world.a}")
            await _subscribe(ana_tab, channel)
            async with world.client(world.ana, base_url=p2) as ana:
                for i in range(1, 6):
                    await post(
                        ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl]
                    )
            for client, name in (
                (carl, channel),
                (cora, f"company:{world.a}"),
                (ana_tab, channel),
            ):
                await client.wait_message(name, body="m5")
            badge = await carl.wait_type("badges", total=5)
            await asyncio.sleep(secs(0.5))
        finally:
            for client in (carl, cora, ana_tab):
                await client.close()
    expected = [f"m{i}" for i in range(1, 6)]
    assert _bodies(carl, channel) == expected
    assert _bodies(cora, f"company:{world.a}") == expected
    assert _bodies(ana_tab, channel) == expected
    assert badge["companies"] == [{"company_id": str(world.a), "unread": 5}]


async def test_stable_listeners_see_no_gap_while_others_churn(
    world: World, db: Database, database_url: str, redis_server: RedisServer
) -> None:
    channel = tx(world.txa["bill"])
    total = 120
    async with _processes(2, database_url, redis_server.url) as (p1, p2):
        stable = [
            await WsClient.open(url, token=person.token)
            for url, person in ((p1, world.carl), (p2, world.cora), (p1, world.ana))
        ]
        for client in stable:
            await _subscribe(client, channel)
        stop = asyncio.Event()

        async def churn(url: str) -> None:
            while not stop.is_set():
                client = await WsClient.open(url, token=world.cora.token)
                await _subscribe(client, channel)
                await asyncio.sleep(random.uniform(0.02, 0.1))
                await client.close()

        churners = [asyncio.create_task(churn(url)) for url in (p1, p2, p2)]
        try:
            async with world.client(world.ana, base_url=p2) as ana:
                for i in range(1, total + 1):
                    await post(
                        ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl]
                    )
            for client in stable:
                await client.wait_for(
                    lambda f: (
                        f.get("type") == "message" and f["message"]["seq"] == total
                    ),
                    timeout_secs=15,
                )
            await asyncio.sleep(secs(0.3))
        finally:
            stop.set()
            await asyncio.gather(*churners, return_exceptions=True)
            for client in stable:
                await client.close()
    for client in stable:
        assert [m["seq"] for m in client.messages(channel)] == list(range(1, total + 1))


@contextlib.asynccontextmanager
async def _pair_over_proxy(
    db: Database, redis: RedisServer
) -> AsyncIterator[tuple[str, str, ChaosProxy]]:
    """Two servers in this loop; the first reaches Redis through a proxy."""
    proxy = ChaosProxy("127.0.0.1", redis.port)
    port = await proxy.start()
    near = RedisBroker(f"redis://127.0.0.1:{port}/0", timeout_secs=0.5)
    far = RedisBroker(redis.url, timeout_secs=0.5)
    await near.start()
    await far.start()
    try:
        async with (
            RunningServer(make_settings(), db, broker=near) as p1,
            RunningServer(make_settings(), db, broker=far) as p2,
        ):
            yield p1, p2, proxy
    finally:
        await near.close()
        await far.close()
        await proxy.close()


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
async def test_messages_sent_while_redis_was_unreachable_arrive_once_in_order(
    world: World, db: Database, redis_server: RedisServer, fault: str
) -> None:
    channel = tx(world.txa["bill"])
    async with _pair_over_proxy(db, redis_server) as (p1, p2, proxy):
        carl = await WsClient.open(p1, token=world.carl.token)
        try:
            await _subscribe(carl, channel)
            async with world.client(world.ana, base_url=p2) as ana:
                await post(ana, world, world.a, world.txa["bill"], "m1", [world.carl])
                await carl.wait_for(lambda f: f.get("type") == "message")
                getattr(proxy, fault)()
                for i in (2, 3, 4):
                    await post(
                        ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl]
                    )
                await asyncio.sleep(secs(1.5))
                proxy.heal()
                if fault == "blackhole":
                    # The silent link is found dead by its health check and
                    # dropped; the proxy must also drop it to let a new one in.
                    proxy.cut()
                    proxy.heal()
                await carl.wait_for(
                    lambda f: f.get("type") == "message" and f["message"]["seq"] == 4,
                    timeout_secs=10,
                )
                await post(ana, world, world.a, world.txa["bill"], "m5", [world.carl])
                await carl.wait_for(
                    lambda f: f.get("type") == "message" and f["message"]["seq"] == 5
                )
            await asyncio.sleep(secs(0.3))
        finally:
            await carl.close()
    assert _bodies(carl, channel) == ["m1", "m2", "m3", "m4", "m5"]


async def test_a_redis_restart_loses_nothing_and_subscriptions_come_back(
    world: World, db: Database
) -> None:
    redis = RedisServer()
    redis.start()
    channel = tx(world.txa["bill"])
    p1_broker = RedisBroker(redis.url, timeout_secs=0.5)
    p2_broker = RedisBroker(redis.url, timeout_secs=0.5)
    await p1_broker.start()
    await p2_broker.start()
    try:
        async with (
            RunningServer(make_settings(), db, broker=p1_broker) as p1,
            RunningServer(make_settings(), db, broker=p2_broker) as p2,
        ):
            carl = await WsClient.open(p1, token=world.carl.token)
            ana_tab = await WsClient.open(p2, token=world.ana.token)
            try:
                await _subscribe(carl, channel)
                await _subscribe(ana_tab, channel)
                async with world.client(world.ana, base_url=p2) as ana:
                    await post(
                        ana, world, world.a, world.txa["bill"], "m1", [world.carl]
                    )
                    redis.stop()
                    await post(
                        ana, world, world.a, world.txa["bill"], "m2", [world.carl]
                    )
                    # The publishing process serves its own clients meanwhile.
                    await ana_tab.wait_for(
                        lambda f: (
                            f.get("type") == "message" and f["message"]["seq"] == 2
                        )
                    )
                    redis.start()
                    await carl.wait_for(
                        lambda f: (
                            f.get("type") == "message" and f["message"]["seq"] == 2
                        ),
                        timeout_secs=15,
                    )
                    await post(
                        ana, world, world.a, world.txa["bill"], "m3", [world.carl]
                    )
                    await carl.wait_for(
                        lambda f: (
                            f.get("type") == "message" and f["message"]["seq"] == 3
                        )
                    )
                client = aioredis.Redis.from_url(redis.url)
                try:
                    numsub = await client.pubsub_numsub("tm:" + channel)
                finally:
                    await client.aclose()
                await asyncio.sleep(secs(0.3))
            finally:
                await carl.close()
                await ana_tab.close()
    finally:
        await p1_broker.close()
        await p2_broker.close()
        redis.stop()
    assert _bodies(carl, channel) == ["m1", "m2", "m3"]
    assert _bodies(ana_tab, channel) == ["m1", "m2", "m3"]
    # One subscription per process, whatever the number of local clients.
    assert numsub == [(("tm:" + channel).encode(), 2)]


async def test_shutdown_closes_sockets_so_clients_know_to_come_back(
    world: World, database_url: str, redis_server: RedisServer
) -> None:
    server = ServerProcess(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "LOG_LEVEL": "INFO",
        }
    )
    url = await server.start()
    clients = [await WsClient.open(url, token=world.carl.token) for _ in range(5)]
    try:
        for client in clients:
            await client.wait_type("welcome")
        server.terminate()
        codes = [await client.wait_closed(timeout_secs=10) for client in clients]
        exit_code = await server.wait(timeout_secs=15)
    finally:
        for client in clients:
            await client.close()
        await server.stop()
    assert set(codes) <= {1001, 1012}
    assert exit_code == 0
    assert "Application shutdown complete." in server.log()


async def test_readiness_says_degraded_while_redis_is_unreachable(
    db: Database, redis_server: RedisServer
) -> None:
    proxy = ChaosProxy("127.0.0.1", redis_server.port)
    port = await proxy.start()
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", timeout_secs=0.5)
    await broker.start()
    try:
        async with (
            RunningServer(make_settings(), db, broker=broker) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            before = (await client.get("/readyz")).json()
            proxy.cut()
            await asyncio.sleep(secs(1.5))
            during = await client.get("/readyz")
            proxy.heal()
            for _ in range(100):
                after = (await client.get("/readyz")).json()
                if after["broker"] == "ok":
                    break
                await asyncio.sleep(0.1)
    finally:
        await broker.close()
        await proxy.close()
    assert before == {"status": "ready", "database": "ok", "broker": "ok"}
    assert during.status_code == 200
    assert during.json() == {
        "status": "degraded",
        "database": "ok",
        "broker": "unreachable",
    }
    assert after == before
