"""No one reaches another company's data, through any route.

The routes are walked from the route table itself, so a new route fails
these tests until it is classified here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from server.web.routes import routes
from tests.world import World, post


PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    # Loopback or a token of its own (METRICS_TOKEN); see test_health.
    ("GET", "/metrics"),
    ("GET", "/sign-in"),
    # The one-click unsubscribe link carries its own signed token.
    ("GET", "/unsubscribe/{token}"),
    ("POST", "/unsubscribe/{token}"),
}
SIGN_IN = {("POST", "/api/auth/sign-in"), ("POST", "/api/auth/token")}
# Pages for people: signed out, they send you to sign in and back.
PAGES = {
    ("GET", "/"),
    ("GET", "/messages"),
    ("GET", "/companies/{company_id}/transactions/{transaction_id}"),
    ("GET", "/settings"),
    ("GET", "/mailbox"),
    ("GET", "/mailbox/{mail_id}"),
}
# Documents shown inside our pages' frames: signed out, simply not found.
FRAMES = {("GET", "/mailbox/{mail_id}/html")}

# A valid body for each write route, so that a refusal is about access,
# never about the body.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/companies/{company_id:uuid}/transactions"): {
        "transactions": [
            {
                "external_id": "x-1",
                "type": "bill",
                "date": "2026-03-01",
                "amount": "1.00",
                "currency": "USD",
            }
        ]
    },
    (
        "POST",
        "/api/companies/{company_id:uuid}/transactions/{transaction_id:uuid}/read",
    ): {"seq": 1},
    ("POST", "/api/companies/{company_id:uuid}/bots"): {"name": "Probe bot"},
    ("POST", "/api/tokens"): {"name": "probe", "scopes": ["read"]},
    ("POST", "/api/companies/{company_id:uuid}/webhooks"): {
        "url": "https://hooks.example.com/probe"
    },
}


def _route_table() -> list[tuple[str, str]]:
    table = []
    for route in routes:
        path: str = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or set()
        for method in sorted(set(methods) - {"HEAD"}):
            table.append((method, path))
    return table


def _body(method: str, path: str, world: World) -> dict[str, Any] | None:
    if path.endswith("/messages") and method == "POST":
        return {
            "body": "probe",
            "recipients": [str(world.bea.id)],
            "idempotency_key": str(uuid.uuid4()),
        }
    return BODIES.get((method, path))


def _fill(path: str, company: uuid.UUID, txn: uuid.UUID) -> str:
    path = re.sub(r"\{company_id(:uuid)?\}", str(company), path)
    path = re.sub(r"\{transaction_id(:uuid)?\}", str(txn), path)
    # Any other id (a token's, a mail's) names nothing: it must not matter.
    return re.sub(r"\{[a-z_]+(:uuid)?\}", uuid.uuid4().hex, path)


COMPANY_ROUTES = [r for r in _route_table() if "{company_id:uuid}" in r[1]]
# Everything else under /api needs credentials.
PRIVATE_ROUTES = [
    r for r in _route_table() if r[1].startswith("/api/") and r not in SIGN_IN
]


def test_every_route_is_classified() -> None:
    unclassified = {
        r for r in _route_table() if r not in PUBLIC | SIGN_IN | PAGES | FRAMES
    } - set(PRIVATE_ROUTES)
    assert unclassified == set()
    assert set(_route_table()) >= PUBLIC | SIGN_IN | PAGES | FRAMES
    assert COMPANY_ROUTES, "the table has company routes"


@pytest.mark.parametrize(("method", "path"), sorted(FRAMES))
async def test_framed_documents_are_not_found_when_signed_out(
    world: World, method: str, path: str
) -> None:
    async with world.client() as anonymous:
        response = await anonymous.request(method, _fill(path, world.a, world.a))
    assert response.status_code == 404


@pytest.mark.parametrize(("method", "path"), sorted(PAGES))
async def test_pages_send_signed_out_visitors_to_sign_in_and_back(
    world: World, method: str, path: str
) -> None:
    url = _fill(path, world.a, world.txa["bill"])
    async with world.client() as anonymous:
        response = await anonymous.request(method, url + "?tab=messages")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=" + quote(
        url + "?tab=messages", safe=""
    )


@pytest.mark.parametrize(("method", "path"), PRIVATE_ROUTES)
async def test_anonymous_callers_are_refused(
    world: World, method: str, path: str
) -> None:
    url = _fill(path, world.a, world.txa["bill"])
    async with world.client() as anonymous:
        response = await anonymous.request(method, url, json=_body(method, path, world))
        garbage = await anonymous.request(
            method,
            url,
            json=_body(method, path, world),
            headers={"Authorization": "Bearer tmk_not-a-real-token"},
        )
    for answer in (response, garbage):
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"


async def _probe(
    client: httpx.AsyncClient, method: str, path: str, url: str, world: World
) -> httpx.Response:
    return await client.request(method, url, json=_body(method, path, world))


@pytest.mark.parametrize(("method", "path"), COMPANY_ROUTES)
async def test_another_companys_ids_look_like_missing_ids(
    world: World, method: str, path: str
) -> None:
    async with world.client(world.ana) as ana:
        await post(ana, world, world.a, world.txa["bill"], "A's secret", [world.carl])
    async with world.client(world.ben) as ben:
        await post(ben, world, world.b, world.txb["bill"], "B's secret", [world.bea])

    missing = uuid.uuid4()
    urls = {
        "B's company and transaction": _fill(path, world.b, world.txb["bill"]),
        "own company, B's transaction": _fill(path, world.a, world.txb["bill"]),
        "missing company": _fill(path, missing, world.txa["bill"]),
        "own company, missing transaction": _fill(path, world.a, missing),
    }
    if "{transaction_id:uuid}" not in path:
        del urls["own company, B's transaction"]
        del urls["own company, missing transaction"]
    answers = {}
    async with world.client(world.ana) as ana:
        for name, url in urls.items():
            answers[name] = await _probe(ana, method, path, url, world)
    for name, answer in answers.items():
        assert answer.status_code == 404, name
        assert answer.json() == {
            "error": {"code": "not_found", "message": "Not found."}
        }, name
        assert "B's secret" not in answer.text


async def test_lists_never_include_another_companys_rows(world: World) -> None:
    async with world.client(world.ben) as ben:
        await post(ben, world, world.b, world.txb["bill"], "B's secret", [world.bea])
    async with world.client(world.ana) as ana:
        bodies = [
            (await ana.get(url)).text
            for url in (
                "/api/companies",
                "/api/me/badges",
                "/api/me/waiting",
                f"/api/companies/{world.a}/members",
                f"/api/companies/{world.a}/transactions?limit=200",
            )
        ]
    for text in bodies:
        assert str(world.b) not in text
        assert "Bluefin" not in text
        assert "B's secret" not in text
        assert "Ben Ortiz" not in text
        assert "B-10" not in text


async def test_members_list_names_and_roles_without_emails(world: World) -> None:
    async with world.client(world.carl) as carl:
        members = (await carl.get(f"/api/companies/{world.a}/members")).json()
    assert members == {
        "members": [
            {"id": str(world.ana.id), "name": "Ana Moreau", "role": "accountant"},
            {"id": str(world.carl.id), "name": "Carl Ibsen", "role": "client"},
            {"id": str(world.cora.id), "name": "Cora Lind", "role": "client"},
        ]
    }


async def test_a_token_limited_to_one_company_sees_only_that_company(
    world: World, db: Any
) -> None:
    from server.core import accounts
    from server.store import users

    async with db.transaction() as conn:
        ana = await users.by_id(conn, world.ana.id)
        assert ana is not None
        only_c = await accounts.issue_token(
            conn,
            ana,
            name="only C",
            scopes=frozenset({"read", "post"}),
            company_ids=frozenset({world.c}),
            expires_at=None,
        )
        read_only = await accounts.issue_token(
            conn,
            ana,
            name="read only",
            scopes=frozenset({"read"}),
            company_ids=None,
            expires_at=None,
        )
    async with httpx.AsyncClient(
        base_url=world.base_url, headers={"Authorization": f"Bearer {only_c.secret}"}
    ) as client:
        mine = (await client.get("/api/companies")).json()["companies"]
        a_members = await client.get(f"/api/companies/{world.a}/members")
        c_members = await client.get(f"/api/companies/{world.c}/members")
        posted_in_a = await post(
            client, world, world.a, world.txa["bill"], "x", [world.carl]
        )
    async with httpx.AsyncClient(
        base_url=world.base_url, headers={"Authorization": f"Bearer {read_only.secret}"}
    ) as client:
        read = await client.get(world.tx_url(world.a, world.txa["bill"]))
        posted = await post(
            client, world, world.a, world.txa["bill"], "x", [world.carl]
        )
    assert [c["name"] for c in mine] == ["Cobalt Books"]
    assert a_members.status_code == 404
    assert c_members.status_code == 200
    assert posted_in_a.status_code == 404
    assert read.status_code == 200
    assert posted.status_code == 403
    assert posted.json()["error"] == {
        "code": "missing_scope",
        "message": "This credential does not allow post.",
    }
