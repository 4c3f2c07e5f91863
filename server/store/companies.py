"""Companies and who belongs to them, in which role."""

from __future__ import annotations

import dataclasses
import uuid

from server.store.database import Conn


__all__ = [
    "Company",
    "Member",
    "MyCompany",
    "add_member",
    "by_id",
    "insert",
    "list_for_user",
    "members",
    "remove_member",
    "role_of",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Company:
    id: uuid.UUID
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class MyCompany:
    """A company as one of its members sees it."""

    id: uuid.UUID
    name: str
    role: str


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    user_id: uuid.UUID
    display_name: str
    role: str
    # 'person' or 'bot'.
    kind: str


async def insert(conn: Conn, name: str) -> Company:
    company_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO companies (id, name) VALUES ($1, $2)", company_id, name
    )
    return Company(company_id, name)


async def by_id(conn: Conn, company_id: uuid.UUID) -> Company | None:
    row = await conn.fetchrow(
        "SELECT id, name FROM companies WHERE id = $1", company_id
    )
    return None if row is None else Company(row["id"], row["name"])


async def add_member(
    conn: Conn, company_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> None:
    """Make the user a member, or change the role of one who already is."""
    await conn.execute(
        """
        INSERT INTO memberships (company_id, user_id, role) VALUES ($1, $2, $3)
        ON CONFLICT (company_id, user_id) DO UPDATE SET role = excluded.role
        """,
        company_id,
        user_id,
        role,
    )


async def remove_member(conn: Conn, company_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """End a membership; returns False when there was none.

    Takes the company's row lock first, as a post does while it reads who
    may post and receive (``append_message``): each post is then stored
    wholly before the removal or wholly after it, never with an author or
    recipient who had already left.
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT 1 FROM companies WHERE id = $1 FOR UPDATE", company_id
        )
        status = await conn.execute(
            "DELETE FROM memberships WHERE company_id = $1 AND user_id = $2",
            company_id,
            user_id,
        )
    return status != "DELETE 0"


async def role_of(conn: Conn, company_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    """The user's role in the company, or None when not a member."""
    role: str | None = await conn.fetchval(
        "SELECT role FROM memberships WHERE company_id = $1 AND user_id = $2",
        company_id,
        user_id,
    )
    return role


async def list_for_user(conn: Conn, user_id: uuid.UUID) -> list[MyCompany]:
    rows = await conn.fetch(
        """
        SELECT c.id, c.name, m.role
        FROM memberships m JOIN companies c ON c.id = m.company_id
        WHERE m.user_id = $1
        ORDER BY lower(c.name), c.id
        """,
        user_id,
    )
    return [MyCompany(r["id"], r["name"], r["role"]) for r in rows]


async def members(conn: Conn, company_id: uuid.UUID) -> list[Member]:
    rows = await conn.fetch(
        """
        SELECT u.id, u.display_name, m.role, u.kind
        FROM memberships m JOIN users u ON u.id = m.user_id
        WHERE m.company_id = $1
        ORDER BY m.role, lower(u.display_name), u.id
        """,
        company_id,
    )
    return [Member(r["id"], r["display_name"], r["role"], r["kind"]) for r in rows]
