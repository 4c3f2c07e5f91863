"""Servers the tests start: the app in this event loop, on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A redis-server process started for the tests, which they may restart.

    It needs the ``redis-server`` program (Debian's redis-server package).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "the tests need the redis-server program: install Debian's "
                "redis-server package (apt-get install redis-server)"
            )
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
