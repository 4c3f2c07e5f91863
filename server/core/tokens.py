"""API tokens and bot accounts, managed by the people who own them.

A token is a bearer credential with scopes (read, post, subscribe,
write_transactions) and, optionally, a list of companies it is limited to.
Its secret is shown once, when it is made, and only a hash is kept.

Who may make what:

- a browser session may make tokens for its user, or for a bot its user
  made, with any scope in companies where that user (or bot) is a member;
  ``write_transactions`` only where the user is an accountant;
- a token may make tokens too, but only narrower than itself (no scope and
  no company it does not have), so a leaked read-only token cannot mint a
  token that posts;
- bots are made by accountants, in their companies; a bot acts only through
  its tokens and cannot sign in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from server.core import access
from server.core.accounts import IssuedCredential, issue_token
from server.core.principal import Principal, Scope
from server.core.services import Services
from server.core.text import check_name
from server.errors import Forbidden, InvalidInput, NotFound
from server.store import companies, credentials, users
from server.store.credentials import Credential
from server.store.users import User


__all__ = [
    "MAX_TOKEN_DAYS",
    "Bot",
    "TokenView",
    "create_bot",
    "create_token",
    "list_bots",
    "list_tokens",
    "revoke_token",
]

#: Longest a token may be made to last; None (no expiry) is allowed too.
MAX_TOKEN_DAYS = 3650


@dataclasses.dataclass(frozen=True, slots=True)
class Bot:
    id: uuid.UUID
    name: str
    company_ids: list[uuid.UUID]


@dataclasses.dataclass(frozen=True, slots=True)
class TokenView:
    """A token as its owner sees it: everything but the secret."""

    credential: Credential
    # The user the token acts as (the owner, or one of their bots).
    user_name: str


def _require_session_or_token(principal: Principal) -> None:
    if principal.user_kind == "bot":
        raise Forbidden("Bots cannot manage tokens or bots.")


async def create_bot(
    services: Services, principal: Principal, company_id: uuid.UUID, name: str
) -> Bot:
    """Make a bot account that is a member of the company.

    Raises:
        NotFound: the company is not the principal's.
        Forbidden: the principal is not an accountant there, or is a bot.
        InvalidInput: a bad name.

    """
    _require_session_or_token(principal)
    name = check_name(name, "name", max_chars=100)
    async with services.db.transaction() as conn:
        role = await access.require_member(conn, principal, company_id, Scope.POST)
        if role != "accountant":
            raise Forbidden("Only the company's accountants make bots.")
        bot_id = uuid.uuid4()
        bot = await users.insert(
            conn,
            # Bots have no mailbox; the address is unique and can never
            # receive mail (RFC 2606 reserves .invalid).
            email=f"bot-{bot_id}@bots.invalid",
            display_name=name,
            password_hash=None,
            kind="bot",
            owner_id=principal.user_id,
        )
        await companies.add_member(conn, company_id, bot.id, "bot")
    return Bot(bot.id, bot.display_name, [company_id])


async def list_bots(services: Services, principal: Principal) -> list[Bot]:
    """The bots the principal made, with the companies each belongs to."""
    _require_session_or_token(principal)
    async with services.db.connection() as conn:
        found = []
        for bot in await users.bots_of(conn, principal.user_id):
            mine = await companies.list_for_user(conn, bot.id)
            found.append(Bot(bot.id, bot.display_name, [c.id for c in mine]))
    return found


async def _acting_user(
    services: Services, principal: Principal, user_id: uuid.UUID | None
) -> User:
    """The user a new token will act as: the principal, or a bot of theirs."""
    async with services.db.connection() as conn:
        user = await users.by_id(conn, user_id or principal.user_id)
    if user is None or (
        user.id != principal.user_id and user.owner_id != principal.user_id
    ):
        raise NotFound()
    return user


async def create_token(
    services: Services,
    principal: Principal,
    *,
    name: str,
    scopes: frozenset[str],
    company_ids: frozenset[uuid.UUID] | None,
    expires_in_days: int | None,
    user_id: uuid.UUID | None = None,
) -> IssuedCredential:
    """Make a bearer token for the principal or for one of their bots.

    Raises:
        NotFound: ``user_id`` is not the principal or a bot of theirs, or a
            company is not the acting user's.
        Forbidden: a scope or company the principal may not grant.
        InvalidInput: unknown scopes, a bad name, a bad lifetime.

    """
    _require_session_or_token(principal)
    name = check_name(name, "name", max_chars=100)
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise InvalidInput(
            f"expires_in_days is between 1 and {MAX_TOKEN_DAYS}.",
            field="expires_in_days",
        )
    if principal.credential_kind == "token":
        # Tokens mint only narrower tokens.
        if not scopes <= principal.scopes:
            raise Forbidden(
                "A token can only make tokens with scopes it has itself.",
                code="missing_scope",
            )
        if principal.company_ids is not None and (
            company_ids is None or not company_ids <= principal.company_ids
        ):
            raise Forbidden("A token can only make tokens for companies it reaches.")

    user = await _acting_user(services, principal, user_id)
    async with services.db.transaction() as conn:
        memberships = {
            c.id: c.role for c in await companies.list_for_user(conn, user.id)
        }
        for company_id in company_ids or ():
            if company_id not in memberships:
                raise NotFound()
        if Scope.WRITE_TRANSACTIONS in scopes:
            # Whoever writes the books must be an accountant where they write.
            owner_roles = {
                c.id: c.role
                for c in await companies.list_for_user(conn, principal.user_id)
            }
            reach = company_ids if company_ids is not None else frozenset(memberships)
            if not reach or any(owner_roles.get(c) != "accountant" for c in reach):
                raise Forbidden(
                    "Only accountants grant write_transactions, and only for "
                    "their own companies; list them in company_ids."
                )
        expires_at = None
        if expires_in_days is not None:
            expires_at = services.clock.now() + dt.timedelta(days=expires_in_days)
        return await issue_token(
            conn,
            user,
            name=name,
            scopes=scopes,
            company_ids=company_ids,
            expires_at=expires_at,
        )


async def list_tokens(services: Services, principal: Principal) -> list[TokenView]:
    """The principal's live tokens and their bots', newest first."""
    _require_session_or_token(principal)
    async with services.db.connection() as conn:
        holders = [await users.by_id(conn, principal.user_id)]
        holders += await users.bots_of(conn, principal.user_id)
        found = []
        for holder in holders:
            if holder is None:
                continue
            for credential in await credentials.list_tokens(conn, holder.id):
                found.append(TokenView(credential, holder.display_name))
    found.sort(key=lambda t: t.credential.created_at, reverse=True)
    return found


async def revoke_token(
    services: Services, principal: Principal, token_id: uuid.UUID
) -> None:
    """Revoke one of the principal's tokens or one of their bots'.

    Live connections using it are closed within a couple of seconds.

    Raises:
        NotFound: no such live token of theirs.

    """
    _require_session_or_token(principal)
    async with services.db.transaction() as conn:
        holder_ids = {principal.user_id} | {
            b.id for b in await users.bots_of(conn, principal.user_id)
        }
        found = await credentials.by_ids(conn, [token_id])
        credential = found.get(token_id)
        if (
            credential is None
            or credential.kind != "token"
            or credential.user_id not in holder_ids
            or not await credentials.revoke(
                conn, token_id, credential.user_id, services.clock.now()
            )
        ):
            raise NotFound()
    await services.events.access_changed(credential.user_id)
