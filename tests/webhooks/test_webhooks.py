"""Webhooks: signed deliveries, once each, retried until the receiver is back."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from server.store.database import Database
from server.webhooks.dispatcher import WebhookDispatcher
from server.webhooks.signing import verify
from server.webhooks.targets import is_public
from tests.clock import FakeClock
from tests.servers import RunningServer, free_port, make_settings
from tests.timing import secs
from tests.world import World, post


class Receiver:
    """An HTTP endpoint that records every request it gets."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, body))
        await send(
            {"type": "http.response.start", "status": self.status, "headers": []}
        )
        await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def _serving(app: Receiver, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def _dispatching(
    db: Database, clock: FakeClock
) -> AsyncIterator[WebhookDispatcher]:
    dispatcher = WebhookDispatcher(
        db, clock, allow_private=True, timeout_secs=2, poll_secs=0.05
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await task
        await dispatcher.close()


async def _until(check: Any, timeout_secs: float = 10) -> None:
    for _ in range(int(secs(timeout_secs) / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _register(
    client: httpx.AsyncClient, world: World, url: str
) -> dict[str, Any]:
    response = await client.post(
        f"/api/companies/{world.a}/webhooks", json={"url": url}
    )
    assert response.status_code == 201, response.text
    webhook: dict[str, Any] = response.json()["webhook"]
    return webhook


async def test_each_message_reaches_the_receiver_once_signed(
    world: World, db: Database
) -> None:
    receiver = Receiver()
    port = free_port()
    # A minute ahead of the server's clock: what is posted now is due.
    clock = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    async with (
        RunningServer(make_settings(webhook_allow_private=True), db) as url,
        world.client(world.ana, base_url=url) as ana,
        _serving(receiver, port),
        _dispatching(db, clock),
    ):
        webhook = await _register(ana, world, f"http://127.0.0.1:{port}/hooks/tickmark")
        sent = [
            (
                await post(
                    ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl]
                )
            ).json()["message"]
            for i in range(1, 4)
        ]
        await _until(lambda: len(receiver.received) >= 3)
        await asyncio.sleep(secs(0.5))
        log = (
            await ana.get(
                f"/api/companies/{world.a}/webhooks/{webhook['id']}/deliveries"
            )
        ).json()["deliveries"]
    assert len(receiver.received) == 3
    bodies = [json.loads(body) for _, body in receiver.received]
    assert sorted(b["message"]["id"] for b in bodies) == sorted(m["id"] for m in sent)
    for (headers, body), payload in zip(receiver.received, bodies, strict=True):
        assert verify(
            webhook["secret"],
            headers["tickmark-signature"],
            body,
            now=int(clock.now().timestamp()),
        )
        assert not verify(
            "whsec_wrong",
            headers["tickmark-signature"],
            body,
            now=int(clock.now().timestamp()),
        )
        assert headers["tickmark-delivery"] == payload["delivery_id"]
        assert headers["content-type"] == "application/json"
        assert payload["event"] == "message.created"
        assert payload["company_id"] == str(world.a)
    assert [d["state"] for d in log] == ["delivered"] * 3
    assert {d["attempts"] for d in log} == {1}


async def test_a_receiver_that_was_down_gets_the_backlog(
    world: World, db: Database
) -> None:
    receiver = Receiver()
    port = free_port()
    # A minute ahead of the server's clock: what is posted now is due.
    clock = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    async with (
        RunningServer(make_settings(webhook_allow_private=True), db) as url,
        world.client(world.ana, base_url=url) as ana,
        _dispatching(db, clock),
    ):
        webhook = await _register(ana, world, f"http://127.0.0.1:{port}/hook")
        log_url = f"/api/companies/{world.a}/webhooks/{webhook['id']}/deliveries"
        for i in range(1, 4):
            await post(ana, world, world.a, world.txa["bill"], f"m{i}", [world.carl])

        async def failed_once() -> bool:
            log = (await ana.get(log_url)).json()["deliveries"]
            return len(log) == 3 and all(d["attempts"] == 1 for d in log)

        for _ in range(int(secs(20) / 0.1)):
            if await failed_once():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the first attempts did not all fail in time")
        while_down = (await ana.get(log_url)).json()["deliveries"]
        async with _serving(receiver, port):
            # An hour passes: every retry is due.
            clock.advance(3600)
            await _until(lambda: len(receiver.received) >= 3)
            await asyncio.sleep(secs(0.5))
        after = (await ana.get(log_url)).json()["deliveries"]
    assert [d["state"] for d in while_down] == ["pending"] * 3
    assert all(d["last_error"].startswith("ConnectError") for d in while_down)
    assert len(receiver.received) == 3
    bodies = sorted(json.loads(b)["message"]["body"] for _, b in receiver.received)
    assert bodies == ["m1", "m2", "m3"]
    assert [(d["state"], d["attempts"], d["last_status"]) for d in after] == [
        ("delivered", 2, 200)
    ] * 3


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[64:ff9b::7f00:1]/hook",
        "https://[::127.0.0.1]/hook",
        "https://224.0.0.1/hook",
        "http://example.com/hook",
        "ftp://example.com/hook",
        "https://user:pass@example.com/hook",
        "not a url",
    ],
)
async def test_private_addresses_and_plain_http_are_refused_by_default(
    world: World, url: str
) -> None:
    async with world.client(world.ana) as ana:
        response = await ana.post(
            f"/api/companies/{world.a}/webhooks", json={"url": url}
        )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "url"


async def test_a_name_that_resolves_to_a_private_address_is_not_sent_to(
    world: World, db: Database
) -> None:
    from server.store import webhooks as store

    # A minute ahead of the server's clock: what is posted now is due.
    clock = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    async with db.transaction() as conn:
        webhook = await store.insert(
            conn, world.a, "https://localhost:9/hook", "whsec_x", world.ana.id
        )
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "m1", [world.carl])
    dispatcher = WebhookDispatcher(db, clock, allow_private=False, poll_secs=0.05)
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()
    async with db.connection() as conn:
        log = await store.deliveries(conn, world.a, webhook.id, 10)
    assert log is not None
    assert log[0].state == "pending"
    assert log[0].last_error is not None
    assert "non-public address" in log[0].last_error


