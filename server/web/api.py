"""The JSON API under /api: companies, transactions, messages, badges."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import pydantic
from starlette.requests import Request
from starlette.responses import Response

from server.core import companies, conversations, transactions
from server.errors import InvalidInput
from server.web._http import (
    JSON,
    bool_param,
    int_param,
    read_model,
    services_of,
    settings_of,
)
from server.web.auth import authenticate
from server.web.views import (
    badges_json,
    company_json,
    member_json,
    message_json,
    transaction_json,
    unread_message_json,
)


_Text = Annotated[str, pydantic.StringConstraints(max_length=100_000)]


class PostMessage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    body: _Text
    recipients: Annotated[list[uuid.UUID], pydantic.Field(max_length=1000)]
    idempotency_key: Annotated[str, pydantic.StringConstraints(max_length=1000)]


class MarkRead(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    seq: Annotated[int, pydantic.Field(ge=0, le=2**62)]


class TransactionItem(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    external_id: Annotated[str, pydantic.StringConstraints(max_length=1000)]
    type: Annotated[str, pydantic.StringConstraints(max_length=100)]
    doc_number: _Text = ""
    date: Annotated[str, pydantic.StringConstraints(max_length=100)]
    counterparty: _Text = ""
    memo: _Text = ""
    # A string, not a number, so no client rounds money through a float.
    amount: Annotated[str, pydantic.StringConstraints(max_length=100)]
    currency: Annotated[str, pydantic.StringConstraints(max_length=10)]


class UpsertTransactions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    transactions: list[TransactionItem]


def _path_id(request: Request, name: str) -> uuid.UUID:
    value: uuid.UUID = request.path_params[name]
    return value


async def list_companies(request: Request) -> Response:
    """GET /api/companies"""
    principal = await authenticate(request)
    found = await companies.my_companies(services_of(request), principal)
    return JSON({"companies": [company_json(c) for c in found]})


async def list_members(request: Request) -> Response:
    """GET /api/companies/{company_id}/members"""
    principal = await authenticate(request)
    found = await companies.list_members(
        services_of(request), principal, _path_id(request, "company_id")
    )
    return JSON({"members": [member_json(m) for m in found]})


def _cursor(raw: str | None) -> tuple[dt.date, uuid.UUID] | None:
    if raw is None:
        return None
    date, _, ident = raw.partition("_")
    try:
        return dt.date.fromisoformat(date), uuid.UUID(ident)
    except ValueError:
        raise InvalidInput(
            "The cursor is not one this API gave.", field="cursor"
        ) from None


async def list_transactions(request: Request) -> Response:
    """GET /api/companies/{company_id}/transactions"""
    principal = await authenticate(request)
    limit = int_param(
        request, "limit", 50, minimum=1, maximum=transactions.MAX_LIST_PAGE
    )
    assert limit is not None
    found = await transactions.list_transactions(
        services_of(request),
        principal,
        _path_id(request, "company_id"),
        type=request.query_params.get("type"),
        has_conversation=bool_param(request, "has_conversation"),
        unread_only=bool_param(request, "unread") is True,
        after=_cursor(request.query_params.get("cursor")),
        limit=limit,
    )
    next_cursor = None
    if len(found) == limit:
        last = found[-1].transaction
        next_cursor = f"{last.fields.txn_date.isoformat()}_{last.id}"
    return JSON(
        {
            "transactions": [transaction_json(s) for s in found],
            "next_cursor": next_cursor,
        }
    )


async def upsert_transactions(request: Request) -> Response:
    """POST /api/companies/{company_id}/transactions"""
    principal = await authenticate(request)
    body = await read_model(
        request,
        UpsertTransactions,
        max_bytes=settings_of(request).max_import_request_bytes,
    )
    items = [transactions.TransactionInput(**t.model_dump()) for t in body.transactions]
    results = await transactions.upsert_transactions(
        services_of(request), principal, _path_id(request, "company_id"), items
    )
    return JSON(
        {
            "results": [
                {
                    "external_id": r.external_id,
                    "id": r.transaction_id,
                    "status": r.status,
                }
                for r in results
            ]
        }
    )


async def get_transaction(request: Request) -> Response:
    """GET /api/companies/{company_id}/transactions/{transaction_id}"""
    principal = await authenticate(request)
    summary = await transactions.get_transaction(
        services_of(request),
        principal,
        _path_id(request, "company_id"),
        _path_id(request, "transaction_id"),
    )
    return JSON({"transaction": transaction_json(summary)})


async def list_messages(request: Request) -> Response:
    """GET /api/companies/{company_id}/transactions/{transaction_id}/messages"""
    principal = await authenticate(request)
    limit = int_param(request, "limit", 50, minimum=1, maximum=conversations.MAX_PAGE)
    assert limit is not None
    page = await conversations.list_messages(
        services_of(request),
        principal,
        _path_id(request, "company_id"),
        _path_id(request, "transaction_id"),
        after_seq=int_param(request, "after", None, minimum=0, maximum=2**62),
        before_seq=int_param(request, "before", None, minimum=1, maximum=2**62),
        limit=limit,
    )
    return JSON(
        {
            "messages": [message_json(m) for m in page.messages],
            "last_seq": page.last_seq,
            "has_more": page.has_more,
        }
    )


async def list_company_messages(request: Request) -> Response:
    """GET /api/companies/{company_id}/messages?after=COMPANY_SEQ"""
    principal = await authenticate(request)
    limit = int_param(request, "limit", 100, minimum=1, maximum=conversations.MAX_PAGE)
    after = int_param(request, "after", 0, minimum=0, maximum=2**62)
    assert limit is not None and after is not None
    page = await conversations.list_company_messages(
        services_of(request),
        principal,
        _path_id(request, "company_id"),
        after_company_seq=after,
        limit=limit,
    )
    return JSON(
        {
            "messages": [message_json(m) for m in page.messages],
            "last_seq": page.last_seq,
            "has_more": page.has_more,
        }
    )


async def post_message(request: Request) -> Response:
    """POST /api/companies/{company_id}/transactions/{transaction_id}/messages"""
    principal = await authenticate(request)
    body = await read_model(
        request, PostMessage, max_bytes=settings_of(request).max_request_bytes
    )
    result = await conversations.post_message(
        services_of(request),
        principal,
        _path_id(request, "company_id"),
        _path_id(request, "transaction_id"),
        body=body.body,
        recipient_ids=body.recipients,
        idempotency_key=body.idempotency_key,
    )
    return JSON(
        {"message": message_json(result.message), "created": result.created},
        status_code=201 if result.created else 200,
    )


async def mark_read(request: Request) -> Response:
    """POST /api/companies/{company_id}/transactions/{transaction_id}/read"""
    principal = await authenticate(request)
    body = await read_model(request, MarkRead, max_bytes=1024)
    services = services_of(request)
    marker = await conversations.mark_read(
        services,
        principal,
        _path_id(request, "company_id"),
        _path_id(request, "transaction_id"),
        body.seq,
    )
    badges = await companies.my_badges(services, principal)
    return JSON({"last_read_seq": marker, "badges": badges_json(badges)})


async def my_badges(request: Request) -> Response:
    """GET /api/me/badges"""
    principal = await authenticate(request)
    badges = await companies.my_badges(services_of(request), principal)
    return JSON({"badges": badges_json(badges)})


async def waiting_messages(request: Request) -> Response:
    """GET /api/me/waiting: unread messages addressed to me, newest first."""
    principal = await authenticate(request)
    limit = int_param(request, "limit", 50, minimum=1, maximum=200)
    assert limit is not None
    found = await companies.waiting_messages(
        services_of(request), principal, limit=limit
    )
    return JSON({"messages": [unread_message_json(m) for m in found]})
