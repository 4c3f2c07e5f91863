"""Webhooks under /api/companies/{company_id}/webhooks, for accountants."""

from __future__ import annotations

import uuid
from typing import Annotated

import pydantic
from starlette.requests import Request
from starlette.responses import Response

from server.core import webhooks
from server.settings import Settings
from server.store.webhooks import Delivery, Webhook
from server.web._http import JSON, int_param, read_model, services_of
from server.web.auth import authenticate


__all__ = ["create_webhook", "delete_webhook", "list_deliveries", "list_webhooks"]


class NewWebhook(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    url: Annotated[str, pydantic.StringConstraints(max_length=2000)]


def _ids(request: Request) -> tuple[uuid.UUID, uuid.UUID]:
    return request.path_params["company_id"], request.path_params["webhook_id"]


def _webhook_json(webhook: Webhook) -> dict[str, object]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "created_at": webhook.created_at,
        "created_by": webhook.created_by,
    }


def _delivery_json(delivery: Delivery) -> dict[str, object]:
    return {
        "id": delivery.id,
        "message_id": delivery.message_id,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at
        if delivery.state == "pending"
        else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


async def create_webhook(request: Request) -> Response:
    """POST /api/companies/{company_id}/webhooks: the secret is shown once."""
    principal = await authenticate(request)
    body = await read_model(request, NewWebhook, max_bytes=8192)
    settings: Settings = request.app.state.settings
    webhook = await webhooks.create(
        services_of(request),
        principal,
        request.path_params["company_id"],
        body.url,
        allow_private=settings.webhook_allow_private,
    )
    return JSON(
        {"webhook": _webhook_json(webhook) | {"secret": webhook.secret}},
        status_code=201,
    )


async def list_webhooks(request: Request) -> Response:
    """GET /api/companies/{company_id}/webhooks"""
    principal = await authenticate(request)
    found = await webhooks.list_webhooks(
        services_of(request), principal, request.path_params["company_id"]
    )
    return JSON({"webhooks": [_webhook_json(w) for w in found]})


async def delete_webhook(request: Request) -> Response:
    """DELETE /api/companies/{company_id}/webhooks/{webhook_id}"""
    principal = await authenticate(request)
    company_id, webhook_id = _ids(request)
    await webhooks.delete(services_of(request), principal, company_id, webhook_id)
    return Response(status_code=204)


async def list_deliveries(request: Request) -> Response:
    """GET /api/companies/{company_id}/webhooks/{webhook_id}/deliveries"""
    principal = await authenticate(request)
    company_id, webhook_id = _ids(request)
    limit = int_param(request, "limit", 50, minimum=1, maximum=200)
    assert limit is not None
    found = await webhooks.delivery_log(
        services_of(request), principal, company_id, webhook_id, limit=limit
    )
    return JSON({"deliveries": [_delivery_json(d) for d in found]})
