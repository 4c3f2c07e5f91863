"""A member's companies, their people, and the badge counts across them."""

from __future__ import annotations

import dataclasses
import uuid

from server.core import access
from server.core.principal import Principal, Scope
from server.core.services import Services
from server.store import companies, reads
from server.store.database import Conn
from server.store.reads import UnreadMessage


__all__ = [
    "Badges",
    "CompanyView",
    "badges_for",
    "list_members",
    "my_badges",
    "my_companies",
    "visible_badges",
    "waiting_messages",
]


@dataclasses.dataclass(frozen=True, slots=True)
class CompanyView:
    id: uuid.UUID
    name: str
    role: str
    unread: int


@dataclasses.dataclass(frozen=True, slots=True)
class Badges:
    """A user's unread counts, whole: a snapshot, never an increment."""

    total: int
    by_company: dict[uuid.UUID, int]


async def badges_for(conn: Conn, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, Badges]:
    """Each user's badges, recomputed from the messages and read markers."""
    counts = await reads.unread_by_company(conn, user_ids)
    return {
        user_id: Badges(sum(by_company.values()), by_company)
        for user_id, by_company in counts.items()
    }


def visible_badges(principal: Principal, badges: Badges) -> Badges:
    """Drop the companies a limited token does not reach."""
    if principal.company_ids is None:
        return badges
    by_company = {
        cid: n for cid, n in badges.by_company.items() if principal.reaches(cid)
    }
    return Badges(sum(by_company.values()), by_company)


async def my_badges(services: Services, principal: Principal) -> Badges:
    access.require_scope(principal, Scope.READ)
    async with services.db.connection() as conn:
        found = await badges_for(conn, [principal.user_id])
    return visible_badges(principal, found[principal.user_id])


async def my_companies(services: Services, principal: Principal) -> list[CompanyView]:
    """The principal's companies, by name, each with their unread count."""
    access.require_scope(principal, Scope.READ)
    async with services.db.connection() as conn:
        mine = await companies.list_for_user(conn, principal.user_id)
        badges = (await badges_for(conn, [principal.user_id]))[principal.user_id]
    return [
        CompanyView(c.id, c.name, c.role, badges.by_company.get(c.id, 0))
        for c in mine
        if principal.reaches(c.id)
    ]


async def list_members(
    services: Services, principal: Principal, company_id: uuid.UUID
) -> list[companies.Member]:
    """The people a message in this company may be addressed to.

    Raises:
        NotFound: the company is not the principal's.

    """
    async with services.db.connection() as conn:
        await access.require_member(conn, principal, company_id, Scope.READ)
        return await companies.members(conn, company_id)


async def waiting_messages(
    services: Services, principal: Principal, *, limit: int
) -> list[UnreadMessage]:
    """Messages addressed to the principal and not read, newest first."""
    access.require_scope(principal, Scope.READ)
    async with services.db.connection() as conn:
        found = await reads.unread_messages(conn, principal.user_id, limit=limit)
    return [m for m in found if principal.reaches(m.company_id)]
