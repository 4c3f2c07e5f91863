"""API tokens and bots under /api: made, listed and revoked by their owner."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import pydantic
from starlette.requests import Request
from starlette.responses import Response

from server.core import tokens
from server.core.principal import Scope
from server.store.credentials import Credential
from server.web._http import JSON, read_model, services_of
from server.web.auth import authenticate


__all__ = [
    "create_bot",
    "create_token",
    "list_bots",
    "list_company_bots",
    "list_tokens",
    "remove_bot",
    "revoke_token",
]

_Name = Annotated[str, pydantic.StringConstraints(max_length=1000)]


class NewToken(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    name: _Name
    scopes: Annotated[list[Scope], pydantic.Field(min_length=1, max_length=4)]
    # Limits the token to these companies; omitted: all of the user's.
    company_ids: Annotated[list[uuid.UUID], pydantic.Field(max_length=1000)] | None = (
        None
    )
    expires_in_days: int | None = None
    # A bot of the caller's to make the token for; omitted: the caller.
    user_id: uuid.UUID | None = None


class NewBot(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    name: _Name


def token_json(credential: Credential, user_name: str) -> dict[str, Any]:
    return {
        "id": credential.id,
        "name": credential.name,
        "user": {"id": credential.user_id, "name": user_name},
        "scopes": sorted(credential.scopes),
        "company_ids": None
        if credential.company_ids is None
        else sorted(str(c) for c in credential.company_ids),
        "created_at": credential.created_at,
        "last_used_at": credential.last_used_at,
        "expires_at": credential.expires_at,
    }


async def create_token(request: Request) -> Response:
    """POST /api/tokens: the secret is in this answer and nowhere else, ever."""
    principal = await authenticate(request)
    body = await read_model(request, NewToken, max_bytes=64 * 1024)
    issued = await tokens.create_token(
        services_of(request),
        principal,
        name=body.name,
        scopes=frozenset(s.value for s in body.scopes),
        company_ids=None if body.company_ids is None else frozenset(body.company_ids),
        expires_in_days=body.expires_in_days,
        user_id=body.user_id,
    )
    made = issued.principal
    return JSON(
        {
            "token": issued.secret,
            "id": made.credential_id,
            "user": {"id": made.user_id, "name": made.display_name},
            "scopes": sorted(made.scopes),
            "company_ids": None
            if made.company_ids is None
            else sorted(str(c) for c in made.company_ids),
            "expires_at": issued.expires_at,
        },
        status_code=201,
    )


async def list_tokens(request: Request) -> Response:
    """GET /api/tokens"""
    principal = await authenticate(request)
    found = await tokens.list_tokens(services_of(request), principal)
    return JSON({"tokens": [token_json(t.credential, t.user_name) for t in found]})


async def revoke_token(request: Request) -> Response:
    """DELETE /api/tokens/{token_id}"""
    principal = await authenticate(request)
    token_id: uuid.UUID = request.path_params["token_id"]
    await tokens.revoke_token(services_of(request), principal, token_id)
    return Response(status_code=204)


async def create_bot(request: Request) -> Response:
    """POST /api/companies/{company_id}/bots"""
    principal = await authenticate(request)
    body = await read_model(request, NewBot, max_bytes=4096)
    company_id: uuid.UUID = request.path_params["company_id"]
    bot = await tokens.create_bot(
        services_of(request), principal, company_id, body.name
    )
    return JSON(
        {"bot": {"id": bot.id, "name": bot.name, "company_ids": bot.company_ids}},
        status_code=201,
    )


async def list_bots(request: Request) -> Response:
    """GET /api/bots: the bots I made."""
    principal = await authenticate(request)
    found = await tokens.list_bots(services_of(request), principal)
    return JSON(
        {
            "bots": [
                {"id": b.id, "name": b.name, "company_ids": b.company_ids}
                for b in found
            ]
        }
    )


async def list_company_bots(request: Request) -> Response:
    """GET /api/companies/{company_id}/bots: every bot there, for accountants."""
    principal = await authenticate(request)
    found = await tokens.company_bots(
        services_of(request), principal, request.path_params["company_id"]
    )
    return JSON(
        {
            "bots": [
                {
                    "id": b.id,
                    "name": b.name,
                    "owner": None
                    if b.owner_id is None
                    else {"id": b.owner_id, "name": b.owner_name},
                }
                for b in found
            ]
        }
    )


async def remove_bot(request: Request) -> Response:
    """DELETE /api/companies/{company_id}/bots/{bot_id}"""
    principal = await authenticate(request)
    await tokens.remove_bot(
        services_of(request),
        principal,
        request.path_params["company_id"],
        request.path_params["bot_id"],
    )
    return Response(status_code=204)
