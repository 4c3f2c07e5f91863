"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.broker import Broker
from server.core.services import Services
from server.web._http import JSON


__all__ = ["healthz", "readyz"]


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
