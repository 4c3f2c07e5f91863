"""An asyncio client for Tickmark's /ws protocol, for bots and services.

The client keeps one WebSocket open, reconnects with backoff and jitter
when it drops, and resumes every channel from the last position it
delivered, so a program iterating :meth:`Client.messages` sees each
message of each channel once, in order, across reconnects and server
restarts. When the server cannot replay a gap (too many messages missed),
the client pages it over HTTP before going on.

Positions are exposed as :attr:`Client.positions`; a program that saves
them and passes them back after a restart resumes where it stopped, hours
or days later.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


__all__ = [
    "AuthenticationError",
    "Client",
    "ClientError",
    "Delivery",
    "PostRefused",
]

logger = logging.getLogger(__name__)

# Close codes after which reconnecting with the same token is pointless.
_NO_RETRY = {4401: "credentials refused or revoked", 4001: "token expired"}
# Close code asking us to stay away for a while.
_TOO_MANY = 4013
_HTTP_PAGE = 200


class ClientError(Exception):
    """Base class of this client's errors."""


class AuthenticationError(ClientError):
    """The server refused the token; reconnecting will not help."""


class PostRefused(ClientError):
    """The server refused a post; ``error`` is its error object."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", "refused"))
        self.error = error


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One message on one channel, delivered once and in order."""

    channel: str
    # The message's position in the channel (seq or company_seq).
    position: int
    # The message as the API describes it (docs/api.md).
    message: dict[str, Any]


def _position(channel: str, message: dict[str, Any]) -> int:
    key = "company_seq" if channel.startswith("company:") else "seq"
    value: int = message[key]
    return value


