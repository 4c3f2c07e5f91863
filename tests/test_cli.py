"""The command line, run in-process against the test database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.__main__ import main
from server.core.eligibility import TransactionType
from server.store.database import Database


@pytest.fixture
def cli_env(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """The environment a command runs in; the root logger as it was after."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "test-secret")
    monkeypatch.setenv("TICKMARK_DATA_DIR", str(tmp_path))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def _run(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_demo_loads_a_firm_once_and_prints_how_to_sign_in(
    db: Database,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
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


async def test_an_operator_sets_up_a_company_with_the_command_line(
    db: Database,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TICKMARK_PASSWORD", "a long enough password")
    assert await _run("company-add", "Harbor View Dental") == 0
    company_id = capsys.readouterr().out.strip()
    assert await _run("user-add", "dr.ng@harbor.example", "Dr Ng") == 0
    user_id = capsys.readouterr().out.strip()
    assert await _run("member-add", company_id, "DR.NG@harbor.example", "client") == 0
    added = capsys.readouterr().out
    assert (
        await _run(
            "token-create", "dr.ng@harbor.example", "--scope", "read", "--days", "30"
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    assert await _run("member-remove", company_id, "dr.ng@harbor.example") == 0
    assert await _run("member-remove", company_id, "dr.ng@harbor.example") == 1
    removed = capsys.readouterr().out
    assert await _run("user-add", "dr.ng@harbor.example", "Again") == 1
    refused = capsys.readouterr().err
    assert await _run("user-add", "x@harbor.example", "Two\r\nLines") == 1
    two_lines = capsys.readouterr().err
    async with db.connection() as conn:
        user = await conn.fetchrow(
            "SELECT display_name, password_hash FROM users WHERE id = $1::uuid",
            user_id,
        )
        credential = await conn.fetchrow(
            "SELECT scopes, expires_at > now() AS live FROM credentials"
            " WHERE user_id = $1::uuid",
            user_id,
        )
    assert user is not None and user["display_name"] == "Dr Ng"
    assert user["password_hash"].startswith("$argon2id$")
    assert added == f"dr.ng@harbor.example is now client of {company_id}\n"
    assert token.startswith("tmk_")
    assert credential is not None and list(credential["scopes"]) == ["read"]
    assert credential["live"] is True
    assert removed == "removed\nwas not a member\n"
    assert refused == "tickmark: An account with this email already exists.\n"
    assert two_lines == "tickmark: Names are one line of text.\n"
