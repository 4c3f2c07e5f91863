"""The command line, run in-process against the test database."""

from __future__ import annotations

import asyncio

import pytest

from server.__main__ import main
from server.core.eligibility import TransactionType
from server.store.database import Database


async def test_demo_loads_a_firm_once_and_prints_how_to_sign_in(
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)

    first = await asyncio.to_thread(main, ["demo"])
    printed = capsys.readouterr().out
    second = await asyncio.to_thread(main, ["demo"])
    printed_again = capsys.readouterr().out

    assert first == second == 0
    assert printed.startswith("Demo data loaded.")
    assert printed_again.startswith("Demo data was already loaded.")
    assert "ana.moreau@ledgerline.example" in printed
    assert "'tickmark-demo'" in printed
    async with db.connection() as conn:
        roles = await conn.fetch(
            "SELECT role, count(DISTINCT user_id) AS n FROM memberships GROUP BY role"
        )
        types = await conn.fetch("SELECT DISTINCT type FROM transactions")
        counts = await conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM companies) AS companies,
                (SELECT count(*) FROM transactions) AS transactions,
                (SELECT count(*) FROM conversations) AS conversations,
                (SELECT count(*) FROM messages) AS messages
            """
        )
    assert {r["role"]: r["n"] for r in roles} == {"accountant": 2, "client": 5}
    assert {r["type"] for r in types} == {t.value for t in TransactionType}
    assert counts is not None
    assert dict(counts) == {
        "companies": 3,
        "transactions": 45,
        "conversations": 4,
        "messages": 8,
    }
    async with db.connection() as conn:
        delays = await conn.fetch("SELECT DISTINCT email_delay_secs FROM users")
        # The demo's history is not mailed: it was posted before anyone ran.
        outbox = await conn.fetchval("SELECT count(*) FROM mail_outbox")
    assert [r["email_delay_secs"] for r in delays] == [10]
    assert outbox == 0
