"""Fixtures for the browser tests: Chromium, a server it can reach, people.

The server listens on a free loopback port chosen first, so that its
``PUBLIC_URL`` is its real address: the browser's ``Origin`` then passes
the cookie origin check exactly as it does in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Error,
    Page,
    Playwright,
    async_playwright,
    expect,
)

from server.store.database import Database
from tests.browser.chromium import chromium_path, launch_chromium
from tests.servers import RunningServer, free_port, make_settings
from tests.timing import secs
from tests.world import PASSWORD, Person, World, build_world


# Every wait in these tests is short: a page that works answers in well
# under a second on this machine.
TIMEOUT_MS = secs(5) * 1000

NewContext = Callable[..., Awaitable[BrowserContext]]
SignIn = Callable[..., Awaitable[BrowserContext]]


@pytest.fixture(scope="session")
async def pw() -> AsyncIterator[Playwright]:
    async with async_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
async def browser(pw: Playwright) -> AsyncIterator[Browser]:
    try:
        chromium_path()
    except FileNotFoundError as missing:
        # Fail, never skip: a green run without the browser tests would
        # say the web client works when nothing checked it.
        pytest.fail(str(missing), pytrace=False)
    chromium = await launch_chromium(pw)
    expect.set_options(timeout=TIMEOUT_MS)
    try:
        yield chromium
    finally:
        await chromium.close()


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of the server: its local mailbox is in it."""
    return tmp_path_factory.mktemp("browser-site")


@pytest.fixture(scope="module")
def site_overrides() -> dict[str, Any]:
    """Settings of the module's server; a test module may override this."""
    return {}


@pytest.fixture(scope="module")
async def site(
    db: Database, site_dir: Path, site_overrides: dict[str, Any]
) -> AsyncIterator[str]:
    """A server on a known loopback port whose PUBLIC_URL is that address."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(public_url=url, data_dir=site_dir, **site_overrides)
    async with RunningServer(settings, db, port=port) as served:
        assert served == url
        yield url


@pytest.fixture
async def people(db: Database, site: str) -> World:
    """The fixture world, on the browser tests' server."""
    return await build_world(db, site)


@pytest.fixture
async def contexts(browser: Browser, site: str) -> AsyncIterator[NewContext]:
    """Make browser contexts (one per person: their own cookies), closed after."""
    made: list[BrowserContext] = []

    async def new(time_zone: str = "UTC") -> BrowserContext:
        context = await browser.new_context(
            base_url=site, locale="en-US", timezone_id=time_zone
        )
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield new
    for context in made:
        await context.close()


@pytest.fixture
def sign_in(contexts: NewContext, site: str) -> SignIn:
    """A context signed in as someone, through the API as a browser would."""

    async def signed_in(person: Person, time_zone: str = "UTC") -> BrowserContext:
        context = await contexts(time_zone)
        answer = await context.request.post(
            "/api/auth/sign-in",
            data={"email": person.email, "password": PASSWORD},
            headers={"Origin": site},
        )
        assert answer.ok, await answer.text()
        return context

    return signed_in


class PageWatch:
    """What a page did that no test wants: dialogs and script errors."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        async def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(dialog.message)
            await dialog.dismiss()

        def on_error(error: Error) -> None:
            self.errors.append(str(error))

        page.on("dialog", on_dialog)
        page.on("pageerror", on_error)
        return page


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()
