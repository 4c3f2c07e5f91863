"""Count PostgreSQL round trips per live operation: ``python -m bench.roundtrips``.

The suite's profiles show the server's time going to socket writes
towards PostgreSQL; this counts them. It runs Tickmark in this process
(configured as ``tickmark serve`` configures it, on a loopback port, with
the in-process broker), wraps asyncpg's connection methods to count each
statement sent, and drives one client through the real protocol: connect,
subscribe, post, resume with ``since``. Every method that sends something
to the server counts one round trip, including the reset asyncpg runs
when a connection goes back to the pool.

It makes a database of its own (``tickmark_bench_roundtrips``) on the
machine's PostgreSQL, as the suite does.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg.connection
import uvicorn

from bench.frames import build_post, probe_body
from bench.suite import migrate
from bench.world import build_world, recreate_database
from bench.wsclient import WsClient, open_ws
from server.app import create_app, server_config
from server.settings import Settings


__all__ = ["main"]

# Round trips by asyncpg method, for the operation being measured.
_counts: Counter[str] = Counter()
# The first words of each statement sent, for the same operation.
_statements: Counter[str] = Counter()
# The reset asyncpg runs when a connection goes back to the pool sends its
# query through execute(), so it is counted there (as "SELECT
# pg_advisory_unlock_all(); CLOSE ALL; ..."), not as a method of its own.
_COUNTED = ("execute", "_execute", "_executemany")


def _count(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        # execute() with parameters goes through _execute: count it there.
        if not (name == "execute" and len(args) > 1):
            _counts[name] += 1
            if args and isinstance(args[0], str):
                _statements[" ".join(args[0].split()[:4])] += 1
        return await method(self, *args, **kwargs)

    return counting


def _install_counters() -> None:
    cls = asyncpg.connection.Connection
    for name in _COUNTED:
        setattr(cls, name, _count(name, getattr(cls, name)))


class _Probe:
    """One client: frames arrive in a queue."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_message(self, data: bytes) -> None:
        self.frames.put_nowait(json.loads(data))

    async def wait(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                frame = await self.frames.get()
                if frame.get("type") == kind:
                    return frame


async def _measure(label: str, work: Awaitable[Any]) -> dict[str, Any]:
    await asyncio.sleep(1.2)  # let background batches (presence) pass
    _counts.clear()
    _statements.clear()
    started = time.perf_counter()
    await work
    elapsed_ms = (time.perf_counter() - started) * 1000
    return {
        "operation": label,
        "round_trips": sum(_counts.values()),
        "by_method": dict(_counts),
        "statements": dict(_statements.most_common()),
        "elapsed_ms": elapsed_ms,
    }


async def _run(admin_url: str, posts: int) -> list[dict[str, Any]]:
    name = "tickmark_bench_roundtrips"
    database_url = admin_url.rsplit("/", 1)[0] + "/" + name
    await recreate_database(admin_url, name)
    await migrate(database_url)
    world = await build_world(
        database_url,
        companies_count=1,
        clients_count=3,
        posters_count=1,
        big_channel=0,
    )
    _install_counters()
    settings = Settings(
        database_url=database_url,
        public_url="http://127.0.0.1",
        secret_key="bench-roundtrips",  # noqa: S106 (a throwaway server)
        data_dir=Path(tempfile.gettempdir()) / "tickmark-roundtrips",
        log_level="WARNING",
        ws_frames_per_sec=10_000,
    )
    app = create_app(settings)
    config = server_config(app, settings, host="127.0.0.1", port=0)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    company = world.companies[0]
    channel = f"transaction:{company.bills[0]}"
    results = []
    # The subscriber's connection; replaced when it reconnects.
    ws: WsClient | None = None
    try:
        probe = _Probe()

        async def connect() -> None:
            nonlocal ws
            ws = await open_ws(
                "127.0.0.1",
                port,
                "/ws",
                probe.on_message,
                headers={"Authorization": f"Bearer {world.clients[0].token}"},
            )
            await probe.wait("welcome")

        results.append(await _measure("connect (authenticate, welcome)", connect()))
        assert ws is not None

        async def subscribe(since: int | None = None) -> None:
            assert ws is not None
            frame: dict[str, Any] = {"type": "subscribe", "id": "s", "channel": channel}
            if since is not None:
                frame["since"] = since
            ws.send_text(json.dumps(frame).encode())
            await probe.wait("subscribed")

        results.append(await _measure("subscribe to a transaction", subscribe()))

        poster = _Probe()
        post_ws = await open_ws(
            "127.0.0.1",
            port,
            "/ws",
            poster.on_message,
            headers={"Authorization": f"Bearer {world.posters[0].token}"},
        )
        await poster.wait("welcome")

        async def post(recipient: str) -> None:
            for n in range(posts):
                post_ws.send_text(
                    build_post(
                        n,
                        company.bills[0],
                        [recipient],
                        probe_body(time.time_ns(), 0),
                        uuid.uuid4().hex,
                    )
                )
                await poster.wait("ack")
                await probe.wait("message")

        for label, recipient in (
            ("post, recipient offline", company.away),
            ("post, recipient online", world.clients[0].id),
        ):
            found = await _measure(label, post(recipient))
            found["round_trips"] /= posts
            found["by_method"] = {k: v / posts for k, v in found["by_method"].items()}
            found["statements"] = {k: v / posts for k, v in found["statements"].items()}
            found["elapsed_ms"] /= posts
            results.append(found)

        ws.abort()
        await asyncio.sleep(0.5)
        results.append(await _measure("reconnect", connect()))
        results.append(
            await _measure("subscribe with since (resume)", subscribe(since=1))
        )
        post_ws.close()
    finally:
        server.should_exit = True
        await task
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.roundtrips")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--posts", type=int, default=20)
    args = parser.parse_args()
    for row in asyncio.run(_run(args.admin_url, args.posts)):
        print(
            f"{row['operation']}: {row['round_trips']:.1f} round trips "
            f"({row['elapsed_ms']:.1f} ms)"
        )
        for statement, count in row["statements"].items():
            print(f"    {count:5.1f}  {statement}")


if __name__ == "__main__":
    main()
