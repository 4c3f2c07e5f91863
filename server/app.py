"""Builds the Starlette application: routes, error pages, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn import Config

from server.broker import Broker
from server.broker.memory import MemoryBroker
from server.broker.redis_pubsub import RedisBroker
from server.clock import Clock, SystemClock
from server.core.accounts import AccountPolicy
from server.core.conversations import PostQueue
from server.core.notifications import NotificationPolicy
from server.core.services import Services
from server.errors import NotFound, TickmarkError
from server.live.events import LiveEvents
from server.live.hub import Hub
from server.live.limits import LiveLimits
from server.live.wire import DirectWriteProtocol
from server.metrics import Metrics
from server.settings import Settings
from server.store.database import Database
from server.store.migrate import apply_migrations
from server.web import ws
from server.web._http import JSON, error_response
from server.web.routes import routes


__all__ = ["create_app", "open_broker", "open_database", "server_config"]

logger = logging.getLogger(__name__)


class SocketShortcut:
    """Hands the WebSocket endpoint its sockets ahead of the router.

    A socket lives as long as the ASGI call that opened it, and so does
    every coroutine between uvicorn and the endpoint: through the router,
    the route and the exception middleware with their wrappers, eight of
    them, held in memory for each of thousands of open sockets. None acts
    on this endpoint, which answers its own refusals and closes its own
    sockets, so its sockets go to it directly. (Behind a ``root_path``
    the path does not match, and the router serves it as before.)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        endpoint: Callable[[WebSocket], Awaitable[None]],
    ) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            await self.endpoint(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds the headers every answer should carry, whatever route made it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # Answers carry private data and must not be kept by caches; the
        # static files are the same for everyone and are revalidated instead
        # (StaticFiles answers 304 when they have not changed).
        static = scope["path"].startswith("/static/")
        cache = b"no-cache" if static else b"no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.extend(
                    [
                        (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"no-referrer"),
                        (b"x-frame-options", b"DENY"),
                        (b"cache-control", cache),
                    ]
                )
            await send(message)

        await self.app(scope, receive, send_with_headers)


def policy_from(settings: Settings) -> AccountPolicy:
    return AccountPolicy(
        session_idle_secs=settings.session_idle_secs,
        sign_in_token_secs=settings.sign_in_token_secs,
        failures_per_account=settings.sign_in_failures_per_account,
        failures_per_account_total=settings.sign_in_failures_per_account_total,
        failures_per_address=settings.sign_in_failures_per_address,
        failure_window_secs=settings.sign_in_window_secs,
    )


def notification_policy(settings: Settings) -> NotificationPolicy:
    return NotificationPolicy(
        default_delay_secs=settings.email_delay_secs,
        max_emails_per_hour=settings.email_max_per_hour,
    )


async def open_database(settings: Settings) -> Database:
    """Connect to DATABASE_URL, or to the embedded server when unset.

    The embedded database is migrated here, since it has no release step
    of its own; a configured one is migrated by ``tickmark migrate``.
    """
    url = settings.database_url
    if url is not None:
        return await Database.connect(
            url,
            pool_size=settings.db_pool_size,
            command_timeout_secs=settings.db_command_timeout_secs,
        )

    from server.embedded import EmbeddedPostgres

    url = await EmbeddedPostgres(settings.data_dir).start()
    db = await Database.connect(
        url,
        pool_size=settings.db_pool_size,
        command_timeout_secs=settings.db_command_timeout_secs,
    )
    async with db.connection() as conn:
        await apply_migrations(conn)
    return db


async def _tickmark_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TickmarkError)
    return error_response(exc)