class Client:
    """A connection to Tickmark that survives drops and restarts.

    Args:
        url: the server's base URL, like ``https://tickmark.example``.
        token: a bearer token (``tmk_...``).
        positions: channel -> last position handled, from a previous run.
        backoff_start_secs: first wait before reconnecting.
        backoff_max_secs: longest wait between attempts.
        queue_size: deliveries held for a slow consumer; when full, the
            client stops reading the socket until there is room (the
            server may then close it as slow, and the client resumes).

    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        positions: dict[str, int] | None = None,
        backoff_start_secs: float = 0.5,
        backoff_max_secs: float = 30.0,
        queue_size: int = 10_000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s)://..., got {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.backoff_start_secs = backoff_start_secs
        self.backoff_max_secs = backoff_max_secs
        #: Last position delivered, by channel; save it to resume later.
        self.positions: dict[str, int] = dict(positions or {})
        # Channels to be subscribed on every (re)connection.
        self._channels: set[str] = set(self.positions)
        # Company of each channel, learned from the server; for paging.
        self._companies: dict[str, str] = {}
        self._deliveries: asyncio.Queue[Delivery] = asyncio.Queue(queue_size)
        # Posts awaiting their ack, by frame id.
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Frames of pending posts, re-sent after a reconnect.
        self._pending_frames: dict[str, dict[str, Any]] = {}
        self._connection: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        # Set when the client stops for good; raised to callers.
        self._fatal: ClientError | None = None
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    # --- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        await self._http.aclose()

    async def wait_connected(self, timeout_secs: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout_secs)

    # --- what programs call ---------------------------------------------------------

    async def subscribe(self, channel: str, since: int | None = None) -> None:
        """Follow a channel from ``since`` (or from now when None and new)."""
        if since is not None:
            self.positions[channel] = since
        self._channels.add(channel)
        if self._connection is not None:
            await self._send_subscribe(self._connection, channel)

    async def messages(self) -> AsyncIterator[Delivery]:
        """Every message of the subscribed channels, once each, in order."""
        while True:
            if self._fatal is not None and self._deliveries.empty():
                raise self._fatal
            try:
                yield await asyncio.wait_for(self._deliveries.get(), 1.0)
            except TimeoutError:
                continue

    async def post(
        self,
        transaction_id: str,
        body: str,
        recipients: list[str],
        *,
        idempotency_key: str | None = None,
        timeout_secs: float = 30.0,
    ) -> dict[str, Any]:
        """Post a message and wait for the server's acknowledgement.

        The post survives reconnects: it is sent again, with the same
        idempotency key, until acknowledged, and stored once.

        Raises:
            PostRefused: the server refused it (the error says why).
            TimeoutError: no acknowledgement in time.

        """
        frame_id = uuid.uuid4().hex
        frame = {
            "type": "post",
            "id": frame_id,
            "transaction_id": transaction_id,
            "body": body,
            "recipients": recipients,
            "idempotency_key": idempotency_key or str(uuid.uuid4()),
        }
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[frame_id] = future
        self._pending_frames[frame_id] = frame
        try:
            if self._connection is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._connection.send(json.dumps(frame))
            ack = await asyncio.wait_for(future, timeout_secs)
        finally:
            self._pending.pop(frame_id, None)
            self._pending_frames.pop(frame_id, None)
        message: dict[str, Any] = ack["message"]
        return message

    async def mark_read(self, transaction_id: str, seq: int) -> None:
        """Mark a transaction read up to ``seq`` (fire and forget)."""
        if self._connection is not None:
            await self._connection.send(
                json.dumps(
                    {"type": "read", "transaction_id": transaction_id, "seq": seq}
                )
            )

    # --- the connection loop --------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.backoff_start_secs
        while True:
            try:
                await self._session()
                backoff = self.backoff_start_secs
            except AuthenticationError as error:
                self._fatal = error
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(error)
                return
            except InvalidStatus as error:
                if error.response.status_code == 401:
                    self._fatal = AuthenticationError("the server refused the token")
                    return
                logger.info("handshake refused: %r", error)
            except Exception as error:
                # Network trouble, a server restarting, a page that failed:
                # all end the same way, with a reconnect after a backoff.
                logger.info("connection lost: %r", error)
                closed = error.rcvd if isinstance(error, ConnectionClosed) else None
                if closed is not None and closed.code == _TOO_MANY:
                    backoff = self.backoff_max_secs
            finally:
                self._connection = None
                self._connected.clear()
            # Full jitter: a crowd of clients cut together spreads out.
            await asyncio.sleep(random.uniform(0, backoff))
            backoff = min(backoff * 2, self.backoff_max_secs)

    async def _session(self) -> None:
        ws_url = "ws" + self.url.removeprefix("http") + "/ws"
        async with connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            open_timeout=10,
            max_size=2**20,
        ) as connection:
            welcome = json.loads(await asyncio.wait_for(connection.recv(), 10))
            if welcome.get("type") != "welcome":
                raise ClientError(f"expected a welcome frame, got {welcome!r}")
            self._connection = connection
            self._connected.set()
            for channel in sorted(self._channels):
                await self._send_subscribe(connection, channel)
            for frame in list(self._pending_frames.values()):
                await connection.send(json.dumps(frame))
            try:
                async for text in connection:
                    await self._handle(json.loads(text))
            except ConnectionClosed as closed:
                if closed.rcvd is not None and closed.rcvd.code in _NO_RETRY:
                    raise AuthenticationError(_NO_RETRY[closed.rcvd.code]) from closed
                raise

    async def _send_subscribe(self, connection: ClientConnection, channel: str) -> None:
        frame: dict[str, Any] = {
            "type": "subscribe",
            "id": "sub:" + channel,
            "channel": channel,
        }
        if channel in self.positions:
            frame["since"] = self.positions[channel]
        await connection.send(json.dumps(frame))

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            await self._deliver(frame["channel"], frame["message"])
        elif kind == "subscribed":
            channel = frame["channel"]
            if frame.get("company_id"):
                self._companies[channel] = frame["company_id"]
            self.positions.setdefault(channel, frame.get("last_seq", 0))
            if frame.get("recovered") is False:
                await self._page(channel, frame["last_seq"])
        elif kind == "resync":
            await self._page(frame["channel"], frame["last_seq"])
        elif kind in ("ack", "error"):
            future = self._pending.get(frame.get("id") or "")
            if future is not None and not future.done():
                if kind == "ack":
                    future.set_result(frame)
                else:
                    future.set_exception(PostRefused(frame))
            elif kind == "error":
                logger.warning("server error: %s", frame.get("message"))

    async def _deliver(self, channel: str, message: dict[str, Any]) -> None:
        position = _position(channel, message)
        known = self.positions.get(channel)
        if known is not None and position <= known:
            return  # already delivered
        if known is not None and position > known + 1:
            # A gap on a live connection: fill it from the record first.
            await self._page(channel, position - 1)
        if position <= self.positions.get(channel, 0):
            return
        self.positions[channel] = position
        await self._deliveries.put(Delivery(channel, position, message))

    async def _page(self, channel: str, up_to: int) -> None:
        """Fetch a channel's messages after our position over HTTP."""
        kind, _, ident = channel.partition(":")
        company = self._companies.get(channel)
        if company is None:
            raise ClientError(f"cannot page {channel}: company unknown")
        if kind == "company":
            path = f"/api/companies/{ident}/messages"
        else:
            path = f"/api/companies/{company}/transactions/{ident}/messages"
        while self.positions.get(channel, 0) < up_to:
            after = self.positions.get(channel, 0)
            response = await self._http.get(
                path, params={"after": after, "limit": _HTTP_PAGE}
            )
            response.raise_for_status()
            page = response.json()["messages"]
            if not page:
                break
            for message in page:
                position = _position(channel, message)
                if position > self.positions.get(channel, 0):
                    self.positions[channel] = position
                    await self._deliveries.put(Delivery(channel, position, message))
