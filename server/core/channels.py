"""Channel names: what a client may subscribe to, parsed strictly.

Three kinds, each named by a kind and a UUID:

- ``company:<company id>``: every message in the company's conversations;
- ``transaction:<transaction id>``: one transaction's conversation, with
  typing and who is viewing;
- ``user:<user id>``: a user's own badge counts and read markers; every
  connection has its own without asking, and no one may have another's.

Anything else, including upper-case ids, padding, wildcards or a second
colon, is not a channel. The canonical form is rebuilt from the parsed
UUID, so what reaches Redis is always a name the server wrote.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import uuid

from server.errors import InvalidInput


__all__ = ["Channel", "ChannelKind", "parse_channel"]

_NAME = re.compile(
    r"(company|transaction|user):"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)


class ChannelKind(enum.StrEnum):
    COMPANY = "company"
    TRANSACTION = "transaction"
    USER = "user"


@dataclasses.dataclass(frozen=True, slots=True)
class Channel:
    kind: ChannelKind
    id: uuid.UUID

    @property
    def name(self) -> str:
        return f"{self.kind.value}:{self.id}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def company(cls, company_id: uuid.UUID) -> Channel:
        return cls(ChannelKind.COMPANY, company_id)

    @classmethod
    def transaction(cls, transaction_id: uuid.UUID) -> Channel:
        return cls(ChannelKind.TRANSACTION, transaction_id)

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Channel:
        return cls(ChannelKind.USER, user_id)


def parse_channel(name: object) -> Channel:
    """Parse a channel name a client sent.

    Raises:
        InvalidInput: not one of the three documented forms, exactly.

    """
    if not isinstance(name, str) or len(name) > 60:
        raise InvalidInput("Unknown channel name.", field="channel")
    match = _NAME.fullmatch(name)
    if match is None:
        raise InvalidInput(
            "Channels are company:<id>, transaction:<id> or user:<id>, "
            "with the id as a lower-case UUID.",
            field="channel",
        )
    return Channel(ChannelKind(match.group(1)), uuid.UUID(match.group(2)))
