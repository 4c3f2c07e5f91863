"""The JSON Tickmark writes: one format for frames, responses and webhooks."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from server.codec import dumps, dumps_text


ID = uuid.UUID("5f0c6c7e-2b8e-4d4c-9a55-0e7f3c2a9b10")


def test_values_are_written_in_one_format() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    content = {
        "id": ID,
        "at": dt.datetime(2026, 12, 4, 13, 5, 6, 789_999, tzinfo=paris),
        "on": dt.date(2026, 12, 4),
        "amount": Decimal("1200.5"),
        "body": "Reçu 🧾 <b>",
        "seq": 2**62,
        "unread": {ID: 3},
    }
    assert dumps_text(content) == (
        '{"id":"5f0c6c7e-2b8e-4d4c-9a55-0e7f3c2a9b10",'
        '"at":"2026-12-04T12:05:06.789Z","on":"2026-12-04","amount":"1200.50",'
        '"body":"Reçu 🧾 <b>","seq":4611686018427387904,'
        '"unread":{"5f0c6c7e-2b8e-4d4c-9a55-0e7f3c2a9b10":3}}'
    )
    assert dumps(content) == dumps_text(content).encode("utf-8")


@pytest.mark.parametrize("value", [object(), 2**64, {1.5j: 1}])
def test_what_json_cannot_carry_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        dumps({"value": value})
