"""What a live connection may subscribe to, and what it missed.

The live layer asks here before it adds a channel to a connection, when it
re-checks open connections after an access change, and when a subscriber
recovers messages it did not receive live.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from server.core.channels import Channel, ChannelKind
from server.core.principal import Principal, Scope
from server.errors import Forbidden, NotFound, Unauthenticated
from server.store import companies, credentials, messages, transactions
from server.store.database import Conn
from server.store.messages import Message


__all__ = [
    "CredentialState",
    "authorize",
    "check_credentials",
    "head",
    "locate_transaction",
    "position_in",
    "recover",
]


async def locate_transaction(
    conn: Conn, principal: Principal, transaction_id: uuid.UUID
) -> uuid.UUID:
    """The company of a transaction the principal may see.

    Raises:
        NotFound: no such transaction, or not in one of their companies.

    """
    company_id = await transactions.company_of(conn, transaction_id)
    if company_id is None or not principal.reaches(company_id):
        raise NotFound()
    if await companies.role_of(conn, company_id, principal.user_id) is None:
        raise NotFound()
    return company_id


async def authorize(
    conn: Conn, principal: Principal, channel: Channel
) -> uuid.UUID | None:
    """Check that the principal may subscribe to the channel.

    Returns:
        The company the channel belongs to; None for the user's own feed.

    Raises:
        NotFound: the channel names something the principal may not see,
            or nothing at all (the two are told apart by no one).
        Forbidden: code ``missing_scope`` without the subscribe scope.

    """
    if channel.kind is ChannelKind.USER:
        if channel.id != principal.user_id:
            raise NotFound()
        return None
    if channel.kind is ChannelKind.COMPANY:
        company_id = channel.id
        if not principal.reaches(company_id) or (
            await companies.role_of(conn, company_id, principal.user_id) is None
        ):
            raise NotFound()
    else:
        company_id = await locate_transaction(conn, principal, channel.id)
    if not principal.may(Scope.SUBSCRIBE):
        raise Forbidden(
            "This credential does not allow subscribe.", code="missing_scope"
        )
    return company_id


async def head(conn: Conn, channel: Channel) -> int:
    """Position of the channel's newest message (0 when it has none)."""
    if channel.kind is ChannelKind.COMPANY:
        return await messages.company_head(conn, channel.id)
    _, last_seq = await messages.transaction_head(conn, channel.id)
    return last_seq


def position_in(channel: Channel, message: Message) -> int:
    """A message's position in a channel's stream."""
    return message.company_seq if channel.kind is ChannelKind.COMPANY else message.seq


@dataclasses.dataclass(frozen=True, slots=True)
class Recovery:
    # Position of the channel's newest message when read.
    head: int
    # Messages after the position asked for, in order, at most ``limit``.
    messages: list[Message]
    # False when more than ``limit`` were missed: the rest must be paged.
    complete: bool


async def recover(conn: Conn, channel: Channel, after: int, limit: int) -> Recovery:
    """The channel's messages after position ``after``, up to ``limit``.

    Positions are ``seq`` on a transaction channel and ``company_seq`` on a
    company channel. Both are given out in commit order, so everything up
    to ``head`` is in PostgreSQL by the time it is read here.
    """
    if channel.kind is ChannelKind.COMPANY:
        head = await messages.company_head(conn, channel.id)
        found = await messages.page_company_after(conn, channel.id, after, limit + 1)
    else:
        conversation_id, head = await messages.transaction_head(conn, channel.id)
        found = (
            []
            if conversation_id is None
            else await messages.page_after(conn, conversation_id, after, limit + 1)
        )
    return Recovery(head, found[:limit], complete=len(found) <= limit)


@dataclasses.dataclass(frozen=True, slots=True)
class CredentialState:
    """Whether an open connection's credential still holds."""

    # None when valid; otherwise the error to close the connection with.
    error: Unauthenticated | None
    expired: bool


async def check_credentials(
    conn: Conn, credential_ids: list[uuid.UUID], now: dt.datetime
) -> dict[uuid.UUID, CredentialState]:
    """The state of each credential behind open connections."""
    found = await credentials.by_ids(conn, credential_ids)
    states = {}
    for credential_id in credential_ids:
        credential = found.get(credential_id)
        if credential is None or credential.revoked_at is not None:
            states[credential_id] = CredentialState(
                Unauthenticated("You were signed out."), expired=False
            )
        elif credential.expires_at is not None and credential.expires_at <= now:
            states[credential_id] = CredentialState(
                Unauthenticated("Your session expired; sign in again."), expired=True
            )
        else:
            states[credential_id] = CredentialState(None, expired=False)
    return states
