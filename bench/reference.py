"""The reference server: the smallest ``websockets`` broadcast of the same fan-out.

It stands for what Python on this machine can do at best for this work:
no storage, no authentication, no JSON beyond the frame it relays. Its
whole protocol, one text frame each:

- ``sub <channel>``: subscribe; answered with ``ok <channel>``;
- ``pub <channel> <frame>``: send ``<frame>`` to every subscriber of the
  channel with :func:`websockets.asyncio.server.broadcast`, which encodes
  it once and writes it to each connection without waiting (no
  backpressure: a subscriber that stops reading is skipped, not waited for).

Run it as ``python -m bench.reference --port PORT [--deflate]``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve


__all__ = ["main"]

# Same listen backlog as uvicorn's default, so a burst of connections
# meets the same queue on both servers.
_BACKLOG = 2048

# Subscribers by channel.
_channels: dict[str, set[ServerConnection]] = {}


async def _handler(websocket: ServerConnection) -> None:
    mine: list[str] = []
    try:
        async for text in websocket:
            if not isinstance(text, str):
                continue
            if text.startswith("pub "):
                _, channel, frame = text.split(" ", 2)
                broadcast(_channels.get(channel, ()), frame)
            elif text.startswith("sub "):
                channel = text[4:]
                _channels.setdefault(channel, set()).add(websocket)
                mine.append(channel)
                await websocket.send("ok " + channel)
    finally:
        for channel in mine:
            subscribers = _channels.get(channel)
            if subscribers is not None:
                subscribers.discard(websocket)
                if not subscribers:
                    del _channels[channel]


async def _serve(host: str, port: int, deflate: bool) -> None:
    async with serve(
        _handler,
        host,
        port,
        compression="deflate" if deflate else None,
        backlog=_BACKLOG,
    ) as server:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, server.close)
        loop.add_signal_handler(signal.SIGINT, server.close)
        await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="the reference broadcast server for the benchmarks"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--deflate", action="store_true", help="accept permessage-deflate"
    )
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port, args.deflate))


if __name__ == "__main__":
    main()
