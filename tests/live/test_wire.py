"""Frames encoded once are the frames each connection would have sent."""

from __future__ import annotations

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.live.wire import SharedFrame


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
