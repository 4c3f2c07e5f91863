"""Each person's choices about email and how times are shown to them."""

from __future__ import annotations

import dataclasses
import uuid

from server.store.database import Conn


__all__ = ["UserSettings", "get", "turn_email_off", "update"]


@dataclasses.dataclass(frozen=True, slots=True)
class UserSettings:
    email_notifications: bool
    # Seconds an unread message waits before it is mailed; None follows
    # the server's default.
    email_delay_secs: int | None
    # IANA zone name; None shows times in UTC.
    time_zone: str | None
    clock_24h: bool


_COLUMNS = "email_notifications, email_delay_secs, time_zone, clock_24h"


async def get(
    conn: Conn, user_id: uuid.UUID, *, for_update: bool = False
) -> UserSettings | None:
    """The user's settings; ``for_update`` locks them until the transaction ends."""
    lock = " FOR NO KEY UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE id = $1{lock}", user_id
    )
    return None if row is None else UserSettings(**dict(row))


async def update(
    conn: Conn, user_id: uuid.UUID, settings: UserSettings
) -> UserSettings | None:
    """Replace the user's settings; None when there is no such user."""
    row = await conn.fetchrow(
        f"""
        UPDATE users SET email_notifications = $2, email_delay_secs = $3,
            time_zone = $4, clock_24h = $5
        WHERE id = $1
        RETURNING {_COLUMNS}
        """,
        user_id,
        settings.email_notifications,
        settings.email_delay_secs,
        settings.time_zone,
        settings.clock_24h,
    )
    return None if row is None else UserSettings(**dict(row))


async def turn_email_off(conn: Conn, user_id: uuid.UUID) -> bool:
    """Stop all email to the user; False when there is no such user."""
    status = await conn.execute(
        "UPDATE users SET email_notifications = false WHERE id = $1", user_id
    )
    return status != "UPDATE 0"
