"""A company's webhooks: registered, listed and removed by its accountants."""

from __future__ import annotations

import secrets
import uuid

from server.core import access
from server.core.principal import Principal, Scope
from server.core.services import Services
from server.errors import Forbidden, InvalidInput, NotFound
from server.store import webhooks as store
from server.webhooks.targets import check_url


__all__ = ["MAX_WEBHOOKS", "create", "delete", "delivery_log", "list_webhooks"]

#: Most active webhooks per company.
MAX_WEBHOOKS = 10


async def _require_accountant(
    services: Services, principal: Principal, company_id: uuid.UUID, scope: Scope
) -> None:
    async with services.db.connection() as conn:
        role = await access.require_member(conn, principal, company_id, scope)
    if role != "accountant":
        raise Forbidden("Only the company's accountants manage its webhooks.")


async def create(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    url: str,
    *,
    allow_private: bool,
) -> store.Webhook:
    """Register a receiver; its signing secret is in the result, shown once.

    The webhook lives by its maker's standing: it stops when they leave the
    company or stop being its accountant.

    Raises:
        NotFound: the company is not the principal's.
        Forbidden: the principal is not an accountant there.
        InvalidInput: a URL we will not send to, or too many webhooks.

    """
    await _require_accountant(services, principal, company_id, Scope.POST)
    url = check_url(url, allow_private=allow_private)
    async with services.db.transaction() as conn:
        if len(await store.list_active(conn, company_id)) >= MAX_WEBHOOKS:
            raise InvalidInput(
                f"At most {MAX_WEBHOOKS} webhooks per company.", field="url"
            )
        return await store.insert(
            conn,
            company_id,
            url,
            "whsec_" + secrets.token_urlsafe(32),
            principal.user_id,
        )


async def list_webhooks(
    services: Services, principal: Principal, company_id: uuid.UUID
) -> list[store.Webhook]:
    await _require_accountant(services, principal, company_id, Scope.READ)
    async with services.db.connection() as conn:
        return await store.list_active(conn, company_id)


async def delete(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    webhook_id: uuid.UUID,
) -> None:
    await _require_accountant(services, principal, company_id, Scope.POST)
    async with services.db.transaction() as conn:
        if not await store.deactivate(conn, company_id, webhook_id):
            raise NotFound()


async def delivery_log(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    webhook_id: uuid.UUID,
    *,
    limit: int,
) -> list[store.Delivery]:
    await _require_accountant(services, principal, company_id, Scope.READ)
    async with services.db.connection() as conn:
        found = await store.deliveries(conn, company_id, webhook_id, limit)
    if found is None:
        raise NotFound()
    return found
