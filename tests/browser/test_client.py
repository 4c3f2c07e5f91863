"""tickmark-client.js in a real browser: recovery, gaps, acks, backoff, sign-out.

The module is loaded into a page of the server's own origin (the sign-in
page, which runs nothing live of its own) and driven from the test. Its
WebSocket is a thin subclass that the test can cut, keep from connecting,
or make drop one incoming frame, to stand for a network that does so.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from playwright.async_api import Page

from tests.browser.conftest import TIMEOUT_MS, PageWatch, SignIn
from tests.world import World, post


# Small, so that a short absence already misses more than is replayed.
REPLAY_LIMIT = 2

_START = """
async ({ channel, companyId, since }) => {
  const { TickmarkClient } = await import("/static/tickmark-client.js");
  // A WebSocket the test can cut, hold off, or make lose one frame.
  window.sockets = [];
  window.offline = false;
  window.lose = () => false;
  class TestSocket extends WebSocket {
    constructor(url) {
      super(window.offline ? url.replace("/ws", "/no-such-socket") : url);
      window.sockets.push(this);
    }
    set onmessage(handler) {
      super.onmessage = (event) => {
        if (!window.lose(JSON.parse(event.data))) handler(event);
      };
    }
  }
  const client = new TickmarkClient({ WebSocket: TestSocket, trackPresence: false });
  window.client = client;
  window.seqs = [];
  window.statuses = [];
  client.on("message", ({ channel: from, message }) => {
    if (from === channel) window.seqs.push(message.seq);
  });
  client.on("status", ({ status, code }) => {
    window.statuses.push([status, code ?? null]);
  });
  client.connect();
  return await client.subscribe(channel, { companyId, since });
}
"""


@pytest.fixture(scope="module")
def site_overrides() -> dict[str, Any]:
    return {"ws_replay_limit": REPLAY_LIMIT}


async def _start(page: Page, world: World, *, since: int | None = 0) -> dict[str, Any]:
    await page.goto("/sign-in")
    frame: dict[str, Any] = await page.evaluate(
        _START,
        {
            "channel": f"transaction:{world.txa['bill']}",
            "companyId": str(world.a),
            "since": since,
        },
    )
    return frame


async def _until(page: Page, expression: str, *, within_ms: float = TIMEOUT_MS) -> None:
    """Wait until ``expression`` is true in the page.

    Polled with ``evaluate``: Playwright's ``wait_for_function`` evaluates
    strings inside the page, which the pages' policy (no eval) forbids.
    """
    deadline = asyncio.get_running_loop().time() + within_ms / 1000
    while not await page.evaluate(expression):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false: {expression}")
        await asyncio.sleep(0.05)


async def _seqs(page: Page, count: int, *, within_ms: float = TIMEOUT_MS) -> list[int]:
    await _until(page, f"window.seqs.length >= {count}", within_ms=within_ms)
    seqs: list[int] = await page.evaluate("window.seqs")
    return seqs


async def _post_many(world: World, bodies: list[str]) -> None:
    async with world.client(world.ana) as ana:
        for body in bodies:
            answer = await post(
                ana, world, world.a, world.txa["bill"], body, [world.carl]
            )
            assert answer.status_code == 201


async def test_the_client_pages_what_the_server_would_not_replay(
    people: World, sign_in: SignIn, watch: PageWatch
) -> None:
    await _post_many(people, [f"m{i}" for i in range(1, 6)])
    carl = await sign_in(people.carl)
    page = watch.watch(await carl.new_page())

    frame = await _start(page, people, since=0)
    assert frame["recovered"] is False
    assert frame["last_seq"] == 5
    assert await _seqs(page, 5) == [1, 2, 3, 4, 5]

    # Live after that, once each.
    await _post_many(people, ["m6"])
    assert await _seqs(page, 6) == [1, 2, 3, 4, 5, 6]
    assert watch.errors == []


async def test_the_client_reconnects_and_recovers_what_it_missed(
    people: World, sign_in: SignIn, watch: PageWatch
) -> None:
    carl = await sign_in(people.carl)
    page = watch.watch(await carl.new_page())
    await _start(page, people, since=0)
    await _post_many(people, ["m1"])
    assert await _seqs(page, 1) == [1]

    # The network goes: the socket is cut and new ones cannot connect.
    await page.evaluate("window.offline = true; window.sockets.at(-1).close()")
    await _until(page, "window.statuses.some(([s]) => s === 'reconnecting')")
    await _post_many(people, ["m2", "m3", "m4"])
    # Ana's posts fell in the gap; back online, more than the replay
    # limit is missing, so the client pages it over HTTP.
    await page.evaluate("window.offline = false")
    # The next attempt may be a few backoff steps away: its ceiling doubles
    # with each failure while offline (0.5 s, 1 s, 2 s, 4 s...).
    assert await _seqs(page, 4, within_ms=3 * TIMEOUT_MS) == [1, 2, 3, 4]
    await _until(page, "window.client.status === 'open'")
    await _post_many(people, ["m5"])
    assert await _seqs(page, 5) == [1, 2, 3, 4, 5]
    attempts = await page.evaluate("window.sockets.length")
    assert 2 <= attempts <= 6  # backoff, not a tight loop
    assert watch.errors == []


async def test_the_client_fills_a_gap_it_sees_on_a_live_connection(
    people: World, sign_in: SignIn, watch: PageWatch
) -> None:
    carl = await sign_in(people.carl)
    page = watch.watch(await carl.new_page())
    await _start(page, people, since=0)
    # The frame of message 2 is lost on the way; 3 shows the gap.
    await page.evaluate(
        "() => { window.lose = (f) => f.type === 'message' && f.message.seq === 2; }"
    )
    await _post_many(people, ["m1", "m2", "m3"])
    assert await _seqs(page, 3) == [1, 2, 3]
    assert watch.errors == []


async def test_posts_are_acknowledged_over_the_socket_or_sent_over_http(
    people: World, sign_in: SignIn, watch: PageWatch
) -> None:
    carl = await sign_in(people.carl)
    page = watch.watch(await carl.new_page())
    await _start(page, people, since=0)
    await _until(page, "window.client.status === 'open'")
    args = {
        "companyId": str(people.a),
        "transactionId": str(people.txa["bill"]),
        "recipients": [str(people.ana.id)],
    }
    over_socket = await page.evaluate(
        "(a) => window.client.post({ ...a, body: 'by socket', idempotencyKey: 'k1' })",
        args,
    )
    assert over_socket["created"] is True
    assert over_socket["message"]["seq"] == 1

    # An error frame with the post's id rejects it, with the server's words.
    refused = await page.evaluate(
        "(a) => window.client.post({ ...a, recipients: [], body: 'x' })"
        ".then(() => null, (e) => [e.code, e.field])",
        args,
    )
    assert refused == ["invalid", "recipients"]

    # Socket down: the same call goes over HTTP; a retry with the same key
    # returns the first message instead of storing a second.
    await page.evaluate("window.offline = true; window.sockets.at(-1).close()")
    await _until(page, "window.client.status !== 'open'")
    key = str(uuid.uuid4())
    first = await page.evaluate(
        "([a, k]) => window.client.post({ ...a, body: 'by http', idempotencyKey: k })",
        [args, key],
    )
    again = await page.evaluate(
        "([a, k]) => window.client.post({ ...a, body: 'by http', idempotencyKey: k })",
        [args, key],
    )
    assert first["created"] is True
    assert again["created"] is False
    assert again["message"]["id"] == first["message"]["id"]
    assert watch.errors == []


async def test_signed_out_elsewhere_the_client_stops_and_pages_go_to_sign_in(
    people: World, sign_in: SignIn, site: str
) -> None:
    carl = await sign_in(people.carl)
    page = await carl.new_page()
    await _start(page, people, since=None)
    await _until(page, "window.client.status === 'open'")
    listing = await carl.new_page()
    await listing.goto("/messages")
    await _until(listing, "document.body.dataset.live === 'open'")

    answer = await carl.request.post("/api/auth/sign-out", headers={"Origin": site})
    assert answer.status == 204

    # Closed with 4401: no reconnecting with a session that is gone.
    await _until(
        page, "window.statuses.some(([s, c]) => s === 'signed-out' && c === 4401)"
    )
    sockets = await page.evaluate("window.sockets.length")
    await page.wait_for_timeout(1500)
    assert await page.evaluate("window.sockets.length") == sockets
    # The page goes to sign-in, to come back to the list afterwards.
    await listing.wait_for_url(f"{site}/sign-in?next=%2Fmessages")
