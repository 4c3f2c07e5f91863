"""Servers the tests start: the app in this event loop, on a loopback port."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from server.app import create_app, server_config
from server.broker import Broker
from server.settings import Settings
from server.store.database import Database


PUBLIC_URL = "http://tickmark.test"


def make_settings(**overrides: Any) -> Settings:
    defaults: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "secret_key": "test-secret",
        "data_dir": Path(tempfile.gettempdir()) / "tickmark-test-data",
    }
    return Settings(**(defaults | overrides))


class RunningServer:
    """A Tickmark server in this event loop, on a free loopback port.

    Configured exactly as ``tickmark serve`` configures uvicorn, with the
    database (and broker, when given) of the tests.
    """

    def __init__(
        self, settings: Settings, db: Database, *, broker: Broker | None = None
    ) -> None:
        self.settings = settings
        self.app = create_app(settings, database=db, broker=broker)
        config = server_config(self.app, settings, host="127.0.0.1", port=0)
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await self.task


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    if "?" in url:
        base, _, query = url.partition("?")
        return base.rsplit("/", 1)[0] + "/" + name + "?" + query
    return url.rsplit("/", 1)[0] + "/" + name
