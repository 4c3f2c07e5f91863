"""Browser sessions and bearer tokens, kept as hashes of their secrets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import asyncpg

from server.store.database import Conn


__all__ = [
    "Credential",
    "Holder",
    "by_ids",
    "by_secret_hash",
    "holder_by_secret_hash",
    "insert",
    "list_tokens",
    "revoke",
    "revoke_all_for_user",
    "touch",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Credential:
    id: uuid.UUID
    user_id: uuid.UUID
    # 'session' (browser cookie) or 'token' (bearer).
    kind: str
    name: str
    scopes: frozenset[str]
    # Companies the credential is limited to; None means all of the user's.
    company_ids: frozenset[uuid.UUID] | None
    created_at: dt.datetime
    last_used_at: dt.datetime
    # None: does not expire on its own.
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


_COLUMNS = """
    id, user_id, kind, name, scopes, company_ids, created_at, last_used_at,
    expires_at, revoked_at
"""


def _credential(row: asyncpg.Record) -> Credential:
    company_ids = row["company_ids"]
    return Credential(
        id=row["id"],
        user_id=row["user_id"],
        kind=row["kind"],
        name=row["name"],
        scopes=frozenset(row["scopes"]),
        company_ids=None if company_ids is None else frozenset(company_ids),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


async def insert(
    conn: Conn,
    *,
    user_id: uuid.UUID,
    kind: str,
    secret_hash: bytes,
    scopes: frozenset[str],
    company_ids: frozenset[uuid.UUID] | None,
    expires_at: dt.datetime | None,
    name: str = "",
    parent_id: uuid.UUID | None = None,
) -> Credential:
    row = await conn.fetchrow(
        f"""
        INSERT INTO credentials (
            id, user_id, kind, secret_hash, name, scopes, company_ids, expires_at,
            parent_id
        ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING {_COLUMNS}
        """,
        uuid.uuid4(),
        user_id,
        kind,
        secret_hash,
        name,
        sorted(scopes),
        None if company_ids is None else sorted(company_ids),
        expires_at,
        parent_id,
    )
    assert row is not None
    return _credential(row)


@dataclasses.dataclass(frozen=True, slots=True)
class Holder:
    """A credential with what the server needs to know of its user."""

    credential: Credential
    display_name: str
    # 'person' or 'bot'.
    user_kind: str


async def holder_by_secret_hash(conn: Conn, secret_hash: bytes) -> Holder | None:
    """The credential with this secret and its user, in one query."""
    row = await conn.fetchrow(
        """
        SELECT c.id, c.user_id, c.kind, c.name, c.scopes, c.company_ids,
            c.created_at, c.last_used_at, c.expires_at, c.revoked_at,
            u.display_name, u.kind AS user_kind
        FROM credentials c JOIN users u ON u.id = c.user_id
        WHERE c.secret_hash = $1
        """,
        secret_hash,
    )
    if row is None:
        return None
    return Holder(_credential(row), row["display_name"], row["user_kind"])


async def by_secret_hash(conn: Conn, secret_hash: bytes) -> Credential | None:
    """The credential with this secret, whether or not it is still valid."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM credentials WHERE secret_hash = $1", secret_hash
    )
    return None if row is None else _credential(row)


async def touch(
    conn: Conn,
    credential_id: uuid.UUID,
    now: dt.datetime,
    expires_at: dt.datetime | None,
) -> None:
    """Record a use, sliding the expiry of an idle-limited session."""
    await conn.execute(
        "UPDATE credentials SET last_used_at = $2, expires_at = $3 WHERE id = $1",
        credential_id,
        now,
        expires_at,
    )


async def revoke(
    conn: Conn, credential_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
) -> bool:
    """Revoke one of the user's credentials; False if it was not theirs."""
    status = await conn.execute(
        """
        UPDATE credentials SET revoked_at = $3
        WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
        """,
        credential_id,
        user_id,
        now,
    )
    return status != "UPDATE 0"


async def revoke_all_for_user(conn: Conn, user_id: uuid.UUID, now: dt.datetime) -> int:
    status = await conn.execute(
        """
        UPDATE credentials SET revoked_at = $2
        WHERE user_id = $1 AND revoked_at IS NULL
        """,
        user_id,
        now,
    )
    return int(status.split()[-1])


async def list_tokens(conn: Conn, user_id: uuid.UUID) -> list[Credential]:
    """The user's bearer tokens that are not revoked, newest first."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM credentials
        WHERE user_id = $1 AND kind = 'token' AND revoked_at IS NULL
        ORDER BY created_at DESC
        """,
        user_id,
    )
    return [_credential(r) for r in rows]


async def by_ids(
    conn: Conn, credential_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Credential]:
    """The credentials that still exist among these ids."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM credentials WHERE id = ANY($1::uuid[])",
        credential_ids,
    )
    return {row["id"]: _credential(row) for row in rows}
