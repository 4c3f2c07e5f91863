"""Recent changes that may take access away from open connections."""

from __future__ import annotations

import datetime as dt
import uuid

from server.store.database import Conn


__all__ = ["forget_before", "since"]


async def since(conn: Conn, changed_after: dt.datetime) -> list[tuple[int, uuid.UUID]]:
    """(id, user id) of the changes stamped after ``changed_after``.

    Stamps are taken when a change is made, not when it commits, so a
    reader should look back a few seconds further than its last read and
    skip ids it has seen.
    """
    rows = await conn.fetch(
        "SELECT id, user_id FROM access_changes WHERE changed_at > $1 ORDER BY id",
        changed_after,
    )
    return [(r["id"], r["user_id"]) for r in rows]


async def forget_before(conn: Conn, before: dt.datetime) -> None:
    await conn.execute("DELETE FROM access_changes WHERE changed_at < $1", before)
