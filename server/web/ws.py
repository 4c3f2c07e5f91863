"""The /ws endpoint: the WebSocket handshake and authentication.

Three ways in, never a token in the URL (query strings end up in access
logs):

- the browser's session cookie, only from an allowed ``Origin``; anything
  else is refused before the upgrade, so another site cannot open a socket
  with a visitor's cookie (cross-site WebSocket hijacking);
- ``Authorization: Bearer`` on the handshake, for programs;
- an ``auth`` frame as the first frame, within a deadline, for clients
  that cannot set headers on the handshake.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket

from server.core import accounts
from server.core.principal import Principal
from server.core.services import Services
from server.errors import Forbidden, TickmarkError, Unauthenticated, Unavailable
from server.live.connection import Connection
from server.live.hub import Hub
from server.live.protocol import AuthFrame, CloseCode, error_frame, parse_client_frame
from server.settings import Settings
from server.web._http import error_response
from server.web.auth import SESSION_COOKIE, bearer_secret


__all__ = ["websocket_endpoint"]

logger = logging.getLogger(__name__)


async def _deny(websocket: WebSocket, error: TickmarkError) -> None:
    """Refuse the upgrade with an HTTP status and a JSON body."""
    try:
        await websocket.send_denial_response(error_response(error))
    except RuntimeError:
        # The server cannot send a body: a plain refusal (HTTP 403).
        await websocket.close(code=1008)


async def _handshake_principal(
    websocket: WebSocket, services: Services, settings: Settings
) -> Principal | None:
    """The caller from the handshake's headers; None to wait for a frame.

    Raises:
        Unauthenticated: credentials that are not valid.
        Forbidden: a session cookie sent from an origin not allowed.

    """
    secret = bearer_secret(websocket)
    if secret is None:
        secret = websocket.cookies.get(SESSION_COOKIE)
        if secret is None:
            return None
        # A cookie alone proves nothing about which page opened the socket:
        # browsers always send Origin on WebSocket handshakes, so one
        # without it, or from elsewhere, is not ours.
        if websocket.headers.get("origin") not in settings.origins:
            raise Forbidden(
                "WebSocket connections with a session cookie must come from this site.",
                code="bad_origin",
            )
    return await accounts.authenticate(
        services.db, secret, policy=services.policy, clock=services.clock
    )


async def _first_frame_principal(
    websocket: WebSocket, services: Services, timeout_secs: float
) -> Principal | None:
    """Wait for an ``auth`` frame; closes the socket and returns None if none."""
    try:
        event = await asyncio.wait_for(websocket.receive(), timeout_secs)
    except TimeoutError:
        await websocket.close(
            CloseCode.AUTH_TIMEOUT, "authenticate within the deadline"
        )
        return None
    if event["type"] == "websocket.disconnect":
        return None
    try:
        text = event.get("text")
        if text is None:
            raise Unauthenticated("Send an auth frame, as JSON text, first.")
        parsed = parse_client_frame(text)
        if not isinstance(parsed, AuthFrame):
            raise Unauthenticated("Send an auth frame first.")
        return await accounts.authenticate(
            services.db, parsed.token, policy=services.policy, clock=services.clock
        )
    except Unavailable as error:
        # Our database, not the client, is the trouble: come back later.
        await websocket.send_text(error_frame(error))
        await websocket.close(CloseCode.TRY_AGAIN_LATER, "try again later")
        return None
    except TickmarkError as error:
        await websocket.send_text(error_frame(error))
        await websocket.close(CloseCode.UNAUTHENTICATED, "authentication failed")
        return None


async def websocket_endpoint(websocket: WebSocket) -> None:
    """GET /ws (upgrade)."""
    settings: Settings = websocket.app.state.settings
    services: Services = websocket.app.state.services
    hub: Hub = websocket.app.state.hub
    if hub.closing:
        await _deny(
            websocket, Unavailable("The server is shutting down.", retry_after_secs=2)
        )
        return
    if hub.connection_count() >= hub.limits.max_connections:
        # Spread a reconnect storm out rather than take on more than we hold.
        logger.warning("connection refused: at capacity")
        await _deny(
            websocket, Unavailable("The server is at capacity.", retry_after_secs=5)
        )
        return
    try:
        principal = await _handshake_principal(websocket, services, settings)
    except TickmarkError as error:
        logger.info("websocket handshake refused", extra={"code": error.code})
        await _deny(websocket, error)
        return

    await websocket.accept()
    if principal is None:
        principal = await _first_frame_principal(
            websocket, services, hub.limits.auth_timeout_secs
        )
        if principal is None:
            return
    if hub.connection_count(principal.user_id) >= hub.limits.max_connections_per_user:
        await websocket.close(
            CloseCode.TOO_MANY_CONNECTIONS, "too many connections for this user"
        )
        return
    await Connection(websocket, principal, hub, services, hub.limits).run()
