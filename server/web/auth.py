"""Recognising callers over HTTP, and the sign-in and sign-out routes.

Browsers carry a session in an HttpOnly cookie; programs send
``Authorization: Bearer <token>``. A request that relies on the cookie to
change something must come from one of our own origins, or any site the
user visits could make their browser act for them (cross-site request
forgery); SameSite=Lax on the cookie is the first guard, this the second.
"""

from __future__ import annotations

from typing import Annotated

import pydantic
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from server.core import accounts
from server.core.principal import Principal
from server.errors import Forbidden, Unauthenticated
from server.store import users
from server.web._http import JSON, read_model, services_of, settings_of


__all__ = [
    "SESSION_COOKIE",
    "authenticate",
    "origin_allowed",
    "sign_in",
    "sign_in_for_token",
    "sign_out",
]

SESSION_COOKIE = "tickmark_session"

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    email: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=1024)]


def origin_allowed(conn: HTTPConnection) -> bool:
    """Tell whether a browser request comes from one of our origins.

    A request without ``Origin`` is allowed only when nothing says it is
    cross-site: browsers send ``Origin`` on every cross-site request that
    can change state, and ``Sec-Fetch-Site`` on every request at all.
    """
    origin = conn.headers.get("origin")
    if origin is not None:
        return origin in settings_of(conn).origins
    return conn.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


def bearer_secret(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
    return secret.strip()


async def authenticate(conn: HTTPConnection) -> Principal:
    """The caller behind a request or WebSocket handshake.

    Raises:
        Unauthenticated: no credentials, or ones that are not valid.
        Forbidden: code ``bad_origin`` for a cookie sent from another site.

    """
    cached: Principal | None = getattr(conn.state, "principal", None)
    if cached is not None:
        return cached
    services = services_of(conn)
    secret = bearer_secret(conn)
    if secret is None:
        secret = conn.cookies.get(SESSION_COOKIE)
        if secret is None:
            raise Unauthenticated("Sign in to continue.")
        unsafe = (
            conn.scope["type"] == "websocket"
            or conn.scope["method"] not in _SAFE_METHODS
        )
        if unsafe and not origin_allowed(conn):
            raise Forbidden("This request came from another site.", code="bad_origin")
    principal = await accounts.authenticate(
        services.db, secret, policy=services.policy, clock=services.clock
    )
    conn.state.principal = principal
    return principal


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _user_json(user: users.User | None, principal: Principal) -> dict[str, object]:
    return {
        "id": principal.user_id,
        "name": principal.display_name,
        "kind": principal.user_kind,
        "email": None if user is None else user.email,
        "time_zone": None if user is None else user.time_zone,
    }


async def _sign_in(request: Request, kind: str) -> accounts.IssuedCredential:
    if not origin_allowed(request):
        raise Forbidden("This request came from another site.", code="bad_origin")
    body = await read_model(request, SignIn, max_bytes=4096)
    services = services_of(request)
    issued = await accounts.sign_in(
        services.db,
        email=body.email,
        password=body.password,
        address=_client_address(request),
        kind=kind,
        policy=services.policy,
        clock=services.clock,
    )
    return issued


async def sign_in(request: Request) -> Response:
    """POST /api/auth/sign-in: open a browser session (a cookie)."""
    issued = await _sign_in(request, "session")
    settings = settings_of(request)
    async with services_of(request).db.connection() as conn:
        user = await users.by_id(conn, issued.principal.user_id)
    response = JSON({"user": _user_json(user, issued.principal)})
    response.set_cookie(
        SESSION_COOKIE,
        issued.secret,
        max_age=settings.session_idle_secs,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


async def sign_in_for_token(request: Request) -> Response:
    """POST /api/auth/token: sign in a program; answers a bearer token."""
    issued = await _sign_in(request, "token")
    async with services_of(request).db.connection() as conn:
        user = await users.by_id(conn, issued.principal.user_id)
    return JSON(
        {
            "token": issued.secret,
            "expires_at": issued.expires_at,
            "user": _user_json(user, issued.principal),
        },
        status_code=201,
    )


async def sign_out(request: Request) -> Response:
    """POST /api/auth/sign-out: end the session or token used to call it."""
    principal = await authenticate(request)
    services = services_of(request)
    await accounts.sign_out(
        services.db, principal, clock=services.clock, events=services.events
    )
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=settings_of(request).secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


async def me(request: Request) -> Response:
    """GET /api/me: who the credentials belong to."""
    principal = await authenticate(request)
    async with services_of(request).db.connection() as conn:
        user = await users.by_id(conn, principal.user_id)
    return JSON({"user": _user_json(user, principal)})
