"""A scripted WebSocket client that records every frame it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions import ClientExtensionFactory

from tests.timing import secs


Frame = dict[str, Any]


class WsClient:
    """A connection to /ws whose frames are kept in ``frames``, in order.

    Use :meth:`open` to connect. ``closed_code`` holds the close code once
    the server closes the connection.
    """

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[Frame] = []
        self.closed_code: int | None = None
        self.closed_reason: str | None = None
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        base_url: str,
        *,
        token: str | None = None,
        cookie: str | None = None,
        origin: str | None = None,
        receive_buffer_bytes: int | None = None,
        compression: bool = True,
        extensions: list[ClientExtensionFactory] | None = None,
    ) -> WsClient:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = f"tickmark_session={cookie}"
        sock = None
        host, _, port = base_url.removeprefix("http://").partition(":")
        if receive_buffer_bytes is not None:
            # A small kernel buffer makes a client that stops reading look
            # stuck to the server after a few frames, not a few megabytes.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
            sock.connect((host, int(port)))
            sock.setblocking(False)
        connection = await connect(
            "ws://" + base_url.removeprefix("http://") + "/ws",
            additional_headers=headers,
            origin=origin,  # type: ignore[arg-type]
            sock=sock,
            max_size=2**22,
            open_timeout=secs(5),
            # Offered as browsers offer it; used when the server agrees.
            compression="deflate" if compression and extensions is None else None,
            extensions=extensions,
        )
        return cls(connection)

    async def _read(self) -> None:
        try:
            async for text in self.connection:
                frame = json.loads(text)
                async with self._changed:
                    self.frames.append(frame)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        async with self._changed:
            self.closed_code = self.connection.close_code or 1006
            self.closed_reason = self.connection.close_reason
            self._changed.notify_all()

    async def pause(self) -> None:
        """Stop reading, as a frozen or backgrounded client would."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    def resume(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def send(self, frame: Frame) -> None:
        await self.connection.send(json.dumps(frame))

    async def wait_for(
        self, match: Callable[[Frame], bool], *, timeout_secs: float = 5.0
    ) -> Frame:
        """The first recorded frame that matches, waiting for it if need be."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(
                    lambda: (
                        any(match(f) for f in self.frames)
                        or self.closed_code is not None
                    )
                ),
                secs(timeout_secs),
            )
            for frame in self.frames:
                if match(frame):
                    return frame
        raise AssertionError(
            f"connection closed ({self.closed_code}) before the frame came; "
            f"got {self.frames}"
        )

    async def wait_type(
        self, kind: str, *, timeout_secs: float = 5.0, **fields: Any
    ) -> Frame:
        return await self.wait_for(
            lambda f: (
                f.get("type") == kind and all(f.get(k) == v for k, v in fields.items())
            ),
            timeout_secs=timeout_secs,
        )

    async def wait_message(
        self, channel: str | None = None, *, timeout_secs: float = 5.0, **fields: Any
    ) -> Frame:
        """The first message frame (on ``channel``) whose message has ``fields``."""
        return await self.wait_for(
            lambda f: (
                f.get("type") == "message"
                and (channel is None or f.get("channel") == channel)
                and all(f["message"].get(k) == v for k, v in fields.items())
            ),
            timeout_secs=timeout_secs,
        )

    async def wait_closed(self, *, timeout_secs: float = 5.0) -> int:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.closed_code is not None),
                secs(timeout_secs),
            )
        assert self.closed_code is not None
        return self.closed_code

    async def request(self, frame: Frame, *, timeout_secs: float = 5.0) -> Frame:
        """Send a frame with an id and wait for the answer carrying that id."""
        assert "id" in frame
        await self.send(frame)
        return await self.wait_for(
            lambda f: f.get("id") == frame["id"] and f.get("type") != "message",
            timeout_secs=timeout_secs,
        )

    def of_type(self, kind: str) -> list[Frame]:
        return [f for f in self.frames if f.get("type") == kind]

    def messages(self, channel: str) -> list[Frame]:
        """The message objects received on a channel, in order."""
        return [
            f["message"]
            for f in self.frames
            if f.get("type") == "message" and f.get("channel") == channel
        ]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
