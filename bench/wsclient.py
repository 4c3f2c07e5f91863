"""A lean WebSocket client for the load generator (RFC 6455, client side).

The stock ``websockets`` client spends about twice the CPU per received
message that this one does (see ``../shared/anchors/performance.md``,
section 3.5): with one core for the whole generator, its cost would be
measured instead of the server's. So the generator speaks the protocol
itself: one :class:`asyncio.Protocol` per connection, frames parsed from
the receive buffer in place, and every complete text message handed to a
callback as ``bytes``, undecoded.

Limits, stated plainly: no TLS, no subprotocols, no sending of fragmented
or compressed frames (RFC 7692 lets a client leave its own messages
uncompressed), and received messages are not checked for valid UTF-8.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
import time
import zlib
from collections.abc import Callable


__all__ = ["HandshakeError", "WsClient", "open_ws"]

# RFC 6455, section 1.3: the GUID appended to the key for the accept value.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Linux's IP_BIND_ADDRESS_NO_PORT: pick the source port at connect() time,
# per destination, instead of at bind() time from one shared pool.
_IP_BIND_ADDRESS_NO_PORT = 24
# Longest HTTP response head accepted before the upgrade.
_MAX_HEAD_BYTES = 16 * 1024

_OP_CONTINUATION = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA

#: Called with each complete text or binary message, as received.
MessageHandler = Callable[[bytes], None]


class HandshakeError(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.body = body


def _mask(payload: bytes) -> tuple[bytes, bytes]:
    """Mask a client frame's payload (RFC 6455, section 5.3)."""
    key = os.urandom(4)
    if not payload:
        return key, payload
    size = len(payload)
    stream = (key * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")
    return key, masked.to_bytes(size, "little")


def _frame(opcode: int, payload: bytes) -> bytes:
    """Encode one final, masked client frame."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key, masked = _mask(payload)
    return head + key + masked


class WsClient(asyncio.Protocol):
    """One client connection: the upgrade, then frames both ways.

    Args:
        request: the complete HTTP upgrade request to send.
        key: the ``Sec-WebSocket-Key`` the request carries.
        on_message: called with every complete data message.

    """

    def __init__(self, request: bytes, key: bytes, on_message: MessageHandler) -> None:
        self._request = request
        self._expected_accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324 (RFC 6455 mandates SHA-1)
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        # Resolved with None once the server answered 101, or with the error.
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Resolved when the TCP connection is gone, for whatever reason.
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Close code the server sent; None until it sends one (or never did).
        self.close_code: int | None = None
        # Seconds, on the monotonic clock, when the 101 arrived.
        self.upgraded_at_secs = 0.0
        # Bytes received and not yet parsed: the HTTP head, then frames.
        self._buffer = bytearray()
        self._in_head = True
        # The decompressor when permessage-deflate was negotiated, and
        # whether a fresh one is needed for each message.
        self._inflater: zlib._Decompress | None = None
        self._inflate_fresh = False
        # A fragmented message being assembled: (compressed, parts).
        self._fragments: tuple[bool, list[bytes]] | None = None
        self._close_sent = False

    # --- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed before 101"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._buffer += data
            self._read_head()
            if self._in_head or not self._buffer:
                return
            data = bytes(self._buffer)
            self._buffer.clear()
        elif self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        rest = self._read_frames(data)
        if rest:
            self._buffer += rest

    # --- the HTTP upgrade -------------------------------------------------------

    def _read_head(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES:
                self._fail_upgrade(ConnectionError("response head too long"))
            return
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        self._in_head = False
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 101:
            # The body of a refusal (a JSON error) follows; keep what came.
            self._fail_upgrade(HandshakeError(status, bytes(self._buffer)))
            return
        if headers.get("sec-websocket-accept", "").encode() != self._expected_accept:
            self._fail_upgrade(ConnectionError("wrong Sec-WebSocket-Accept"))
            return
        extensions = headers.get("sec-websocket-extensions", "")
        if extensions.startswith("permessage-deflate"):
            # RFC 7692, section 7.1.1.1: without context takeover the
            # server compresses each message on its own.
            self._inflate_fresh = "server_no_context_takeover" in extensions
            self._inflater = zlib.decompressobj(wbits=-15)
        self.upgraded_at_secs = time.monotonic()
        self.upgraded.set_result(None)

    def _fail_upgrade(self, error: Exception) -> None:
        self._in_head = False
        self._buffer.clear()
        if not self.upgraded.done():
            self.upgraded.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    # --- frames -------------------------------------------------------------------

    def _read_frames(self, data: bytes) -> bytes:
        """Handle every complete frame in ``data``; return the incomplete rest."""
        pos = 0
        size = len(data)
        while size - pos >= 2:
            first = data[pos]
            length = data[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            pos = end
            opcode = first & 0x0F
            if opcode == _OP_TEXT and first & 0xC0 == 0x80:
                # The hot path: one whole, uncompressed text message.
                self.on_message(data[start:end])
            else:
                self._control_or_fragment(first, data[start:end])
        return data[pos:]

    def _control_or_fragment(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        final = bool(first & 0x80)
        compressed = bool(first & 0x40)
        if opcode in (_OP_TEXT, _OP_BINARY):
            if final:
                self._deliver(compressed, [payload])
            else:
                self._fragments = (compressed, [payload])
        elif opcode == _OP_CONTINUATION and self._fragments is not None:
            self._fragments[1].append(payload)
            if final:
                compressed, parts = self._fragments
                self._fragments = None
                self._deliver(compressed, parts)
        elif opcode == _OP_PING:
            self._send(_OP_PONG, payload)
        elif opcode == _OP_CLOSE:
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2], "big")
            # RFC 6455, section 5.5.1: echo the close, then let the server
            # close the TCP connection first (so TIME_WAIT stays there).
            if not self._close_sent:
                self._send(_OP_CLOSE, payload[:2])
                self._close_sent = True

    def _deliver(self, compressed: bool, parts: list[bytes]) -> None:
        message = b"".join(parts)
        if compressed:
            if self._inflater is None:
                raise ConnectionError("compressed frame without permessage-deflate")
            if self._inflate_fresh:
                self._inflater = zlib.decompressobj(wbits=-15)
            # RFC 7692, section 7.2.2: the sender removed this tail.
            message = self._inflater.decompress(message + b"\x00\x00\xff\xff")
        self.on_message(message)

    # --- sending and closing ------------------------------------------------------

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(opcode, payload))

    def send_text(self, text: bytes) -> None:
        """Send one text message (already UTF-8); dropped once closing."""
        if not self._close_sent:
            self._send(_OP_TEXT, text)

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the server ends the TCP connection."""
        if not self._close_sent:
            self._close_sent = True
            self._send(_OP_CLOSE, code.to_bytes(2, "big"))

    def abort(self) -> None:
        """Drop the connection at once, as a network change would."""
        if self.transport is not None:
            self.transport.abort()


async def open_ws(
    host: str,
    port: int,
    path: str,
    on_message: MessageHandler,
    *,
    headers: dict[str, str] | None = None,
    source_host: str | None = None,
    deflate: bool = False,
    timeout_secs: float = 30.0,
) -> WsClient:
    """Connect and upgrade; returns once the server answered 101.

    Args:
        host: the server's address (loopback only).
        port: the server's port.
        path: the request target, e.g. ``/ws``.
        on_message: called with every data message, as bytes.
        headers: extra request headers (``Authorization``).
        source_host: a local address to connect from (127.0.0.x), so that
            more connections fit than one address has ephemeral ports.
        deflate: offer permessage-deflate, as browsers do.
        timeout_secs: limit on the TCP connect and the upgrade together.

    Raises:
        HandshakeError: the server refused the upgrade.
        TimeoutError: no answer within ``timeout_secs``.
        OSError: the TCP connection failed.

    """
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append(
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
        )
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source_host is not None:
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source_host, 0))
        async with asyncio.timeout(timeout_secs):
            await loop.sock_connect(sock, (host, port))
            _, client = await loop.create_connection(
                lambda: WsClient(request, key, on_message), sock=sock
            )
            await client.upgraded
    except BaseException:
        sock.close()
        raise
    return client
