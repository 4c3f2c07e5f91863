"""Take the README's screenshots of the web client, against the demo data.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts PostgreSQL (embedded, in a temporary folder) and a Tickmark server
of its own on a free loopback port, loads the demo firm, has two demo
clients write to Ana so there is something waiting, then signs in as Ana
in headless Chromium (Debian's ``/usr/bin/chromium``) and saves:

- ``home.png``: Home, with the clients and the Conversations badge;
- ``messages.png``: the messages waiting for Ana;
- ``transaction.png``: bill B-2209 and its Activities;
- ``transaction-phone.png``: the same on a 360 px wide screen.

Nothing here runs in the test suite; run it after changing how pages look.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn
from playwright.async_api import Browser, Page, ViewportSize, async_playwright


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.app import create_app, server_config  # noqa: E402
from server.demo import DEMO_PASSWORD, load_demo  # noqa: E402
from server.embedded import EmbeddedPostgres  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store.database import Database  # noqa: E402
from server.store.migrate import apply_migrations  # noqa: E402
from tests.browser.chromium import launch_chromium  # noqa: E402
from tests.servers import free_port  # noqa: E402


ANA = "ana.moreau@ledgerline.example"
CARL = "carl.ibsen@northwind.example"
DANA = "dana.whitfield@northwind.example"
DESKTOP: ViewportSize = {"width": 1280, "height": 820}
PHONE: ViewportSize = {"width": 360, "height": 780}


@contextlib.asynccontextmanager
async def demo_server() -> AsyncIterator[str]:
    """A server with the demo firm, on a free loopback port; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="tickmark-shots-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp))
        db = await Database.connect(await postgres.start(), pool_size=5)
        try:
            async with db.connection() as conn:
                await apply_migrations(conn)
            await load_demo(db, now=dt.datetime.now(dt.UTC))
            port = free_port()
            settings = Settings(
                public_url=f"http://127.0.0.1:{port}",
                secret_key=secrets.token_urlsafe(32),
                data_dir=Path(tmp),
            )
            app = create_app(settings, database=db)
            config = server_config(app, settings, host="127.0.0.1", port=port)
            server = uvicorn.Server(config)
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            try:
                yield settings.public_url
            finally:
                server.should_exit = True
                await task
        finally:
            await db.close()
            postgres.stop()


async def _token(client: httpx.AsyncClient, email: str) -> str:
    answer = await client.post(
        "/api/auth/token", json={"email": email, "password": DEMO_PASSWORD}
    )
    answer.raise_for_status()
    token: str = answer.json()["token"]
    return token


async def _reply(
    client: httpx.AsyncClient, email: str, doc_number: str, body: str
) -> None:
    """Post as a demo client to Ana on one of their company's transactions."""
    headers = {"Authorization": f"Bearer {await _token(client, email)}"}
    company = (await client.get("/api/companies", headers=headers)).json()["companies"][
        0
    ]
    base = f"/api/companies/{company['id']}"
    listed = await client.get(base + "/transactions?limit=200", headers=headers)
    txn = next(
        t for t in listed.json()["transactions"] if t["doc_number"] == doc_number
    )
    members = (await client.get(base + "/members", headers=headers)).json()["members"]
    ana = next(m for m in members if m["name"] == "Ana Moreau")
    posted = await client.post(
        f"{base}/transactions/{txn['id']}/messages",
        headers=headers,
        json={
            "body": body,
            "recipients": [ana["id"]],
            "idempotency_key": f"shots-{doc_number}",
        },
    )
    posted.raise_for_status()


async def _sign_in(page: Page, url: str, email: str) -> None:
    await page.goto(url + "/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("#sign-in-submit")
    await page.wait_for_url(url + "/")


async def _settle(page: Page) -> None:
    await page.wait_for_load_state("networkidle")
    await page.wait_for_timeout(300)
    # Full-page shots are taken from the top, or the sticky header would
    # be drawn where the page happened to be scrolled.
    await page.evaluate("window.scrollTo(0, 0)")


async def take(browser: Browser, url: str, out: Path) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        await _reply(
            client,
            CARL,
            "B-2209",
            "Here is the addendum Summit sent: the $300 is for two parking "
            "spaces from April on. It should repeat every month.",
        )
        await _reply(
            client,
            DANA,
            "CC-7710",
            "That flight was for the Cedar & Pine site visit, so yes, billable.",
        )

    context = await browser.new_context(
        viewport=DESKTOP, locale="en-US", timezone_id="Europe/Paris"
    )
    page = await context.new_page()
    await _sign_in(page, url, ANA)
    await page.wait_for_selector("#transaction-rows tr")
    await page.click(".company-card >> text=Northwind Ledger Ltd")
    await page.wait_for_selector("#transactions-heading >> text=Northwind")
    await _settle(page)
    await page.screenshot(path=str(out / "home.png"))

    await page.click("#conversations")
    await page.wait_for_selector(".waiting-item")
    await _settle(page)
    await page.screenshot(path=str(out / "messages.png"))

    await page.click(".waiting-item >> text=B-2209")
    await page.wait_for_selector("#thread .message")
    await _settle(page)
    await page.screenshot(path=str(out / "transaction.png"), full_page=True)

    await page.set_viewport_size(PHONE)
    await page.reload()
    await page.wait_for_selector("#thread .message")
    await _settle(page)
    await page.screenshot(path=str(out / "transaction-phone.png"), full_page=True)
    await context.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    async with demo_server() as url, async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            await take(browser, url, args.out)
        finally:
            await browser.close()
    print(f"screenshots saved in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
