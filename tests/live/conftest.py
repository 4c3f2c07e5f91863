"""Servers for the live tests: the same suite on both brokers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from server.broker.redis_pubsub import RedisBroker
from server.store.database import Database
from tests.servers import RedisServer, RunningServer, make_settings


Start = Callable[..., Awaitable[str]]


@pytest.fixture(params=["memory", "redis"])
async def serve(
    request: pytest.FixtureRequest, db: Database, redis_server: RedisServer
) -> AsyncIterator[Start]:
    """Start a server on this test's broker; settings may be overridden."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> str:
            broker = None
            if request.param == "redis":
                broker = RedisBroker(redis_server.url, timeout_secs=1.0)
                await broker.start()
                stack.push_async_callback(broker.close)
            server = RunningServer(make_settings(**overrides), db, broker=broker)
            url: str = await stack.enter_async_context(server)
            return url

        yield start
