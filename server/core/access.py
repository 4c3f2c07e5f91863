"""Who may see what: every company-scoped read and write starts here.

A caller who is not a member of a company, or whose token does not reach
it, is told the company does not exist. The answer is the same as for an
id that names nothing, so ids of other companies cannot be probed.
"""

from __future__ import annotations

import uuid

from server.core.principal import Principal, Scope
from server.errors import Forbidden, NotFound
from server.store import companies, transactions
from server.store.database import Conn
from server.store.messages import PostingFacts


__all__ = [
    "postable_role",
    "require_member",
    "require_scope",
    "require_transaction",
]


def require_scope(principal: Principal, scope: Scope) -> None:
    """Refuse a credential that was not made for this kind of action.

    Raises:
        Forbidden: code ``missing_scope``, naming the scope.

    """
    if not principal.may(scope):
        raise Forbidden(
            f"This credential does not allow {scope.value}.", code="missing_scope"
        )


async def require_member(
    conn: Conn, principal: Principal, company_id: uuid.UUID, scope: Scope
) -> str:
    """The principal's role in the company, if their credential allows ``scope``.

    Membership is checked before the scope: a company that is not yours is
    "not found" whatever you meant to do there, and only then does a
    credential's scope decide between doing it and 403.

    Raises:
        NotFound: not a member, or the credential does not reach the company.
        Forbidden: code ``missing_scope``.

    """
    if not principal.reaches(company_id):
        raise NotFound()
    role = await companies.role_of(conn, company_id, principal.user_id)
    if role is None:
        raise NotFound()
    require_scope(principal, scope)
    return role


async def require_transaction(
    conn: Conn,
    principal: Principal,
    company_id: uuid.UUID,
    transaction_id: uuid.UUID,
    scope: Scope,
) -> tuple[str, transactions.TransactionSummary]:
    """The principal's role and the transaction, as they see it.

    Raises:
        NotFound: the company is not theirs, or has no such transaction.
        Forbidden: code ``missing_scope``.

    """
    if not principal.reaches(company_id):
        raise NotFound()
    role = await companies.role_of(conn, company_id, principal.user_id)
    summary = await transactions.get(
        conn, company_id, transaction_id, principal.user_id
    )
    if role is None or summary is None:
        raise NotFound()
    require_scope(principal, scope)
    return role, summary


def postable_role(
    principal: Principal, company_id: uuid.UUID, facts: PostingFacts
) -> str:
    """The principal's role, for posting on a transaction with these facts.

    The same rules as :func:`require_transaction` with the ``post`` scope,
    judged on facts read by the statement that stores the post
    (:func:`server.store.messages.append_checked`).

    Raises:
        NotFound: the company is not theirs, or has no such transaction.
        Forbidden: code ``missing_scope``.

    """
    if not principal.reaches(company_id) or facts.role is None or facts.type is None:
        raise NotFound()
    require_scope(principal, Scope.POST)
    return facts.role
