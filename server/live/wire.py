"""Frames encoded once and written to many sockets as they are.

Fan-out sends one message to every subscriber of a channel. Through ASGI,
each of those sends walks Starlette's and uvicorn's send chain and encodes
the same WebSocket frame again; the bench measured that chain, once per
subscriber, as most of what Tickmark spent per delivery beyond the
kernel's own write. Here a :class:`SharedFrame` is encoded once, and
written to each socket's transport directly.

Uvicorn runs `/ws` on :class:`DirectWriteProtocol`, its sans-I/O WebSocket
protocol with four changes:

- The connection's ASGI scope carries a ``tickmark.direct_write``
  extension whose ``write`` callable takes a shared frame and either
  writes it at once or declines. It declines whenever a plain ASGI send
  would have to do more than write bytes: while the handshake or the close
  is under way, once the peer is gone, and while the transport is paused
  for back-pressure. The caller then sends through ASGI as usual, and
  nothing changes for that frame.
- Compression (permessage-deflate, when enabled) starts every message
  afresh, in both directions ("no context takeover"), instead of keeping a
  compressor and a decompressor per connection for its whole life. An idle
  connection then holds no zlib state (uvicorn's default holds about 40
  KiB per connection), and since every connection compresses a message
  alike, a shared frame is compressed once for all of them too. The price
  is a lower ratio on small messages, which cannot refer back to earlier
  ones; gorilla/websocket, which Centrifugo builds on, offers only this mode.
- A connection holds less: the headers of its handshake are let go once
  read (the scope has a copy) or written, and its inbox of ASGI events and its writable
  flag are lighter than the asyncio queue and event uvicorn uses (four
  deques of 600 bytes each, for a queue that rarely holds more than one
  event, since uvicorn stops reading the socket until the app takes it);
  a closed connection is freed at once, not by the cycle collector.
- Pings that arrive while the client is not reading (the transport is
  paused) get no pong, instead of one pong each held in memory.

This leans on uvicorn's protocol class, not only its public settings:
the attributes replaced here are its own (``queue``, ``writable``). The
WebSocket suite in ``tests/live`` runs every test on it.

Server frames are never masked and uvicorn never fragments, so a whole
frame written between others is exactly what its own send would have
written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from uvicorn.server import ServerState
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol


__all__ = [
    "EXTENSION",
    "DirectWrite",
    "DirectWriteProtocol",
    "SharedFrame",
    "direct_write",
]

#: The name of the ASGI scope extension.
EXTENSION = "tickmark.direct_write"

# Compression as uvicorn configures it (a 4 KiB window, a small hash
# table), minus the context kept between messages.
_WINDOW_BITS = 12
_COMPRESS_SETTINGS = {"memLevel": 5}
# Messages read from a client and not yet taken by the app, at most, before
# reading from it pauses: at most this many times the largest frame held.
_INBOX_LIMIT = 8

# Compresses shared frames exactly as each connection's own extension
# would: with no context takeover, a message's compressed form depends on
# nothing but the message and these settings.
_SHARED_DEFLATE = PerMessageDeflate(
    remote_no_context_takeover=True,
    local_no_context_takeover=True,
    remote_max_window_bits=_WINDOW_BITS,
    local_max_window_bits=_WINDOW_BITS,
    compress_settings=_COMPRESS_SETTINGS,
)


class SharedFrame:
    """A text frame for many sockets, encoded once in each form asked for.

    Args:
        payload: the frame's text, in UTF-8.

    """

    __slots__ = ("_deflated", "payload", "plain")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.plain = Frame(Opcode.TEXT, payload).serialize(mask=False)
        self._deflated: bytes | None = None

    def deflated(self) -> bytes:
        """The frame compressed, for connections that negotiated it."""
        if self._deflated is None:
            self._deflated = Frame(Opcode.TEXT, self.payload).serialize(
                mask=False, extensions=[_SHARED_DEFLATE]
            )
        return self._deflated


#: Writes a shared frame; False when the caller must send it through ASGI.
DirectWrite = Callable[[SharedFrame], bool]


def direct_write(scope: Mapping[str, Any]) -> DirectWrite | None:
    """The connection's direct writer, or None when its server has none."""
    extension = scope.get("extensions", {}).get(EXTENSION)
    return None if extension is None else extension["write"]


