"""Frames encoded once and written to many sockets as they are.

Fan-out sends one message to every subscriber of a channel. Through ASGI,
each of those sends walks Starlette's and uvicorn's send chain and encodes
the same WebSocket frame again; the bench measured that chain, once per
subscriber, as most of what Tickmark spent per delivery beyond the
kernel's own write. Here the frame is encoded once, and written to each
socket's transport directly.

Uvicorn runs `/ws` on :class:`DirectWriteProtocol`, its sans-I/O WebSocket
protocol with one addition: the connection's ASGI scope carries a
``tickmark.direct_write`` extension whose ``write`` callable takes an
encoded frame and either writes it at once or declines. It declines
whenever a plain ASGI send would have to do more than write bytes: while
the handshake or the close is under way, once the peer is gone, while the
transport is paused for back-pressure, and on a connection that negotiated
compression (each such connection keeps its own deflate state, so its
frames differ). The caller then sends through ASGI as usual, and nothing
changes for that frame.

Server frames are never masked and uvicorn never fragments, so a whole
frame written between others is exactly what its own send would have
written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State


__all__ = [
    "EXTENSION",
    "DirectWrite",
    "DirectWriteProtocol",
    "direct_write",
    "text_frame",
]

#: The name of the ASGI scope extension.
EXTENSION = "tickmark.direct_write"

#: Writes an encoded frame; False when the caller must send it through ASGI.
DirectWrite = Callable[[bytes], bool]


def text_frame(payload: bytes) -> bytes:
    """Encode UTF-8 text as a complete, unmasked server frame."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def direct_write(scope: Mapping[str, Any]) -> DirectWrite | None:
    """The connection's direct writer, or None when its server has none."""
    extension = scope.get("extensions", {}).get(EXTENSION)
    return None if extension is None else extension["write"]


class DirectWriteProtocol(WebSocketsSansIOProtocol):
    """Uvicorn's WebSocket protocol, offering direct writes to the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The app's task starts after this returns, so it sees the
        # extension; a refused handshake has no scope and no app.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = {"write": self.write_frame}

    def write_frame(self, data: bytes) -> bool:
        """Write an encoded frame now, if a plain send would do just that."""
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(data)
        return True
