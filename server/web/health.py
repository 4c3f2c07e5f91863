"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.core.services import Services
from server.web._http import JSON


__all__ = ["healthz", "readyz"]


async def healthz(request: Request) -> Response:
    """GET /healthz: the process is up and its event loop answers."""
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    """GET /readyz: 200 when the database answers, else 503."""
    services: Services = request.app.state.services
    if await services.db.ping():
        return JSON({"status": "ready", "database": "ok"})
    return JSON(
        {"status": "unavailable", "database": "unreachable"},
        status_code=503,
        headers={"Retry-After": "5"},
    )
