"""Bad input gets an exact status and a JSON error naming the field, and
loses or changes nothing already stored."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from server.core.eligibility import ELIGIBILITY_RULE
from server.store.database import Database
from tests.world import World, post


def _message(**overrides: Any) -> dict[str, Any]:
    return {"body": "hello", "idempotency_key": str(uuid.uuid4())} | overrides


# name, request body (a dict is sent as JSON, bytes as they are), status,
# error code, field
POST_CASES: list[tuple[str, Any, int, str, str | None]] = [
    ("malformed JSON", b'{"body": "unfinished', 400, "malformed_json", None),
    ("a JSON array", b"[1, 2]", 422, "invalid", "body"),
    ("empty request", b"", 422, "invalid", "body"),
    ("body of the wrong type", _message(body=5), 422, "invalid", "body"),
    ("recipients not a list", _message(recipients="x"), 422, "invalid", "recipients"),
    ("recipient not an id", _message(recipients=[5]), 422, "invalid", "recipients.0"),
    (
        "key of the wrong type",
        _message(idempotency_key=7),
        422,
        "invalid",
        "idempotency_key",
    ),
    (
        "missing body",
        {"recipients": [], "idempotency_key": "k"},
        422,
        "invalid",
        "body",
    ),
    ("unknown field", _message(urgent=True), 422, "invalid", "urgent"),
    ("empty body", _message(body=""), 422, "invalid", "body"),
    ("blank body", _message(body=" \n\t "), 422, "invalid", "body"),
    (
        "invisible body",
        _message(body="\u200b\u200d\u202e\u2028\ufeff"),
        422,
        "invalid",
        "body",
    ),
    ("oversized body", _message(body="x" * 16385), 422, "invalid", "body"),
    (
        "multibyte body over the byte limit",
        _message(body="€" * 5462),
        422,
        "invalid",
        "body",
    ),
    ("NUL in body", _message(body="a\x00b"), 422, "invalid", "body"),
    # Unpaired surrogates are not text (RFC 7493 forbids them in I-JSON).
    ("unpaired surrogate", b"SURROGATE", 400, "malformed_json", None),
    (
        "bad key",
        _message(idempotency_key="has space"),
        422,
        "invalid",
        "idempotency_key",
    ),
    (
        "key ending in a line break",
        _message(idempotency_key="k\n"),
        422,
        "invalid",
        "idempotency_key",
    ),
    ("no recipients", _message(recipients=[]), 422, "invalid", "recipients"),
    (
        "unknown recipient",
        _message(recipients=["UNKNOWN"]),
        422,
        "invalid",
        "recipients",
    ),
    ("foreign recipient", _message(recipients=["BEN"]), 422, "invalid", "recipients"),
    ("self as recipient", _message(recipients=["ANA"]), 422, "invalid", "recipients"),
    (
        "twice the same recipient",
        _message(recipients=["CARL", "CARL"]),
        422,
        "invalid",
        "recipients",
    ),
    ("oversized request", _message(body="x" * 70_000), 413, "too_large", None),
]


def _resolve(body: Any, world: World) -> Any:
    if isinstance(body, dict) and "recipients" in body:
        names = {
            "UNKNOWN": str(uuid.uuid4()),
            "BEN": str(world.ben.id),
            "ANA": str(world.ana.id),
            "CARL": str(world.carl.id),
        }
        recipients = body["recipients"]
        if isinstance(recipients, list):
            body = body | {"recipients": [names.get(r, r) for r in recipients]}
    elif isinstance(body, dict):
        body = body | {"recipients": [str(world.carl.id)]}
    if body == b"SURROGATE":
        return (
            b'{"body": "a\\ud800b", "recipients": ["'
            + str(world.carl.id).encode()
            + b'"], "idempotency_key": "k1"}'
        )
    return body


async def _snapshot(db: Database) -> list[Any]:
    async with db.connection() as conn:
        rows = []
        for table, order in [
            ("messages", "id"),
            ("message_recipients", "message_id, user_id"),
            ("conversations", "id"),
            ("read_states", "user_id, conversation_id"),
            ("transactions", "id"),
        ]:
            rows.append(
                [
                    tuple(r)
                    for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")
                ]
            )
        return rows


@pytest.mark.parametrize(
    ("name", "body", "status", "code", "field"),
    POST_CASES,
    ids=[c[0] for c in POST_CASES],
)
async def test_bad_posts_are_refused_and_change_nothing(
    world: World,
    db: Database,
    name: str,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    url = world.tx_url(world.a, world.txa["bill"]) + "/messages"
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "kept", [world.carl])
        before = await _snapshot(db)
        resolved = _resolve(body, world)
        raw = resolved if isinstance(resolved, bytes) else json.dumps(resolved).encode()
        response = await ana.post(
            url, content=raw, headers={"Content-Type": "application/json"}
        )
        after = await _snapshot(db)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error.get("field") == field
    assert error["message"]
    assert after == before


async def test_a_post_on_a_transaction_that_takes_no_conversation_names_the_rule(
    world: World, db: Database
) -> None:
    async with world.client(world.ana) as ana:
        response = await post(
            ana, world, world.a, world.txa["sales_receipt"], "hello", [world.carl]
        )
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "conversation_not_allowed",
        "message": "Sales receipt transactions cannot have a conversation. "
        + ELIGIBILITY_RULE,
        "field": "transaction",
    }
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM conversations") == 0


async def test_a_body_not_declared_as_json_is_refused(world: World) -> None:
    async with world.client(world.ana) as ana:
        response = await ana.post(
            world.tx_url(world.a, world.txa["bill"]) + "/messages",
            content=b"body=hello",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"seq": -1}, "seq"), ({"seq": "3"}, "seq"), ({}, "seq"), ({"seq": 1.5}, "seq")],
)
async def test_bad_read_markers_are_refused(
    world: World, body: dict[str, Any], field: str
) -> None:
    async with world.client(world.carl) as carl:
        response = await carl.post(
            world.tx_url(world.a, world.txa["bill"]) + "/read", json=body
        )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "-1"}, "after"),
        ({"after": "1", "before": "5"}, "after"),
    ],
)
async def test_bad_paging_parameters_are_refused(
    world: World, params: dict[str, str], field: str
) -> None:
    async with world.client(world.carl) as carl:
        response = await carl.get(
            world.tx_url(world.a, world.txa["bill"]) + "/messages", params=params
        )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "journal_entry"}, "type"),
        ({"has_conversation": "maybe"}, "has_conversation"),
        ({"cursor": "yesterday"}, "cursor"),
    ],
)
async def test_bad_transaction_filters_are_refused(
    world: World, params: dict[str, str], field: str
) -> None:
    async with world.client(world.carl) as carl:
        response = await carl.get(
            f"/api/companies/{world.a}/transactions", params=params
        )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
