"""Transactions: listing them for members, and taking them from the books."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from server.core import access
from server.core.eligibility import TransactionType
from server.core.principal import Principal, Scope
from server.core.services import Services
from server.errors import Forbidden, InvalidInput, NotFound
from server.store import companies, messages, transactions
from server.store.database import Conn
from server.store.messages import Message
from server.store.transactions import TransactionFields, TransactionSummary


__all__ = [
    "MAX_UPSERT_BATCH",
    "CheckedTransaction",
    "TransactionInput",
    "UpsertResult",
    "check_fields",
    "check_item",
    "get_transaction",
    "list_transactions",
    "upsert_as_operator",
    "upsert_transactions",
]

#: Most transactions one upsert call may carry.
MAX_UPSERT_BATCH = 500
#: Most transactions one page of a listing holds.
MAX_LIST_PAGE = 200

_EXTERNAL_ID = re.compile(r"[A-Za-z0-9._:\-]{1,100}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# numeric(18, 2): sixteen digits before the point.
_MAX_AMOUNT = Decimal("9999999999999999.99")


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionInput:
    """One transaction as the accounting system sends it, not yet checked."""

    external_id: str
    type: str
    doc_number: str
    date: str
    counterparty: str
    memo: str
    amount: str
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class CheckedTransaction:
    """A transaction that passed :func:`check_item`, ready to upsert."""

    external_id: str
    fields: TransactionFields


@dataclasses.dataclass(frozen=True, slots=True)
class UpsertResult:
    external_id: str
    transaction_id: uuid.UUID
    # 'created', 'updated' or 'unchanged'.
    status: str


async def get_transaction(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    transaction_id: uuid.UUID,
) -> TransactionSummary:
    """One transaction with the principal's view of its conversation.

    Raises:
        NotFound: the company or transaction is not the principal's.

    """
    async with services.db.connection() as conn:
        _, summary = await access.require_transaction(
            conn, principal, company_id, transaction_id, Scope.READ
        )
    return summary


async def list_transactions(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    *,
    type: str | None,
    has_conversation: bool | None,
    unread_only: bool,
    after: tuple[dt.date, uuid.UUID] | None,
    limit: int,
) -> list[TransactionSummary]:
    """The company's transactions, newest first, as the principal sees them.

    Raises:
        NotFound: the company is not the principal's.
        InvalidInput: an unknown type or a bad limit.

    """
    if type is not None and type not in TransactionType.__members__.values():
        raise InvalidInput(f"Unknown transaction type {type!r}.", field="type")
    if not 1 <= limit <= MAX_LIST_PAGE:
        raise InvalidInput(f"limit is between 1 and {MAX_LIST_PAGE}.", field="limit")
    async with services.db.connection() as conn:
        await access.require_member(conn, principal, company_id, Scope.READ)
        return await transactions.list_for_member(
            conn,
            company_id,
            principal.user_id,
            type=type,
            has_conversation=has_conversation,
            unread_only=unread_only,
            after=after,
            limit=limit,
        )


def _text(value: str, field: str, max_chars: int) -> str:
    value = value.strip()
    if len(value) > max_chars:
        raise InvalidInput(f"At most {max_chars} characters.", field=field)
    if "\x00" in value:
        raise InvalidInput("Text cannot hold NUL characters.", field=field)
    return value


def check_fields(item: TransactionInput, field: str) -> TransactionFields:
    """Turn the accounting system's strings into stored values.

    Raises:
        InvalidInput: naming the field (``transactions.3.amount``) at fault.

    """
    if item.type not in TransactionType.__members__.values():
        allowed = ", ".join(t.value for t in TransactionType)
        raise InvalidInput(
            f"Unknown transaction type {item.type!r}; known types: {allowed}.",
            field=f"{field}.type",
        )
    try:
        txn_date = dt.date.fromisoformat(item.date)
    except ValueError:
        raise InvalidInput(
            "Dates are written YYYY-MM-DD.", field=f"{field}.date"
        ) from None
    # Plain ASCII digits only: Decimal() would also take "1e5", "1_000",
    # padding and other scripts' digits, none of which an export writes.
    if not _AMOUNT.fullmatch(item.amount):
        raise InvalidInput(
            "Amounts are decimal numbers such as 1250.00 or -45.5.",
            field=f"{field}.amount",
        )
    try:
        amount = Decimal(item.amount)
    except InvalidOperation:
        raise InvalidInput(
            "Amounts are decimal numbers such as 1250.00.", field=f"{field}.amount"
        ) from None
    if not amount.is_finite() or abs(amount) > _MAX_AMOUNT:
        raise InvalidInput("The amount is out of range.", field=f"{field}.amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(
            "Amounts have at most two decimal places.", field=f"{field}.amount"
        )
    currency = item.currency.strip().upper()
    if not _CURRENCY.fullmatch(currency):
        raise InvalidInput(
            "Currencies are three-letter ISO 4217 codes.", field=f"{field}.currency"
        )
    return TransactionFields(
        type=item.type,
        doc_number=_text(item.doc_number, f"{field}.doc_number", 50),
        txn_date=txn_date,
        counterparty=_text(item.counterparty, f"{field}.counterparty", 200),
        memo=_text(item.memo, f"{field}.memo", 2000),
        amount=amount,
        currency=currency,
    )


def _check_external_id(external_id: str, field: str) -> None:
    if not _EXTERNAL_ID.fullmatch(external_id):
        raise InvalidInput(
            "External ids are 1 to 100 letters, digits or . _ : -.", field=field
        )


def check_item(item: TransactionInput, field: str) -> CheckedTransaction:
    """Check one transaction, its external id included.

    Args:
        item: the transaction as the accounting system describes it.
        field: the dotted name errors start with, such as ``transactions.3``.

    Raises:
        InvalidInput: naming the field at fault.

    """
    _check_external_id(item.external_id, f"{field}.external_id")
    return CheckedTransaction(item.external_id, check_fields(item, field))


def _change_note(before: TransactionFields, after: TransactionFields) -> str | None:
    """A sentence for the thread when the type, amount or date changes, else None."""
    changes = []
    if before.type != after.type:
        old, new = TransactionType(before.type), TransactionType(after.type)
        changes.append(f"type from {old.label.lower()} to {new.label.lower()}")
    if before.amount != after.amount or before.currency != after.currency:
        changes.append(
            f"amount from {before.amount:.2f} {before.currency} "
            f"to {after.amount:.2f} {after.currency}"
        )
    if before.txn_date != after.txn_date:
        changes.append(f"date from {before.txn_date} to {after.txn_date}")
    if not changes:
        return None
    return "The accounting system changed the " + " and the ".join(changes) + "."


async def upsert_transactions(
    services: Services,
    principal: Principal,
    company_id: uuid.UUID,
    items: list[TransactionInput],
) -> list[UpsertResult]:
    """Create or update transactions by the accounting system's ids.

    All or nothing: one bad item refuses the whole batch, so a retry after
    fixing it repeats nothing. Sending the same batch twice changes nothing
    the second time. When the amount or date of a transaction that already
    has a conversation changes, the thread gets a system entry saying so.

    Raises:
        NotFound: the company is not the principal's.
        Forbidden: the credential lacks write_transactions, or the
            principal is a client rather than an accountant (or a bot an
            accountant made).
        InvalidInput: naming the first bad item and field.

    """
    if not items:
        raise InvalidInput("Send at least one transaction.", field="transactions")
    if len(items) > MAX_UPSERT_BATCH:
        raise InvalidInput(
            f"At most {MAX_UPSERT_BATCH} transactions per call.", field="transactions"
        )
    checked: list[CheckedTransaction] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        field = f"transactions.{i}"
        _check_external_id(item.external_id, f"{field}.external_id")
        if item.external_id in seen:
            raise InvalidInput(
                "This external id appears twice in the batch.",
                field=f"{field}.external_id",
            )
        seen.add(item.external_id)
        checked.append(CheckedTransaction(item.external_id, check_fields(item, field)))

    async with services.db.transaction() as conn:
        role = await access.require_member(
            conn, principal, company_id, Scope.WRITE_TRANSACTIONS
        )
        if role not in ("accountant", "bot"):
            raise Forbidden("Only the company's accountants write transactions.")
        results, notes = await _upsert_checked(conn, services, company_id, checked)
    if notes:
        await services.events.messages_posted(notes)
    return results


async def upsert_as_operator(
    services: Services,
    company_id: uuid.UUID,
    checked: Sequence[CheckedTransaction],
) -> list[UpsertResult]:
    """Create or update checked transactions, with no principal to check.

    Only for code the operator runs with the database's own rights, such
    as the importer started from the command line: nothing here asks who
    is writing. Otherwise it behaves as :func:`upsert_transactions`: the
    batch commits whole or not at all, an unchanged transaction stays
    unchanged, and a changed amount or date notes itself in the thread.

    Args:
        checked: at most :data:`MAX_UPSERT_BATCH` transactions from
            :func:`check_item`, each external id once.

    Raises:
        ValueError: the batch is empty, too large, or repeats an external id.
        NotFound: there is no such company.

    """
    if not 1 <= len(checked) <= MAX_UPSERT_BATCH:
        raise ValueError(
            f"checked holds 1 to {MAX_UPSERT_BATCH} transactions, got {len(checked)}"
        )
    if len({c.external_id for c in checked}) != len(checked):
        raise ValueError("checked repeats an external id")

    async with services.db.transaction() as conn:
        if await companies.by_id(conn, company_id) is None:
            raise NotFound(f"There is no company {company_id}.")
        results, notes = await _upsert_checked(conn, services, company_id, checked)
    if notes:
        await services.events.messages_posted(notes)
    return results


async def _upsert_checked(
    conn: Conn,
    services: Services,
    company_id: uuid.UUID,
    checked: Sequence[CheckedTransaction],
) -> tuple[list[UpsertResult], list[Message]]:
    """Upsert inside the caller's transaction; returns the notes to announce.

    The notes are announced by the caller once the transaction commits, so
    that no one hears of a note that could still be rolled back.
    """
    notes: list[Message] = []
    results = []
    for item in checked:
        upserted = await transactions.upsert_by_external_id(
            conn, company_id, item.external_id, item.fields
        )
        if upserted.before is not None:
            note = await _note_change(
                conn, services, upserted.transaction.id, upserted.before, item.fields
            )
            if note is not None:
                notes.append(note)
        results.append(
            UpsertResult(item.external_id, upserted.transaction.id, upserted.status)
        )
    return results, notes


async def _note_change(
    conn: Conn,
    services: Services,
    transaction_id: uuid.UUID,
    before: TransactionFields,
    after: TransactionFields,
) -> Message | None:
    text = _change_note(before, after)
    if text is None:
        return None
    # A transaction nobody has talked about gets no thread for this.
    if await messages.conversation_of(conn, transaction_id) is None:
        return None
    company_id = await transactions.company_of(conn, transaction_id)
    assert company_id is not None
    note, _ = await messages.insert(
        conn,
        transaction_id=transaction_id,
        company_id=company_id,
        author_id=None,
        author_role=None,
        body=text,
        recipient_ids=[],
        idempotency_key=None,
        created_at=services.clock.now(),
    )
    return note
