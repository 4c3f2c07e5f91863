"""Launching Debian's Chromium for the browser tests and the screenshots.

Playwright's own browser builds are downloaded from the internet by
``playwright install``, which this project never runs: the machines it
builds on reach package registries only. The Chromium that Debian packages
is driven instead, through the driver the ``playwright`` wheel ships.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Playwright


__all__ = ["CHROMIUM", "MISSING_CHROMIUM", "chromium_path", "launch_chromium"]

CHROMIUM = Path("/usr/bin/chromium")

MISSING_CHROMIUM = (
    f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. "
    "Install it with `apt-get install -y chromium` (as root; .ci/run does "
    "this before the tests). Do not run `playwright install`."
)

# Headless, and quiet: nothing reaches out to Google's services, which the
# machines that run the tests cannot reach anyway.
_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str:
    """Where Chromium is.

    Raises:
        FileNotFoundError: Chromium is not installed; the message says how
            to install it.

    """
    if not CHROMIUM.exists():
        raise FileNotFoundError(MISSING_CHROMIUM)
    return str(CHROMIUM)


async def launch_chromium(playwright: Playwright) -> Browser:
    """Start headless Chromium.

    Raises:
        FileNotFoundError: Chromium is not installed; the message says how
            to install it.

    """
    return await playwright.chromium.launch(
        executable_path=chromium_path(), args=_ARGS, timeout=30_000
    )
