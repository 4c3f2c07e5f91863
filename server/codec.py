"""JSON as Tickmark writes it, over HTTP and WebSocket alike."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any


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


def dumps_text(content: Any) -> str:
    """Encode as compact JSON text, non-ASCII kept as is."""
    return json.dumps(
        content, default=_default, ensure_ascii=False, separators=(",", ":")
    )


def dumps(content: Any) -> bytes:
    """Encode as compact UTF-8 JSON."""
    return dumps_text(content).encode("utf-8")
