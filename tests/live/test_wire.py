"""Frames encoded once are the frames each connection would have sent."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.live.wire import DirectWriteProtocol, SharedFrame


PAYLOADS = [
    b'{"type":"message","body":"Receipt attached"}',
    ('{"body":"' + "Fattura n. 1042 — €12.50, ok? " * 200 + '"}').encode(),
    b"{}",
]


def _negotiated() -> tuple[object, object]:
    """Both ends of a permessage-deflate negotiation as the server makes it."""
    server_factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )
    client_factory = ClientPerMessageDeflateFactory()
    offer = client_factory.get_request_params()
    answer, server_side = server_factory.process_request_params(offer, [])
    client_side = client_factory.process_response_params(answer, [])
    return server_side, client_side


def _parse(data: bytes, extensions: list[object]) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(
        reader.read_exact,
        mask=False,
        max_size=None,
        extensions=extensions,  # type: ignore[arg-type]
    )
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("the frame did not parse whole")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_plain_form_is_an_unmasked_text_frame(payload: bytes) -> None:
    shared = SharedFrame(payload)
    assert shared.plain == Frame(Opcode.TEXT, payload).serialize(mask=False)
    frame = _parse(shared.plain, [])
    assert (frame.opcode, frame.fin, frame.rsv1, frame.data) == (
        Opcode.TEXT,
        True,
        False,
        payload,
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_compressed_form_is_what_a_connection_compresses_itself(
    payload: bytes,
) -> None:
    server_side, client_side = _negotiated()
    own = Frame(Opcode.TEXT, payload).serialize(
        mask=False,
        extensions=[server_side],  # type: ignore[list-item]
    )
    shared = SharedFrame(payload)
    assert shared.deflated() == own
    frame = _parse(shared.deflated(), [client_side])
    assert (frame.opcode, frame.data) == (Opcode.TEXT, payload)
    # Smaller on the wire, except where there is nothing to gain.
    if len(payload) > 100:
        assert len(shared.deflated()) < len(shared.plain)


# Reading from a client pauses once the app is behind, not after each message.


async def test_reading_pauses_once_the_app_is_eight_messages_behind() -> None:
    taken: list[str] = []
    take = asyncio.Event()
    checked = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await take.wait()
        while len(taken) < 8:
            taken.append((await receive())["text"])
        await checked.wait()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            ws=DirectWriteProtocol,
            # Uvicorn's own logging set-up would stay for later tests.
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await _until(lambda: server.started)
            async with websockets.connect(f"ws://127.0.0.1:{port}/") as client:
                [connection] = server.server_state.connections
                protocol: Any = connection
                reading: list[bool] = []
                for n in range(8):
                    await client.send(f"m{n}")
                    await _until(lambda n=n: len(protocol.queue) == n + 1)  # type: ignore[misc]
                    reading.append(protocol.transport.is_reading())
                take.set()
                await _until(lambda: len(taken) == 8)
                assert reading == [True] * 7 + [False]
                assert taken == [f"m{n}" for n in range(8)]
                assert protocol.transport.is_reading()
                checked.set()
        finally:
            checked.set()
            server.should_exit = True
            await serving


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")