_PAGE_NOT_FOUND = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found - Tickmark</title>
<link rel="stylesheet" href="/static/tickmark.css"></head>
<body><main class="notice"><h1>Page not found</h1>
<p>There is no page at this address. <a href="/">Go to Home</a>.</p>
</main></body></html>
"""


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        if not request.url.path.startswith("/api/") and "text/html" in (
            request.headers.get("accept", "")
        ):
            # A person mistyped an address: a page, not JSON.
            return HTMLResponse(_PAGE_NOT_FOUND, status_code=404)
        return error_response(NotFound())
    return JSON(
        {"error": {"code": "http_error", "message": exc.detail}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return JSON(
        {
            "error": {
                "code": "internal_error",
                "message": "Something went wrong on our side.",
            }
        },
        status_code=500,
    )


def live_limits(settings: Settings) -> LiveLimits:
    return LiveLimits(
        max_frame_bytes=settings.ws_max_frame_bytes,
        max_subscriptions=settings.ws_max_subscriptions,
        max_connections=settings.ws_max_connections,
        max_connections_per_user=settings.ws_max_connections_per_user,
        frames_per_sec=settings.ws_frames_per_sec,
        frames_burst=2 * settings.ws_frames_per_sec,
        send_queue_frames=settings.ws_send_queue_frames,
        auth_timeout_secs=settings.ws_auth_timeout_secs,
        replay_limit=settings.ws_replay_limit,
        active_secs=settings.presence_active_secs,
        credential_check_secs=settings.ws_credential_check_secs,
    )


def open_broker(settings: Settings) -> Broker:
    """Redis when REDIS_URL is set, else the in-process broker."""
    if settings.redis_url is None:
        return MemoryBroker()
    return RedisBroker(settings.redis_url)


def server_config(app: ASGIApp, settings: Settings, *, host: str, port: int) -> Config:
    """How uvicorn runs the app.

    The WebSocket limits match the protocol's, and the WebSocket protocol
    lets fan-out write a frame encoded once to every subscriber's socket
    (``server.live.wire``).
    """
    return Config(
        app,
        host=host,
        port=port,
        ws=DirectWriteProtocol,
        ws_max_size=settings.ws_max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval_secs,
        ws_ping_timeout=settings.ws_ping_timeout_secs,
        ws_per_message_deflate=settings.ws_compression,
        log_config=None,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_secs),
    )


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
    broker: Broker | None = None,
    run_worker: bool = False,
) -> Starlette:
    """Build the application.

    Args:
        settings: the process's settings.
        database: an open pool to use instead of opening one from settings;
            the caller keeps ownership and closes it.
        clock: the time source; the system clock by default.
        broker: a started broker to use instead of one from settings; the
            caller keeps ownership and closes it.
        run_worker: also send email and webhooks from this process (for
            running everything in one, as ``make run`` does).

    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = database if database is not None else await open_database(settings)
        fanout = broker if broker is not None else open_broker(settings)
        if broker is None:
            await fanout.start()
        metrics = Metrics()
        services = Services(
            db=db,
            clock=clock or SystemClock(),
            events=LiveEvents(fanout, metrics),
            policy=policy_from(settings),
            notifications=notification_policy(settings),
        )
        posting = PostQueue(services)
        posting.start()
        services = dataclasses.replace(services, posting=posting)
        hub = Hub(
            services,
            fanout,
            live_limits(settings),
            node=uuid.uuid4().hex[:12],
            metrics=metrics,
        )
        metrics.watch(hub, fanout)
        stop_timing_collections = metrics.watch_garbage_collector()
        app.state.metrics = metrics
        await hub.start()
        app.state.services = services
        app.state.broker = fanout
        app.state.hub = hub
        stop_worker = asyncio.Event()
        worker_task = None
        if run_worker:
            from server.worker import build_worker

            worker = build_worker(settings, db, services.clock)
            worker_task = asyncio.create_task(worker.run(stop_worker), name="worker")
            logger.info(
                "sending email and webhooks from this process",
                extra={"mail_to": worker.mail_destination},
            )
        logger.info(
            "tickmark ready",
            extra={"public_url": settings.public_url, "broker": type(fanout).__name__},
        )
        try:
            yield
        finally:
            stop_worker.set()
            if worker_task is not None:
                await worker_task
            await hub.close()
            await posting.close()
            stop_timing_collections()
            if broker is None:
                await fanout.close()
            if database is None:
                await db.close()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SocketShortcut, path="/ws", endpoint=ws.websocket_endpoint),
            Middleware(SecurityHeaders),
        ],
        exception_handlers={
            TickmarkError: _tickmark_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
