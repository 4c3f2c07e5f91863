"""Failed sign-ins, counted per account and per address to slow guessing."""

from __future__ import annotations

import datetime as dt

from server.store.database import Conn


__all__ = ["clear", "oldest_in_window", "record"]


async def record(conn: Conn, keys: list[str], now: dt.datetime) -> None:
    await conn.executemany(
        "INSERT INTO sign_in_failures (key, failed_at) VALUES ($1, $2)",
        [(key, now) for key in keys],
    )


async def oldest_in_window(
    conn: Conn, key: str, since: dt.datetime, limit: int
) -> dt.datetime | None:
    """When the window's failures for ``key`` began, if there are ``limit``.

    Returns:
        The time of the oldest of the latest ``limit`` failures since
        ``since``, or None when there are fewer than ``limit``. The key is
        free again once that failure leaves the window.

    """
    rows = await conn.fetch(
        """
        SELECT failed_at FROM sign_in_failures
        WHERE key = $1 AND failed_at > $2
        ORDER BY failed_at DESC LIMIT $3
        """,
        key,
        since,
        limit,
    )
    if len(rows) < limit:
        return None
    oldest: dt.datetime = rows[-1]["failed_at"]
    return oldest


async def clear(conn: Conn, key: str, before: dt.datetime) -> None:
    """Forget failures for ``key`` older than ``before``."""
    await conn.execute(
        "DELETE FROM sign_in_failures WHERE key = $1 AND failed_at < $2", key, before
    )
