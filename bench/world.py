"""The firm the bench measures: companies, people, transactions and tokens.

Made fresh for every run in a database of its own, through Tickmark's own
store layer (the same calls as ``tests/world.py``), in batches of a few
hundred people per transaction on several connections at once, so that
ten thousand accounts with their tokens take seconds.

The shape, for ``companies`` companies and ``users`` client users:

- client user *i* belongs to company ``i % companies``; the first
  ``big_channel`` of them also belong to company 0, whose first bill is
  the channel with one big audience;
- every company has three bills (``bills[0..2]``) and one client who is
  never connected (``away``), the recipient of posts in the fan-out
  scenarios, so that those posts trigger no badge work;
- ``posters`` accountants belong to every company and post.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import argon2
import asyncpg

from server.core import accounts
from server.core.principal import PERSON_SCOPES
from server.store import companies, users
from server.store.database import Conn, Database
from server.store.transactions import TransactionFields
from server.store.transactions import insert as insert_transaction


__all__ = ["Company", "Person", "World", "build_world", "recreate_database"]

# People created per database transaction, and transactions in flight.
_BATCH = 250
_PARALLEL = 4
# Every account gets this password: hashed once, argon2 being slow on purpose.
_PASSWORD = "bench-password-not-secret"  # noqa: S105


@dataclasses.dataclass(frozen=True)
class Person:
    id: str
    token: str


@dataclasses.dataclass(frozen=True)
class Company:
    id: str
    # Three bills: transactions that take conversations.
    bills: tuple[str, str, str]
    # A client who is never connected: the recipient in fan-out scenarios.
    away: str


@dataclasses.dataclass(frozen=True)
class World:
    companies: list[Company]
    # Client users; user i belongs to company i % len(companies).
    clients: list[Person]
    # Accountants of every company, who post.
    posters: list[Person]
    # How many of the first clients also belong to company 0.
    big_channel: int
    setup_secs: float


async def recreate_database(admin_url: str, name: str) -> None:
    """Drop and create the bench's own database.

    Args:
        admin_url: a database on the same server to connect to (postgres).
        name: the bench database; only ever one the bench created.

    """
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name must be a plain identifier, got {name!r}")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _person(conn: Conn, email: str, name: str, password_hash: str) -> Person:
    user = await users.insert(
        conn, email=email, display_name=name, password_hash=password_hash
    )
    issued = await accounts.issue_token(
        conn,
        user,
        name="bench",
        scopes=frozenset(PERSON_SCOPES),
        company_ids=None,
        expires_at=None,
    )
    return Person(str(user.id), issued.secret)


async def _in_batches(
    db: Database, count: int, make: Callable[[Conn, int], Awaitable[None]]
) -> None:
    """Call ``make(conn, i)`` for i in range(count), in parallel batches."""
    gate = asyncio.Semaphore(_PARALLEL)

    async def batch(start: int) -> None:
        async with gate, db.transaction() as conn:
            for i in range(start, min(count, start + _BATCH)):
                await make(conn, i)

    await asyncio.gather(*(batch(s) for s in range(0, count, _BATCH)))


async def build_world(
    database_url: str,
    *,
    companies_count: int,
    clients_count: int,
    posters_count: int,
    big_channel: int,
) -> World:
    """Fill an empty, migrated database with the bench's firm."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    password_hash = argon2.PasswordHasher().hash(_PASSWORD)
    db = await Database.connect(database_url, pool_size=_PARALLEL + 1)
    try:
        company_rows: list[Company | None] = [None] * companies_count
        clients: list[Person | None] = [None] * clients_count
        posters: list[Person | None] = [None] * posters_count

        async def make_company(conn: Conn, c: int) -> None:
            company = await companies.insert(conn, f"Bench Company {c:03d}")
            bills = []
            for b in range(3):
                txn = await insert_transaction(
                    conn,
                    company.id,
                    TransactionFields(
                        type="bill",
                        doc_number=f"B-{c:03d}-{b}",
                        txn_date=dt.date(2026, 11, 1) + dt.timedelta(days=b),
                        counterparty=f"Vendor {c:03d}",
                        memo="",
                        amount=Decimal("1250.00"),
                        currency="USD",
                    ),
                    external_id=f"bench-{c}-{b}",
                )
                bills.append(str(txn.id))
            away = await _person(
                conn, f"away{c:03d}@bench.example", f"Away {c:03d}", password_hash
            )
            await companies.add_member(conn, company.id, uuid.UUID(away.id), "client")
            company_rows[c] = Company(
                str(company.id), (bills[0], bills[1], bills[2]), away.id
            )

        await _in_batches(db, companies_count, make_company)
        company_ids = [uuid.UUID(c.id) for c in company_rows if c is not None]

        async def make_client(conn: Conn, i: int) -> None:
            person = await _person(
                conn, f"client{i:05d}@bench.example", f"Client {i:05d}", password_hash
            )
            user_id = uuid.UUID(person.id)
            await companies.add_member(
                conn, company_ids[i % companies_count], user_id, "client"
            )
            if i < big_channel:
                await companies.add_member(conn, company_ids[0], user_id, "client")
            clients[i] = person

        async def make_poster(conn: Conn, i: int) -> None:
            person = await _person(
                conn, f"poster{i:03d}@bench.example", f"Poster {i:03d}", password_hash
            )
            for company_id in company_ids:
                await companies.add_member(
                    conn, company_id, uuid.UUID(person.id), "accountant"
                )
            posters[i] = person

        await _in_batches(db, clients_count, make_client)
        await _in_batches(db, posters_count, make_poster)
    finally:
        await db.close()
    return World(
        companies=[c for c in company_rows if c is not None],
        clients=[p for p in clients if p is not None],
        posters=[p for p in posters if p is not None],
        big_channel=big_channel,
        setup_secs=loop.time() - started,
    )
