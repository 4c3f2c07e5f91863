"""Servers the tests start: the app in this event loop, on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
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
        self,
        settings: Settings,
        db: Database,
        *,
        broker: Broker | None = None,
        port: int = 0,
    ) -> None:
        self.settings = settings
        self.app = create_app(settings, database=db, broker=broker)
        config = server_config(self.app, settings, host="127.0.0.1", port=port)
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


class ServerProcess:
    """``tickmark serve`` in a process of its own, as in production.

    Args:
        env: environment variables on top of the test defaults
            (DATABASE_URL and REDIS_URL, typically).

    """

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir = Path(tempfile.mkdtemp(prefix="tickmark-proc-"))
        self.env = {
            **os.environ,
            "PUBLIC_URL": PUBLIC_URL,
            "SECRET_KEY": "test-secret",
            "TICKMARK_DATA_DIR": str(data_dir),
            "LOG_LEVEL": "WARNING",
            **env,
        }
        # Where the process's log goes; read back when it fails.
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> str:
        with self.log_path.open("wb") as log:
            # Popen returns as soon as the process is forked; nothing blocks.
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "server", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=self.url) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError("server exited: " + self.log()[-2000:])
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        return self.url
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout_secs: float) -> int:
        assert self.process is not None
        deadline = time.monotonic() + timeout_secs
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("server did not exit")
            await asyncio.sleep(0.05)
        return self.process.returncode

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            await self.wait(15)
        except TimeoutError:
            self.process.kill()
            self.process.wait(5)
