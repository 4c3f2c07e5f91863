from __future__ import annotations

import uuid

import pytest

from server.core.channels import Channel, ChannelKind, parse_channel
from server.errors import InvalidInput


ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


@pytest.mark.parametrize("kind", ["company", "transaction", "user"])
def test_the_three_kinds_parse_to_their_canonical_name(kind: str) -> None:
    channel = parse_channel(f"{kind}:{ID}")
    assert channel == Channel(ChannelKind(kind), uuid.UUID(ID))
    assert channel.name == f"{kind}:{ID}"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "company",
        f"company:{ID.upper()}",
        f"company: {ID}",
        f"company:{ID} ",
        f"company:{ID}:x",
        f"company:{{{ID}}}",
        f"company:{ID.replace('-', '')}",
        f"Company:{ID}",
        f"tx:{ID}",
        "company:*",
        "company:?",
        "company:[a-z]*",
        f"company:{ID}\n",
        5,
        None,
        ["company", ID],
    ],
)
def test_anything_else_is_refused(name: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_channel(name)
    assert caught.value.field == "channel"
