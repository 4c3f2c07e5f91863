"""JSON as Tickmark writes it, over HTTP and WebSocket alike."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import orjson


__all__ = ["dumps", "dumps_text"]


def _default(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        # Always UTC with an explicit zone, to the millisecond.
        return (
            value.astimezone(dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        # Money travels as a string so no client rounds it through a float.
        return f"{value:.2f}"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


# Keys that are not strings (ids, numbers) become strings, as in any JSON
# object; datetimes and dates go to _default, for the format above.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps(content: Any) -> bytes:
    """Encode as compact UTF-8 JSON, non-ASCII kept as is.

    Raises:
        TypeError: a value JSON cannot carry (orjson's error is one), such
            as an integer beyond 64 bits.

    """
    return orjson.dumps(content, default=_default, option=_OPTIONS)


def dumps_text(content: Any) -> str:
    """:func:`dumps`, as text."""
    return dumps(content).decode()
