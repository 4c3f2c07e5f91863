"""The /ws protocol over real sockets, on the in-process broker and on Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import socket
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode

from server.store import companies, messages, presence
from server.store.database import Database
from tests.chaos import ChaosProxy
from tests.live.conftest import Start
from tests.servers import PUBLIC_URL
from tests.timing import secs
from tests.world import PASSWORD, World, post
from tests.wsclient import WsClient


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def tx(txn: uuid.UUID) -> str:
    return f"transaction:{txn}"


async def _subscribe(
    client: WsClient, channel: str, since: int | None = None
) -> dict[str, Any]:
    frame: dict[str, object] = {
        "type": "subscribe",
        "id": f"s-{channel}",
        "channel": channel,
    }
    if since is not None:
        frame["since"] = since
    return await client.request(frame)


async def test_welcome_names_the_user_and_carries_badges(
    world: World, serve: Start
) -> None:
    url = await serve()
    async with world.client(world.ana, base_url=url) as ana:
        await post(ana, world, world.a, world.txa["bill"], "waiting", [world.carl])
    carl = await WsClient.open(url, token=world.carl.token)
    try:
        welcome = await carl.wait_type("welcome")
    finally:
        await carl.close()
    assert welcome["user"] == {
        "id": str(world.carl.id),
        "name": "Carl Ibsen",
        "kind": "person",
    }
    assert welcome["badges"] == {
        "total": 1,
        "companies": [{"company_id": str(world.a), "unread": 1}],
    }
    assert welcome["limits"]["max_frame_bytes"] == 65536
    assert welcome["limits"]["replay_limit"] == 500


async def test_a_post_reaches_the_transaction_and_company_subscribers_once(
    world: World, serve: Start
) -> None:
    url = await serve()
    carl = await WsClient.open(url, token=world.carl.token)
    cora = await WsClient.open(url, token=world.cora.token)
    try:
        answer = await _subscribe(carl, tx(world.txa["bill"]))
        await _subscribe(cora, f"company:{world.a}")
        async with world.client(world.ana, base_url=url) as ana:
            posted = await post(
                ana, world, world.a, world.txa["bill"], "Hi", [world.carl]
            )
        stored = posted.json()["message"]
        await carl.wait_type("message")
        await cora.wait_type("message")
        await asyncio.sleep(secs(0.3))
    finally:
        await carl.close()
        await cora.close()
    assert answer == {
        "type": "subscribed",
        "id": f"s-{tx(world.txa['bill'])}",
        "channel": tx(world.txa["bill"]),
        "company_id": str(world.a),
        "last_seq": 0,
    }
    assert carl.messages(tx(world.txa["bill"])) == [stored]
    assert cora.messages(f"company:{world.a}") == [stored]


async def test_post_over_the_socket_is_acknowledged_with_id_and_seq(
    world: World, serve: Start, db: Database
) -> None:
    url = await serve()
    ana = await WsClient.open(url, token=world.ana.token)
    carl = await WsClient.open(url, token=world.carl.token)
    try:
        await _subscribe(carl, tx(world.txa["bill"]))
        frame = {
            "type": "post",
            "id": "p1",
            "transaction_id": str(world.txa["bill"]),
            "body": "From the socket",
            "recipients": [str(world.carl.id)],
            "idempotency_key": "socket-1",
        }
        ack = await ana.request(frame)
        again = await ana.request(frame | {"id": "p2"})
        await carl.wait_type("message")
        await asyncio.sleep(secs(0.3))
    finally:
        await ana.close()
        await carl.close()
    assert ack["type"] == "ack"
    assert ack["created"] is True
    assert ack["message"]["seq"] == 1
    assert ack["message"]["body"] == "From the socket"
    assert again["created"] is False
    assert again["message"]["id"] == ack["message"]["id"]
    assert [m["id"] for m in carl.messages(tx(world.txa["bill"]))] == [
        ack["message"]["id"]
    ]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 1


async def test_badges_change_live_and_reading_in_one_tab_clears_the_others(
    world: World, serve: Start
) -> None:
    url = await serve()
    tab1 = await WsClient.open(url, token=world.carl.token)
    tab2 = await WsClient.open(url, token=world.carl.token)
    try:
        await tab1.wait_type("welcome")
        await tab2.wait_type("welcome")
        async with world.client(world.ana, base_url=url) as ana:
            for body in ("one", "two"):
                await post(ana, world, world.a, world.txa["bill"], body, [world.carl])
        for tab in (tab1, tab2):
            await tab.wait_type("badges", total=2)
        ack = await tab1.request(
            {
                "type": "read",
                "id": "r1",
                "transaction_id": str(world.txa["bill"]),
                "seq": 2,
            }
        )
        cleared = [await tab.wait_type("badges", total=0) for tab in (tab1, tab2)]
        read = await tab2.wait_type("read")
    finally:
        await tab1.close()
        await tab2.close()
    assert ack == {"type": "ack", "id": "r1", "last_read_seq": 2}
    assert cleared[1] == {
        "type": "badges",
        "total": 0,
        "companies": [{"company_id": str(world.a), "unread": 0}],
    }
    assert read == {
        "type": "read",
        "company_id": str(world.a),
        "transaction_id": str(world.txa["bill"]),
        "last_read_seq": 2,
    }


async def test_messages_posted_while_away_are_replayed_once_in_order(
    world: World, serve: Start
) -> None:
    url = await serve()
    channel = tx(world.txa["bill"])
    async with world.client(world.ana, base_url=url) as ana:
        carl = await WsClient.open(url, token=world.carl.token)
        await _subscribe(carl, channel)
        await post(ana, world, world.a, world.txa["bill"], "m1", [world.carl])
        await carl.wait_type("message")
        await carl.close()
        for i in range(2, 7):
            await post(ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl])
        carl = await WsClient.open(url, token=world.carl.token)
        try:
            answer = await _subscribe(carl, channel, since=1)
            await post(ana, world, world.a, world.txa["bill"], "m7", [world.carl])
            await carl.wait_for(
                lambda f: f.get("type") == "message" and f["message"]["seq"] == 7
            )
            await asyncio.sleep(secs(0.3))
        finally:
            await carl.close()
    assert answer["recovered"] is True
    assert answer["replayed"] == 5
    assert answer["last_seq"] == 6
    assert [m["body"] for m in carl.messages(channel)] == [f"m{i}" for i in range(2, 8)]
    assert [m["seq"] for m in carl.messages(channel)] == list(range(2, 8))


async def test_a_gap_larger_than_the_replay_limit_is_said_not_truncated(
    world: World, serve: Start
) -> None:
    url = await serve(ws_replay_limit=3)
    channel = tx(world.txa["bill"])
    async with world.client(world.ana, base_url=url) as ana:
        for i in range(1, 6):
            await post(ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl])
        carl = await WsClient.open(url, token=world.carl.token)
        try:
            answer = await _subscribe(carl, channel, since=0)
            await post(ana, world, world.a, world.txa["bill"], "m6", [world.carl])
            await carl.wait_type("message")
            await asyncio.sleep(secs(0.3))
        finally:
            await carl.close()
    assert answer["recovered"] is False
    assert answer["replayed"] == 0
    assert answer["last_seq"] == 5
    assert [m["body"] for m in carl.messages(channel)] == ["m6"]


async def test_news_lost_on_the_way_is_read_from_the_database(
    world: World, serve: Start, db: Database
) -> None:
    """A message stored without news (as when Redis drops it) still arrives,
    in order, as soon as the next one shows the gap."""
    url = await serve()
    channel = tx(world.txa["bill"])
    carl = await WsClient.open(url, token=world.carl.token)
    try:
        await _subscribe(carl, channel)
        async with world.client(world.ana, base_url=url) as ana:
            await post(ana, world, world.a, world.txa["bill"], "m1", [world.carl])
            await carl.wait_type("message")
            async with db.transaction() as conn:
                await messages.insert(
                    conn,
                    transaction_id=world.txa["bill"],
                    company_id=world.a,
                    author_id=world.ana.id,
                    author_role="accountant",
                    body="m2 (no news)",
                    recipient_ids=[world.carl.id],
                    idempotency_key="silent",
                    created_at=_now(),
                )
            await post(ana, world, world.a, world.txa["bill"], "m3", [world.carl])
        await carl.wait_for(
            lambda f: f.get("type") == "message" and f["message"]["seq"] == 3
        )
        await asyncio.sleep(secs(0.3))
    finally:
        await carl.close()
    assert [m["body"] for m in carl.messages(channel)] == ["m1", "m2 (no news)", "m3"]


async def test_company_channel_numbers_and_replays_by_company_seq(
    world: World, serve: Start
) -> None:
    url = await serve()
    channel = f"company:{world.a}"
    async with world.client(world.ana, base_url=url) as ana:
        await post(ana, world, world.a, world.txa["bill"], "c1", [world.carl])
        await post(ana, world, world.a, world.txa["invoice"], "c2", [world.cora])
        await post(ana, world, world.a, world.txa["bill"], "c3", [world.carl])
        bot = await WsClient.open(url, token=world.cora.token)
        try:
            answer = await _subscribe(bot, channel, since=1)
            await post(ana, world, world.a, world.txa["invoice"], "c4", [world.cora])
            await bot.wait_for(
                lambda f: f.get("type") == "message" and f["message"]["body"] == "c4"
            )
        finally:
            await bot.close()
    assert answer["recovered"] is True
    assert answer["replayed"] == 2
    assert [(m["body"], m["company_seq"]) for m in bot.messages(channel)] == [
        ("c2", 2),
        ("c3", 3),
        ("c4", 4),
    ]


async def test_subscriptions_to_what_is_not_yours_are_refused_and_the_socket_stays(
    world: World, serve: Start, db: Database
) -> None:
    url = await serve()
    async with db.transaction() as conn:
        await companies.remove_member(conn, world.a, world.cora.id)
    refusals = [
        # (who, channel)
        (world.ben, f"company:{world.a}"),
        (world.ben, tx(world.txa["bill"])),
        (world.ben, f"user:{world.carl.id}"),
        (world.cora, f"company:{world.a}"),
        (world.cora, tx(world.txa["bill"])),
        (world.carl, f"company:{world.b}"),
        (world.carl, tx(world.txb["bill"])),
        (world.carl, f"company:{uuid.uuid4()}"),
        (world.carl, tx(uuid.uuid4())),
    ]
    answers = []
    for person, channel in refusals:
        client = await WsClient.open(url, token=person.token)
        try:
            answers.append(await _subscribe(client, channel))
            answers.append(await client.request({"type": "ping", "id": "still-there"}))
        finally:
            await client.close()
    for i, (_, channel) in enumerate(refusals):
        refused, pong = answers[2 * i], answers[2 * i + 1]
        assert refused["type"] == "error", channel
        assert refused["code"] == "not_found", channel
        assert refused["channel"] == channel
        assert refused["message"] == "No such channel, or not yours to see.", channel
        assert pong == {"type": "pong", "id": "still-there"}


@pytest.mark.parametrize(
    "name",
    [
        "transaction:*",
        "company:",
        "company:NOT-A-UUID",
        "tx:00000000-0000-0000-0000-000000000000",
        "Company:00000000-0000-0000-0000-000000000000",
        "company:00000000-0000-0000-0000-00000000000A",
        "company:00000000-0000-0000-0000-000000000000:extra",
        "company:*:00000000-0000-0000-0000-000000000000",
    ],
)
async def test_channel_names_are_parsed_strictly(
    world: World, serve: Start, name: str
) -> None:
    url = await serve()
    client = await WsClient.open(url, token=world.carl.token)
    try:
        answer = await _subscribe(client, name)
    finally:
        await client.close()
    assert answer["type"] == "error"
    assert answer["code"] == "invalid"
    assert answer["field"] == "channel"


async def _cookie(url: str, world: World) -> str:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/api/auth/sign-in",
            json={"email": world.carl.email, "password": PASSWORD},
            headers={"Origin": PUBLIC_URL},
        )
    return response.cookies["tickmark_session"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://tickmark.test.evil.example",
        "https://tickmark.test",
        None,
    ],
)
async def test_a_cookie_from_a_foreign_origin_cannot_open_a_socket(
    world: World, serve: Start, origin: str | None
) -> None:
    url = await serve()
    cookie = await _cookie(url, world)
    with pytest.raises(Exception) as refused:
        await WsClient.open(url, cookie=cookie, origin=origin)
    assert "403" in str(refused.value)


async def test_a_cookie_from_our_origin_opens_a_socket(
    world: World, serve: Start
) -> None:
    url = await serve()
    cookie = await _cookie(url, world)
    client = await WsClient.open(url, cookie=cookie, origin=PUBLIC_URL)
    try:
        welcome = await client.wait_type("welcome")
    finally:
        await client.close()
    assert welcome["user"]["id"] == str(world.carl.id)


async def test_a_token_may_come_in_the_first_frame(world: World, serve: Start) -> None:
    url = await serve()
    client = await WsClient.open(url)
    try:
        await client.send({"type": "auth", "token": world.carl.token})
        welcome = await client.wait_type("welcome")
    finally:
        await client.close()
    assert welcome["user"]["id"] == str(world.carl.id)


async def test_a_bad_first_frame_token_closes_with_4401(
    world: World, serve: Start
) -> None:
    url = await serve()
    client = await WsClient.open(url)
    await client.send({"type": "auth", "token": "tmk_wrong"})
    code = await client.wait_closed()
    await client.close()
    assert code == 4401
    assert client.of_type("error")[0]["code"] == "unauthenticated"


async def test_silence_after_connecting_closes_with_4408(
    world: World, serve: Start
) -> None:
    url = await serve(ws_auth_timeout_secs=0.5)
    client = await WsClient.open(url)
    code = await client.wait_closed()
    await client.close()
    assert code == 4408


async def test_signing_out_elsewhere_closes_the_socket(
    world: World, serve: Start
) -> None:
    url = await serve()
    async with httpx.AsyncClient(base_url=url) as http:
        token = (
            await http.post(
                "/api/auth/token",
                json={"email": world.carl.email, "password": PASSWORD},
            )
        ).json()["token"]
        client = await WsClient.open(url, token=token)
        await client.wait_type("welcome")
        await http.post(
            "/api/auth/sign-out", headers={"Authorization": f"Bearer {token}"}
        )
        code = await client.wait_closed(timeout_secs=2)
    await client.close()
    assert code == 4401


async def test_a_removed_member_loses_the_company_channels_within_seconds(
    world: World, serve: Start, db: Database
) -> None:
    url = await serve()
    carl = await WsClient.open(url, token=world.carl.token)
    try:
        await _subscribe(carl, f"company:{world.a}")
        await _subscribe(carl, tx(world.txa["bill"]))
        async with db.transaction() as conn:
            await companies.remove_member(conn, world.a, world.carl.id)
        first = await carl.wait_type("unsubscribed", timeout_secs=3)
        await carl.wait_for(
            lambda f: f.get("type") == "unsubscribed" and f is not first, timeout_secs=3
        )
        async with world.client(world.ana, base_url=url) as ana:
            await post(ana, world, world.a, world.txa["bill"], "secret", [world.cora])
        await asyncio.sleep(secs(0.5))
    finally:
        await carl.close()
    dropped = {f["channel"]: f["reason"] for f in carl.of_type("unsubscribed")}
    assert dropped == {
        f"company:{world.a}": "access_revoked",
        tx(world.txa["bill"]): "access_revoked",
    }
    assert carl.of_type("message") == []


async def test_an_expired_session_closes_with_4001(
    world: World, serve: Start, db: Database
) -> None:
    url = await serve(ws_credential_check_secs=0.5)
    carl = await WsClient.open(url, token=world.carl.token)
    await carl.wait_type("welcome")
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE credentials SET expires_at = now() WHERE user_id = $1",
            world.carl.id,
        )
    code = await carl.wait_closed(timeout_secs=3)
    await carl.close()
    assert code == 4001


async def test_a_malformed_frame_gets_an_error_and_the_socket_stays_usable(
    world: World, serve: Start
) -> None:
    url = await serve()
    client = await WsClient.open(url, token=world.carl.token)
    try:
        await client.connection.send("{not json")
        await client.send({"type": "shout"})
        await client.send({"type": "subscribe", "channel": 5})
        await client.send({"type": "read", "transaction_id": "x", "seq": 1})
        pong = await client.request({"type": "ping", "id": "after"})
    finally:
        await client.close()
    errors = [(f["code"], f.get("field")) for f in client.of_type("error")]
    assert errors == [
        ("malformed_json", None),
        ("invalid", "type"),
        ("invalid", "channel"),
        ("invalid", "transaction_id"),
    ]
    assert pong == {"type": "pong", "id": "after"}


async def test_a_frame_over_the_limit_closes_with_1009(
    world: World, serve: Start
) -> None:
    url = await serve()
    client = await WsClient.open(url, token=world.carl.token)
    await client.wait_type("welcome")
    await client.connection.send('{"type":"ping","id":"' + "x" * 70_000 + '"}')
    code = await client.wait_closed()
    await client.close()
    assert code == 1009


async def test_too_many_frames_are_refused_then_the_socket_is_closed(
    world: World, serve: Start
) -> None:
    url = await serve(ws_frames_per_sec=5)
    client = await WsClient.open(url, token=world.carl.token)
    await client.wait_type("welcome")
    for i in range(80):
        await client.send({"type": "ping", "id": str(i)})
    code = await client.wait_closed()
    await client.close()
    pongs = [int(p["id"]) for p in client.of_type("pong")]
    dropped = [e["id"] for e in client.of_type("error")]
    assert len(pongs) >= 10
    assert client.of_type("error")[0]["code"] == "rate_limited"
    # Each dropped frame is named by its id: the pings not answered.
    assert dropped == [str(i) for i in range(80) if i not in pongs][: len(dropped)]
    assert code == 4029


async def test_connections_per_user_are_limited(world: World, serve: Start) -> None:
    url = await serve(ws_max_connections_per_user=2)
    clients = [await WsClient.open(url, token=world.carl.token) for _ in range(3)]
    try:
        await clients[0].wait_type("welcome")
        await clients[1].wait_type("welcome")
        code = await clients[2].wait_closed()
    finally:
        for client in clients:
            await client.close()
    assert code == 4013


async def test_subscriptions_per_connection_are_limited(
    world: World, serve: Start
) -> None:
    url = await serve(ws_max_subscriptions=2)
    client = await WsClient.open(url, token=world.ana.token)
    try:
        answers = [
            await _subscribe(client, tx(world.txa[kind]))
            for kind in ("bill", "invoice", "customer_payment")
        ]
    finally:
        await client.close()
    assert [a["type"] for a in answers] == ["subscribed", "subscribed", "error"]


POSTS = 400


async def test_a_client_that_stops_reading_is_closed_as_slow(
    world: World, serve: Start
) -> None:
    url = await serve(ws_send_queue_frames=16)
    channel = f"company:{world.a}"
    normal = await WsClient.open(url, token=world.cora.token)
    stuck = await WsClient.open(url, token=world.carl.token, receive_buffer_bytes=4096)
    try:
        await _subscribe(normal, channel)
        await _subscribe(stuck, channel)
        await stuck.pause()
        # More than the kernel buffers on loopback hold (4 MiB at most here),
        # so that frames pile up in the server's own queue.
        body = "x" * 16000
        async with world.client(world.ana, base_url=url) as ana:
            for _ in range(POSTS):
                await post(ana, world, world.a, world.txa["bill"], body, [world.carl])
        # The reader who keeps up gets everything, undelayed by the other.
        await normal.wait_for(
            lambda f: (
                f.get("type") == "message" and f["message"]["company_seq"] == POSTS
            ),
            timeout_secs=20,
        )
        stuck.resume()
        code = await stuck.wait_closed(timeout_secs=20)
    finally:
        await normal.close()
        await stuck.close()
    assert code == 4008
    assert len(stuck.messages(channel)) < POSTS
    assert len(normal.messages(channel)) == POSTS


async def test_typing_reaches_the_other_viewers(world: World, serve: Start) -> None:
    url = await serve()
    ana = await WsClient.open(url, token=world.ana.token)
    carl = await WsClient.open(url, token=world.carl.token)
    try:
        await _subscribe(ana, tx(world.txa["bill"]))
        await _subscribe(carl, tx(world.txa["bill"]))
        await carl.send({"type": "typing", "transaction_id": str(world.txa["bill"])})
        typing = await ana.wait_type("typing")
        pong = await carl.request({"type": "ping", "id": "x"})
        await carl.send({"type": "typing", "transaction_id": str(world.txa["invoice"])})
        error = await carl.wait_type("error")
    finally:
        await ana.close()
        await carl.close()
    assert typing == {
        "type": "typing",
        "channel": tx(world.txa["bill"]),
        "user": {"id": str(world.carl.id), "name": "Carl Ibsen"},
    }
    assert pong["type"] == "pong"
    assert error["field"] == "transaction_id"


async def test_viewers_of_a_transaction_are_listed_live(
    world: World, serve: Start
) -> None:
    url = await serve()
    ana = await WsClient.open(url, token=world.ana.token)
    carl = await WsClient.open(url, token=world.carl.token)
    channel = tx(world.txa["bill"])
    try:
        await _subscribe(ana, channel)
        await _subscribe(carl, channel)
        both = await ana.wait_for(
            lambda f: f.get("type") == "viewers" and len(f["viewers"]) == 2
        )
        await carl.close()
        alone = await ana.wait_for(
            lambda f: f.get("type") == "viewers" and len(f["viewers"]) == 1,
            timeout_secs=5,
        )
    finally:
        await ana.close()
        await carl.close()
    assert both["viewers"] == [
        {"id": str(world.ana.id), "name": "Ana Moreau"},
        {"id": str(world.carl.id), "name": "Carl Ibsen"},
    ]
    assert alone["viewers"] == [{"id": str(world.ana.id), "name": "Ana Moreau"}]
    assert (both["count"], alone["count"]) == (2, 1)


async def test_presence_follows_attention_not_the_open_socket(
    world: World, serve: Start, db: Database
) -> None:
    url = await serve()
    seen: list[bool] = []

    async def active() -> bool:
        async with db.connection() as conn:
            found = await presence.users_active(conn, [world.carl.id], _now())
        seen.append(world.carl.id in found)
        return seen[-1]

    async def until(expected: bool) -> None:
        for _ in range(int(secs(40))):
            if await active() is expected:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"presence stayed {not expected}")

    carl = await WsClient.open(url, token=world.carl.token)
    try:
        await carl.wait_type("welcome")
        await until(True)
        await carl.send({"type": "presence", "state": "background"})
        await until(False)
        await carl.send({"type": "presence", "state": "active"})
        await until(True)
    finally:
        await carl.close()

    async def rows() -> int:
        async with db.connection() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM presence WHERE user_id = $1", world.carl.id
            )
        return count

    for _ in range(int(secs(40))):
        if await rows() == 0:
            break
        await asyncio.sleep(0.1)
    assert await rows() == 0


async def test_a_full_server_asks_new_connections_to_come_back_later(
    world: World, serve: Start
) -> None:
    url = await serve(ws_max_connections=1)
    first = await WsClient.open(url, token=world.carl.token)
    try:
        await first.wait_type("welcome")
        with pytest.raises(InvalidStatus) as refused:
            await WsClient.open(url, token=world.ana.token)
    finally:
        await first.close()
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "5"


async def test_a_body_over_the_limit_is_refused_over_the_socket_too(
    world: World, serve: Start, db: Database
) -> None:
    url = await serve()
    ana = await WsClient.open(url, token=world.ana.token)
    frame = {
        "type": "post",
        "transaction_id": str(world.txa["bill"]),
        "recipients": [str(world.carl.id)],
    }
    try:
        at_limit = await ana.request(
            frame | {"id": "a", "body": "é" * 8192, "idempotency_key": "a"}
        )
        over = await ana.request(
            frame | {"id": "b", "body": "é" * 8192 + "x", "idempotency_key": "b"}
        )
    finally:
        await ana.close()
    assert at_limit["type"] == "ack"
    assert at_limit["message"]["body"] == "é" * 8192
    assert over["type"] == "error"
    assert over["field"] == "body"
    assert over["message"] == (
        "The message is 16385 bytes long; the limit is 16384 bytes of UTF-8."
    )
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 1


async def test_a_peer_that_vanishes_is_found_by_heartbeats_and_forgotten(
    world: World, serve: Start, db: Database
) -> None:
    url = await serve(ws_ping_interval_secs=0.3, ws_ping_timeout_secs=0.3)
    proxy = ChaosProxy("127.0.0.1", int(url.rsplit(":", 1)[1]))
    port = await proxy.start()
    carl = await WsClient.open(f"http://127.0.0.1:{port}", token=world.carl.token)

    async def rows() -> int:
        async with db.connection() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM presence WHERE user_id = $1", world.carl.id
            )
        return count

    try:
        await carl.wait_type("welcome")
        for _ in range(int(secs(40))):
            if await rows() == 1:
                break
            await asyncio.sleep(0.1)
        assert await rows() == 1
        proxy.blackhole()
        for _ in range(int(secs(60))):
            if await rows() == 0:
                break
            await asyncio.sleep(0.1)
        assert await rows() == 0
    finally:
        await carl.close()
        await proxy.close()


async def test_a_signed_out_token_cannot_open_a_socket(
    world: World, serve: Start, db: Database
) -> None:
    url = await serve()
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE credentials SET revoked_at = now() WHERE user_id = $1",
            world.carl.id,
        )
    with pytest.raises(InvalidStatus) as refused:
        await WsClient.open(url, token=world.carl.token)
    assert refused.value.response.status_code == 401


async def test_a_bot_token_without_a_grant_for_the_company_is_refused(
    world: World, serve: Start, db: Database
) -> None:
    from server.core import accounts
    from server.store import users

    url = await serve()
    async with db.transaction() as conn:
        ana = await users.by_id(conn, world.ana.id)
        assert ana is not None
        only_c = await accounts.issue_token(
            conn,
            ana,
            name="bot for C only",
            scopes=frozenset({"read", "subscribe"}),
            company_ids=frozenset({world.c}),
            expires_at=None,
        )
    bot = await WsClient.open(url, token=only_c.secret)
    try:
        company = await _subscribe(bot, f"company:{world.a}")
        transaction = await _subscribe(bot, tx(world.txa["bill"]))
        allowed = await _subscribe(bot, f"company:{world.c}")
        welcome = await bot.wait_type("welcome")
    finally:
        await bot.close()
    assert (company["type"], company["code"]) == ("error", "not_found")
    assert (transaction["type"], transaction["code"]) == ("error", "not_found")
    assert allowed["type"] == "subscribed"
    # Its badges show only the company it was granted.
    assert welcome["badges"] == {
        "total": 0,
        "companies": [{"company_id": str(world.c), "unread": 0}],
    }


async def test_a_refused_frame_is_answered_with_its_own_id(
    world: World, serve: Start
) -> None:
    url = await serve()
    client = await WsClient.open(url, token=world.ana.token)
    try:
        answer = await client.request(
            {
                "type": "post",
                "id": "p9",
                "transaction_id": str(world.txa["bill"]),
                "body": "hello",
                "recipients": "everyone",
                "idempotency_key": "k",
            }
        )
    finally:
        await client.close()
    assert answer["type"] == "error"
    assert answer["id"] == "p9"
    assert answer["field"] == "recipients"


async def test_a_position_past_the_newest_message_is_refused(
    world: World, serve: Start
) -> None:
    url = await serve()
    async with world.client(world.ana, base_url=url) as ana:
        await post(ana, world, world.a, world.txa["bill"], "m1", [world.carl])
    carl = await WsClient.open(url, token=world.carl.token)
    try:
        answer = await _subscribe(carl, tx(world.txa["bill"]), since=5)
        again = await carl.request(
            {
                "type": "subscribe",
                "id": "again",
                "channel": tx(world.txa["bill"]),
                "since": 1,
            }
        )
    finally:
        await carl.close()
    assert answer["type"] == "error"
    assert answer["field"] == "since"
    assert answer["message"] == (
        "since (5) is past the newest message (1); load the history again and "
        "subscribe without it."
    )
    assert again["type"] == "subscribed"


async def test_a_binary_or_garbled_first_frame_is_refused_with_4401(
    world: World, serve: Start
) -> None:
    url = await serve()
    codes = []
    for first in (b"\x00\x01", "{not json", '{"type": "ping"}'):
        client = await WsClient.open(url)
        await client.connection.send(first)
        codes.append(await client.wait_closed())
        await client.close()
    assert codes == [4401, 4401, 4401]


async def test_rate_limit_errors_say_when_to_try_again(
    world: World, serve: Start
) -> None:
    url = await serve(ws_frames_per_sec=2)
    client = await WsClient.open(url, token=world.carl.token)
    try:
        await client.wait_type("welcome")
        for i in range(8):
            await client.connection.send(b"binary frames count too" if i % 2 else "{}")
        error = await client.wait_type("error", code="rate_limited")
    finally:
        await client.close()
    assert error["retry_after_secs"] == 1


async def test_metrics_count_what_was_published_and_delivered(
    world: World, serve: Start
) -> None:
    url = await serve()
    carl = await WsClient.open(url, token=world.carl.token)
    try:
        await _subscribe(carl, tx(world.txa["bill"]))
        await _subscribe(carl, f"company:{world.a}")
        async with world.client(world.ana, base_url=url) as ana:
            await post(ana, world, world.a, world.txa["bill"], "counted", [world.carl])
        await carl.wait_type("badges", total=1)
        async with httpx.AsyncClient(base_url=url) as scraper:
            text = (await scraper.get("/metrics")).text
    finally:
        await carl.close()
    assert "tickmark_messages_published_total 1.0" in text
    assert "tickmark_ws_deliveries_total 2.0" in text
    assert "tickmark_ws_connections 1.0" in text
    assert "tickmark_ws_subscriptions 2.0" in text


async def test_revoking_a_bots_token_closes_its_socket(
    world: World, serve: Start
) -> None:
    url = await serve()
    async with world.client(world.ana, base_url=url) as ana:
        bot = (
            await ana.post(f"/api/companies/{world.a}/bots", json={"name": "Watcher"})
        ).json()["bot"]
        made = (
            await ana.post(
                "/api/tokens",
                json={
                    "name": "w",
                    "user_id": bot["id"],
                    "scopes": ["read", "subscribe"],
                },
            )
        ).json()
        client = await WsClient.open(url, token=made["token"])
        try:
            await _subscribe(client, f"company:{world.a}")
            revoked = await ana.delete(f"/api/tokens/{made['id']}")
            code = await client.wait_closed(timeout_secs=2)
        finally:
            await client.close()
    assert revoked.status_code == 204
    assert code == 4401


async def test_a_client_that_pauses_then_reads_again_gets_everything_in_order(
    world: World, serve: Start
) -> None:
    """Writes the transport could not take at once are finished later, in
    order, with nothing lost or doubled."""
    url = await serve()
    channel = f"company:{world.a}"
    paused = await WsClient.open(url, token=world.carl.token, receive_buffer_bytes=4096)
    try:
        await _subscribe(paused, channel)
        await paused.pause()
        body = "y" * 16000
        async with world.client(world.ana, base_url=url) as ana:
            for _ in range(150):
                await post(ana, world, world.a, world.txa["bill"], body, [world.carl])
        paused.resume()
        await paused.wait_message(channel, company_seq=150, timeout_secs=20)
        await asyncio.sleep(secs(0.3))
        still_open = paused.closed_code is None
    finally:
        await paused.close()
    assert still_open
    assert [m["company_seq"] for m in paused.messages(channel)] == list(range(1, 151))


async def test_posts_in_flight_together_keep_each_threads_order(
    world: World, serve: Start
) -> None:
    url = await serve(ws_frames_per_sec=100)
    ana = await WsClient.open(url, token=world.ana.token)
    sent: dict[str, list[str]] = {"bill": [], "invoice": []}
    try:
        await ana.wait_type("welcome")
        for i in range(24):
            kind = "bill" if i % 3 else "invoice"
            sent[kind].append(f"p{i}")
            await ana.send(
                {
                    "type": "post",
                    "id": f"p{i}",
                    "transaction_id": str(world.txa[kind]),
                    "body": f"p{i}",
                    "recipients": [str(world.carl.id)],
                    "idempotency_key": f"burst-{i}",
                }
            )
        for i in range(24):
            await ana.wait_type("ack", id=f"p{i}", timeout_secs=10)
    finally:
        await ana.close()
    acks = {f["id"]: f for f in ana.of_type("ack")}
    assert len(acks) == 24
    for ids in sent.values():
        # Each thread numbers its posts in the order they were sent.
        assert [acks[i]["message"]["seq"] for i in ids] == list(range(1, len(ids) + 1))


async def test_deflate_and_plain_clients_of_one_channel_read_the_same_frames(
    world: World, serve: Start
) -> None:
    """Frames encoded once for many sockets reach each in the form it
    negotiated: plain, compressed afresh per message, or compressed its own
    way (a client asking for a smaller window)."""
    url = await serve(ws_compression=True)
    channel = f"company:{world.a}"
    plain = await WsClient.open(url, token=world.carl.token, compression=False)
    deflated = await WsClient.open(url, token=world.cora.token)
    small_window = await WsClient.open(
        url,
        token=world.ana.token,
        extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)],
    )
    clients = (plain, deflated, small_window)
    try:
        assert plain.connection.protocol.extensions == []
        [ours] = deflated.connection.protocol.extensions
        assert isinstance(ours, PerMessageDeflate)
        # Both sides start every message afresh: no zlib state kept.
        assert (ours.local_no_context_takeover, ours.remote_no_context_takeover) == (
            True,
            True,
        )
        [theirs] = small_window.connection.protocol.extensions
        assert isinstance(theirs, PerMessageDeflate)
        assert theirs.remote_max_window_bits == 10
        for client in clients:
            await _subscribe(client, channel)
        bodies = [f"Receipt {i} é€ <b> " + "ledger " * i for i in range(1, 31)]
        async with world.client(world.ana, base_url=url) as ana:
            for body in bodies:
                await post(ana, world, world.a, world.txa["bill"], body, [world.carl])
        for client in clients:
            await client.wait_message(channel, company_seq=30)
    finally:
        for client in clients:
            await client.close()
    for client in clients:
        assert client.closed_code in (None, 1000)
        received = client.messages(channel)
        assert [m["company_seq"] for m in received] == list(range(1, 31))
        assert [m["body"] for m in received] == bodies


async def test_a_member_removed_between_two_posts_cannot_post_or_read_again(
    world: World, serve: Start, db: Database
) -> None:
    """The socket remembers where a transaction lives, not who may use it."""
    url = await serve()
    carl = await WsClient.open(url, token=world.carl.token)
    bill = str(world.txa["bill"])

    def post_frame(n: int) -> dict[str, object]:
        return {
            "type": "post",
            "id": f"p{n}",
            "transaction_id": bill,
            "body": f"Question {n}",
            "recipients": [str(world.ana.id)],
            "idempotency_key": f"removed-{n}",
        }

    try:
        first = await carl.request(post_frame(1))
        read = await carl.request(
            {"type": "read", "id": "r1", "transaction_id": bill, "seq": 1}
        )
        async with db.transaction() as conn:
            await companies.remove_member(conn, world.a, world.carl.id)
        second = await carl.request(post_frame(2))
        read_again = await carl.request(
            {"type": "read", "id": "r2", "transaction_id": bill, "seq": 1}
        )
    finally:
        await carl.close()
    assert (first["type"], first["message"]["seq"]) == ("ack", 1)
    assert (read["type"], read["last_read_seq"]) == ("ack", 1)
    assert (second["type"], second["code"]) == ("error", "not_found")
    assert (read_again["type"], read_again["code"]) == ("error", "not_found")
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 1


async def _read_server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked frame from the server: (opcode, payload)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


async def test_pings_from_a_client_that_does_not_read_are_not_piled_up(
    world: World, serve: Start
) -> None:
    """A pong the client cannot read yet is dropped: one kept per ping let
    a client that pings without reading grow the server's memory."""
    url = await serve()
    host, _, port = url.removeprefix("http://").partition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    # The reader stops taking from the socket once it holds 128 KiB.
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    channel = f"company:{world.a}"
    try:
        writer.write(
            (
                "GET /ws HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {world.carl.token}\r\n\r\n"
            ).encode()
        )
        answer = await reader.readuntil(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 101")
        subscribe = {"type": "subscribe", "id": "s", "channel": channel}
        writer.write(
            Frame(Opcode.TEXT, json.dumps(subscribe).encode()).serialize(mask=True)
        )
        await writer.drain()
        # Stop reading, and post more than the kernel's buffers hold, so
        # that the server's transport is full and paused.
        body = "z" * 16000
        async with world.client(world.ana, base_url=url) as ana:
            for _ in range(POSTS):
                await post(ana, world, world.a, world.txa["bill"], body, [world.carl])
        ping = Frame(Opcode.PING, b"p" * 100).serialize(mask=True)
        for _ in range(5000):
            writer.write(ping)
        await writer.drain()
        await asyncio.sleep(secs(0.5))
        # Read again: everything posted arrives, and no pong for the flood;
        # a ping sent once the client has caught up is answered.
        seqs: list[int] = []
        pongs: list[bytes] = []
        asked = False
        while b"again" not in pongs:
            if len(seqs) == POSTS and not asked:
                writer.write(Frame(Opcode.PING, b"again").serialize(mask=True))
                asked = True
            opcode, payload = await asyncio.wait_for(
                _read_server_frame(reader), secs(10)
            )
            if opcode == Opcode.PONG:
                pongs.append(payload)
            elif opcode == Opcode.TEXT:
                frame = json.loads(payload)
                if frame["type"] == "message":
                    seqs.append(frame["message"]["company_seq"])
    finally:
        writer.close()
    assert seqs == list(range(1, POSTS + 1))
    assert pongs == [b"again"]


async def test_a_closed_socket_is_freed_without_the_cycle_collector(
    world: World, serve: Start
) -> None:
    """Memory comes back when a client leaves, not at the next full garbage
    collection (which, with thousands of sockets open, is rare and slow)."""
    url = await serve()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            client = await WsClient.open(url, token=world.carl.token)
            await _subscribe(client, f"company:{world.a}")
            await client.close()
        await asyncio.sleep(secs(0.5))
        gc.collect()
        left = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert "DirectWriteProtocol" not in left
    assert "Connection" not in left
