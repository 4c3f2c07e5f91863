"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from server.broker import Broker
from server.core.services import Services
from server.errors import NotFound
from server.metrics import Metrics
from server.web._http import JSON, error_response, settings_of


__all__ = ["healthz", "metrics", "readyz"]


async def healthz(request: Request) -> Response:
    """GET /healthz: the process is up and its event loop answers."""
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    """GET /readyz: 200 when the database answers, else 503.

    A broker that cannot reach Redis makes the answer ``degraded`` but
    still 200: the process keeps serving its own connections, and they
    recover what passed once Redis is back, so taking it out of rotation
    would only make things worse.
    """
    services: Services = request.app.state.services
    broker: Broker = request.app.state.broker
    database_ok = await services.db.ping()
    body = {
        "status": "ready" if broker.healthy else "degraded",
        "database": "ok" if database_ok else "unreachable",
        "broker": "ok" if broker.healthy else "unreachable",
    }
    if database_ok:
        return JSON(body)
    return JSON(
        body | {"status": "unavailable"}, status_code=503, headers={"Retry-After": "5"}
    )


_LOOPBACK = frozenset({"127.0.0.1", "::1"})


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus metrics of this process.

    With METRICS_TOKEN set, the scraper sends it as a bearer token;
    without, only scrapers on this machine are answered.
    """
    settings = settings_of(request)
    if settings.metrics_token is not None:
        expected = "Bearer " + settings.metrics_token
        given = request.headers.get("authorization", "")
        allowed = hmac.compare_digest(given.encode(), expected.encode())
    else:
        allowed = request.client is not None and request.client.host in _LOOPBACK
    if not allowed:
        return error_response(NotFound())
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
