"""The shared fixture world: two companies, their people and transactions.

Company A "Northwind Ledger Ltd": Ana (accountant), Carl and Cora
(clients). Company B "Bluefin Traders": Ben (accountant) and Bea (client).
Ana is also an accountant of company C, "Cobalt Books", which has no one
else. Every person's password is ``PASSWORD``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import argon2
import httpx

from server.core import accounts
from server.core.principal import PERSON_SCOPES
from server.store import companies, users
from server.store.database import Database
from server.store.transactions import TransactionFields
from server.store.transactions import insert as insert_transaction


PASSWORD = "correct horse battery staple"
# Hashed once per test run: argon2 is slow on purpose.
_PASSWORD_HASH = argon2.PasswordHasher().hash(PASSWORD)


@dataclasses.dataclass
class Person:
    id: uuid.UUID
    email: str
    name: str
    token: str


@dataclasses.dataclass
class World:
    base_url: str
    a: uuid.UUID
    b: uuid.UUID
    c: uuid.UUID
    ana: Person
    carl: Person
    cora: Person
    ben: Person
    bea: Person
    # Company A's transactions by type; "bill" is A's bill 2207, and so on.
    txa: dict[str, uuid.UUID]
    txb: dict[str, uuid.UUID]

    def client(
        self, person: Person | None = None, *, base_url: str | None = None
    ) -> httpx.AsyncClient:
        headers = {} if person is None else {"Authorization": f"Bearer {person.token}"}
        return httpx.AsyncClient(
            base_url=base_url or self.base_url, headers=headers, timeout=30
        )

    def tx_url(self, company: uuid.UUID, txn: uuid.UUID) -> str:
        return f"/api/companies/{company}/transactions/{txn}"


TYPES = [
    "invoice",
    "bill",
    "customer_payment",
    "vendor_check",
    "credit_card_charge",
    "credit_card_credit",
    "sales_receipt",
    "expense",
    "billable_expense",
    "delayed_charge",
    "credit_memo",
    "paycheck",
    "payroll",
]


async def _person(
    db: Database, email: str, name: str, time_zone: str | None = None
) -> Person:
    async with db.transaction() as conn:
        user = await users.insert(
            conn,
            email=email,
            display_name=name,
            password_hash=_PASSWORD_HASH,
            time_zone=time_zone,
        )
        issued = await accounts.issue_token(
            conn,
            user,
            name="test",
            scopes=frozenset(PERSON_SCOPES),
            company_ids=None,
            expires_at=None,
        )
    return Person(user.id, email, name, issued.secret)


async def _books(
    db: Database, company_id: uuid.UUID, prefix: str
) -> dict[str, uuid.UUID]:
    found = {}
    async with db.transaction() as conn:
        for i, kind in enumerate(TYPES):
            txn = await insert_transaction(
                conn,
                company_id,
                TransactionFields(
                    type=kind,
                    doc_number=f"{prefix}-{1000 + i}",
                    txn_date=dt.date(2026, 3, 1) + dt.timedelta(days=i),
                    counterparty=f"Counterparty {i}",
                    memo="",
                    amount=Decimal("100.00") + i,
                    currency="USD",
                ),
                external_id=f"{prefix}-{i}",
            )
            found[kind] = txn.id
    return found


async def build_world(db: Database, base_url: str) -> World:
    async with db.transaction() as conn:
        a = (await companies.insert(conn, "Northwind Ledger Ltd")).id
        b = (await companies.insert(conn, "Bluefin Traders")).id
        c = (await companies.insert(conn, "Cobalt Books")).id
    ana = await _person(db, "ana.moreau@example.test", "Ana Moreau", "Europe/Paris")
    carl = await _person(
        db, "carl.ibsen@example.test", "Carl Ibsen", "America/Los_Angeles"
    )
    cora = await _person(db, "cora.lind@example.test", "Cora Lind")
    ben = await _person(db, "ben.ortiz@example.test", "Ben Ortiz")
    bea = await _person(db, "bea.kim@example.test", "Bea Kim")
    async with db.transaction() as conn:
        await companies.add_member(conn, a, ana.id, "accountant")
        await companies.add_member(conn, a, carl.id, "client")
        await companies.add_member(conn, a, cora.id, "client")
        await companies.add_member(conn, b, ben.id, "accountant")
        await companies.add_member(conn, b, bea.id, "client")
        await companies.add_member(conn, c, ana.id, "accountant")
    return World(
        base_url=base_url,
        a=a,
        b=b,
        c=c,
        ana=ana,
        carl=carl,
        cora=cora,
        ben=ben,
        bea=bea,
        txa=await _books(db, a, "A"),
        txb=await _books(db, b, "B"),
    )


async def post(
    client: httpx.AsyncClient,
    world: World,
    company: uuid.UUID,
    txn: uuid.UUID,
    body: str,
    recipients: list[Person],
    key: str | None = None,
) -> httpx.Response:
    return await client.post(
        world.tx_url(company, txn) + "/messages",
        json={
            "body": body,
            "recipients": [str(p.id) for p in recipients],
            "idempotency_key": key or str(uuid.uuid4()),
        },
    )
