"""What the domain announces after it has committed a change.

The live layer (the broker and the sockets) implements :class:`Events`;
the domain calls it only after PostgreSQL has the change, so nobody hears
of a message that could still be rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from server.store.messages import Message


__all__ = ["Events", "NoEvents"]


class Events(Protocol):
    async def messages_posted(self, messages: Sequence[Message]) -> None:
        """Messages were stored; tell their channels and their recipients.

        In the order given, which keeps each conversation's order.
        """
        ...

    async def read_advanced(
        self,
        user_id: uuid.UUID,
        company_id: uuid.UUID,
        transaction_id: uuid.UUID,
        last_read_seq: int,
    ) -> None:
        """A reader's marker moved; their badge changed on every device."""
        ...

    async def access_changed(self, user_id: uuid.UUID) -> None:
        """A credential or membership of the user ended; re-check at once."""
        ...


class NoEvents:
    """Tells no one: for commands that change data with no server running."""

    async def messages_posted(self, messages: Sequence[Message]) -> None:
        return None

    async def read_advanced(
        self,
        user_id: uuid.UUID,
        company_id: uuid.UUID,
        transaction_id: uuid.UUID,
        last_read_seq: int,
    ) -> None:
        return None

    async def access_changed(self, user_id: uuid.UUID) -> None:
        return None
