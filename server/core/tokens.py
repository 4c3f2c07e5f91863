"""API tokens and bot accounts, managed by the people who own them.

A token is a bearer credential with scopes (read, post, subscribe,
write_transactions) and, optionally, a list of companies it is limited to.
Its secret is shown once, when it is made, and only a hash is kept.

Who may make what:

- a browser session may make tokens for its user, or for a bot its user
  made, with any scope in companies where that user (or bot) is a member;
  ``write_transactions`` only where the user is an accountant;
- a token may make tokens too, but only with scopes it has, lasting no
  longer than itself, and revoked with it; managing tokens and bots needs
  the ``post`` scope and a credential not limited to some companies, so a
  leaked read-only token can neither mint a token that posts nor list or
  revoke the user's others;
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
    "CompanyBot",
    "TokenView",
    "company_bots",
    "create_bot",
    "create_token",
    "list_bots",
    "list_tokens",
    "remove_bot",
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


def _require_manager(principal: Principal) -> None:
    """Refuse credentials that may not manage tokens and bots.

    Managing credentials is writing: it needs the ``post`` scope, and a
    credential limited to some companies may not, since tokens and bots
    span companies (a read-only token limited to one company must not list,
    mint or revoke the user's tokens for others).
    """
    if principal.user_kind == "bot":
        raise Forbidden("Bots cannot manage tokens or bots.")
    if not principal.may(Scope.POST):
        raise Forbidden(
            "Managing tokens and bots needs the post scope.", code="missing_scope"
        )
    if principal.company_ids is not None:
        raise Forbidden(
            "A credential limited to some companies cannot manage tokens or bots."
        )


async def create_bot(
    services: Services, principal: Principal, company_id: uuid.UUID, name: str
) -> Bot:
    """Make a bot account that is a member of the company.

    Raises:
        NotFound: the company is not the principal's.
        Forbidden: the principal is not an accountant there, or is a bot.
        InvalidInput: a bad name.

    """
    _require_manager(principal)
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
    _require_manager(principal)
    async with services.db.connection() as conn:
        found = []
        for bot in await users.bots_of(conn, principal.user_id):
            mine = await companies.list_for_user(conn, bot.id)
            found.append(Bot(bot.id, bot.display_name, [c.id for c in mine]))
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class CompanyBot:
    id: uuid.UUID
    name: str
    # The accountant who made it; None when an operator did.
    owner_id: uuid.UUID | None
    owner_name: str | None


async def company_bots(
    services: Services, principal: Principal, company_id: uuid.UUID
) -> list[CompanyBot]:
    """The bots that are members of the company, for its accountants.

    Raises:
        NotFound: the company is not the principal's.
        Forbidden: the principal is not an accountant there.

    """
    async with services.db.connection() as conn:
        role = await access.require_member(conn, principal, company_id, Scope.READ)
        if role != "accountant":
            raise Forbidden("Only the company's accountants see its bots.")
        found = []
        for member in await companies.members(conn, company_id):
            if member.kind != "bot":
                continue
            bot = await users.by_id(conn, member.user_id)
            owner = None
            if bot is not None and bot.owner_id is not None:
                owner = await users.by_id(conn, bot.owner_id)
            found.append(
                CompanyBot(
                    member.user_id,
                    member.display_name,
                    None if owner is None else owner.id,
                    None if owner is None else owner.display_name,
                )
            )
    return found


async def remove_bot(
    services: Services, principal: Principal, company_id: uuid.UUID, bot_id: uuid.UUID
) -> None:
    """Take a bot out of the company, whoever made it.

    Its tokens then reach nothing there, and its open connections lose the
    company's channels within a second or two.

    Raises:
        NotFound: the company is not the principal's, or no such bot in it.
        Forbidden: the principal is not an accountant there.

    """
    async with services.db.transaction() as conn:
        role = await access.require_member(conn, principal, company_id, Scope.POST)
        if role != "accountant":
            raise Forbidden("Only the company's accountants remove its bots.")
        bot = await users.by_id(conn, bot_id)
        if (
            bot is None
            or bot.kind != "bot"
            or not await companies.remove_member(conn, company_id, bot_id)
        ):
            raise NotFound()
    await services.events.access_changed(bot_id)


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
    _require_manager(principal)
    name = check_name(name, "name", max_chars=100)
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise InvalidInput(
            f"expires_in_days is between 1 and {MAX_TOKEN_DAYS}.",
            field="expires_in_days",
        )
    parent_id = None
    if principal.credential_kind == "token":
        # Tokens mint only narrower tokens, which go when they go.
        if not scopes <= principal.scopes:
            raise Forbidden(
                "A token can only make tokens with scopes it has itself.",
                code="missing_scope",
            )
        parent_id = principal.credential_id

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
        if parent_id is not None:
            parent = (await credentials.by_ids(conn, [parent_id]))[parent_id]
            if parent.expires_at is not None and (
                expires_at is None or expires_at > parent.expires_at
            ):
                # A child never outlives the token that made it.
                expires_at = parent.expires_at
        return await issue_token(
            conn,
            user,
            name=name,
            scopes=scopes,
            company_ids=company_ids,
            expires_at=expires_at,
            parent_id=parent_id,
        )


async def list_tokens(services: Services, principal: Principal) -> list[TokenView]:
    """The principal's live tokens and their bots', newest first."""
    _require_manager(principal)
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
    _require_manager(principal)
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