async def test_only_the_companys_accountants_manage_webhooks(world: World) -> None:
    body = {"url": "https://hooks.example.com/tickmark"}
    async with world.client(world.carl) as carl:
        as_client = await carl.post(f"/api/companies/{world.a}/webhooks", json=body)
    async with world.client(world.ben) as ben:
        elsewhere = await ben.post(f"/api/companies/{world.a}/webhooks", json=body)
    async with world.client(world.ana) as ana:
        made = await ana.post(f"/api/companies/{world.a}/webhooks", json=body)
        listed = (await ana.get(f"/api/companies/{world.a}/webhooks")).json()
        webhook_id = made.json()["webhook"]["id"]
        deleted = await ana.delete(f"/api/companies/{world.a}/webhooks/{webhook_id}")
        after = (await ana.get(f"/api/companies/{world.a}/webhooks")).json()
    assert as_client.status_code == 403
    assert elsewhere.status_code == 404
    assert made.status_code == 201
    assert made.json()["webhook"]["secret"].startswith("whsec_")
    assert listed["webhooks"] == [
        {
            "id": webhook_id,
            "url": body["url"],
            "created_at": listed["webhooks"][0]["created_at"],
            "created_by": str(world.ana.id),
        }
    ]
    assert "secret" not in str(listed)
    assert deleted.status_code == 204
    assert after == {"webhooks": []}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::5db8:d70e", True),
        ("2002:7f00:1::", False),
        ("2002:5db8:d70e::", True),
        ("::7f00:1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
    ],
)
def test_addresses_are_judged_with_the_ipv4_inside_them(
    address: str, public: bool
) -> None:
    assert is_public(ipaddress.ip_address(address)) is public
