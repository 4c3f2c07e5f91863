"""People and bot accounts."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg

from server.store.database import Conn


__all__ = ["User", "bots_of", "by_email", "by_id", "insert", "set_password_hash"]


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    display_name: str
    # 'person' or 'bot'.
    kind: str
    # argon2id hash, or None when the account cannot sign in with a password.
    password_hash: str | None
    # IANA zone name, or None when the user has not chosen one.
    time_zone: str | None
    # For a bot: the person who manages it; None for people.
    owner_id: uuid.UUID | None = None


_COLUMNS = "id, email, display_name, kind, password_hash, time_zone, owner_id"


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        kind=row["kind"],
        password_hash=row["password_hash"],
        time_zone=row["time_zone"],
        owner_id=row["owner_id"],
    )


async def insert(
    conn: Conn,
    *,
    email: str,
    display_name: str,
    password_hash: str | None,
    kind: str = "person",
    time_zone: str | None = None,
    owner_id: uuid.UUID | None = None,
) -> User:
    """Add an account.

    Raises:
        asyncpg.UniqueViolationError: the email is taken, in any letter case.

    """
    row = await conn.fetchrow(
        f"""
        INSERT INTO users
            (id, email, display_name, kind, password_hash, time_zone, owner_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING {_COLUMNS}
        """,
        uuid.uuid4(),
        email,
        display_name,
        kind,
        password_hash,
        time_zone,
        owner_id,
    )
    assert row is not None
    return _user(row)


async def by_email(conn: Conn, email: str) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower($1)", email
    )
    return None if row is None else _user(row)


async def by_id(conn: Conn, user_id: uuid.UUID) -> User | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)
    return None if row is None else _user(row)


async def set_password_hash(conn: Conn, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
    )


async def bots_of(conn: Conn, owner_id: uuid.UUID) -> list[User]:
    """The bots a person made, by name."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM users
        WHERE owner_id = $1 AND kind = 'bot'
        ORDER BY lower(display_name), id
        """,
        owner_id,
    )
    return [_user(r) for r in rows]