class _Inbox:
    """ASGI events waiting for the app, for one reader; cheaper to hold
    than ``asyncio.Queue``."""

    __slots__ = ("_events", "_waiter")

    def __init__(self) -> None:
        self._events: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, event: Any) -> None:
        self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._events

    def __len__(self) -> int:
        return len(self._events)

    async def get(self) -> Any:
        while not self._events:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.pop(0)


class _Flag:
    """``asyncio.Event``'s interface, holding no waiter list while unused."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class DirectWriteProtocol(WebSocketsSansIOProtocol):
    """Uvicorn's WebSocket protocol, with direct writes and lean compression."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: Any = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]
        self.writable.set()
        if config.ws_per_message_deflate:
            self.conn = ServerProtocol(
                extensions=[
                    ServerPerMessageDeflateFactory(
                        server_no_context_takeover=True,
                        client_no_context_takeover=True,
                        server_max_window_bits=_WINDOW_BITS,
                        client_max_window_bits=_WINDOW_BITS,
                        compress_settings=_COMPRESS_SETTINGS,
                    )
                ],
                max_size=config.ws_max_size,
                logger=logging.getLogger("uvicorn.error"),
            )
        # Which form of a shared frame this connection takes; None: neither
        # (an extension we do not encode alike). Known after the handshake.
        self.shared_form: str | None = "plain"

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The request stays referenced for the connection's life (uvicorn
        # keeps it, and so does the parser that read it) but is read by no
        # one once the scope holds its headers: empty them, a list and two
        # strings per header.
        event.headers.clear()
        extensions = self.conn.extensions
        if extensions:
            [extension] = extensions
            alike = (
                isinstance(extension, PerMessageDeflate)
                and extension.local_no_context_takeover
                and extension.local_max_window_bits == _WINDOW_BITS
                and extension.compress_settings == _COMPRESS_SETTINGS
            )
            # A client may ask for a smaller window, and gets its own frames.
            self.shared_form = "deflated" if alike else None
        # The app's task starts after this returns, so it sees the
        # extension; a refused handshake has no scope and no app.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = {"write": self.write_shared}

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The scope holds our bound method, and so us: a cycle that only a
        # full garbage collection would free. Broken here, the connection
        # is freed as soon as its last user lets go.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(EXTENSION, None)

    def send_receive_event_to_app(self) -> None:
        # Uvicorn's, except for when reading pauses. Uvicorn pauses after
        # every message until the app has taken it, and resumes on the
        # app's next receive: two epoll_ctl calls and the selector's
        # bookkeeping per frame, a tenth of a post's cost in profiles.
        # Here reading pauses once the app is _INBOX_LIMIT messages behind.
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            # Past the app's close: dropped, so that reads go on until the
            # peer's answer to our close arrives.
            return
        event: dict[str, Any]
        if self.curr_msg_data_type == "text":
            try:
                event = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                # Logged as uvicorn logs it (server.logs lowers the level).
                self.logger.exception("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            event = {"type": "websocket.receive", "bytes": data}
        self.queue.put_nowait(event)  # type: ignore[arg-type]
        if not self.read_paused and len(self.queue) >= _INBOX_LIMIT:  # type: ignore[arg-type]
            self.read_paused = True
            self.transport.pause_reading()

    def handle_ping(self) -> None:
        output = self.conn.data_to_send()
        # While the transport is paused the client is not reading what we
        # write: its pongs are dropped, not buffered one per ping it sends,
        # which let a client that pings without reading grow our memory
        # as fast as it could send. (RFC 6455 allows answering only the
        # latest ping; a client that reads again gets its next one.)
        if self.writable.is_set():
            self.transport.write(b"".join(output))

    def start_keepalive(self) -> None:
        # Uvicorn starts the pings right after writing the handshake's
        # answer, which it keeps for the socket's life: its headers are
        # needed no more.
        self.response.headers.clear()
        super().start_keepalive()

    def write_shared(self, frame: SharedFrame) -> bool:
        """Write a shared frame now, if a plain send would do just that."""
        form = self.shared_form
        if (
            form is None
            or self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame.plain if form == "plain" else frame.deflated())
        return True
