"""Entities from the QuickBooks Online Accounting API, saved as JSON.

A file may hold any of the shapes the API answers with, or an array of
them:

* a query response, ``{"QueryResponse": {"Invoice": [...], ...}}``, with
  one list per entity name (startPosition and the like are skipped);
* one entity as a read returns it, ``{"Invoice": {...}, "time": ...}``;
* a bare entity, ``{"Id": "130", ...}``, when fields only one kind of
  entity has tell which it is (see :func:`infer_entity`).

Numbers are read as decimals, never floats, so that an amount such as
1234567.89 arrives exactly as QuickBooks sent it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from server.core.eligibility import TransactionType
from server.core.transactions import TransactionInput
from server.importer.rows import (
    Row,
    bad_amount,
    bad_date,
    missing_field,
    unknown_type,
)


__all__ = [
    "BILL_PAYMENT_TYPES",
    "ENTITY_TYPES",
    "PURCHASE_TYPES",
    "infer_entity",
    "read_entities",
]

logger = logging.getLogger(__name__)

#: Entities that become one Tickmark type whatever their fields say.
#: Others (VendorCredit, RefundReceipt, JournalEntry, Deposit, Transfer,
#: Estimate, ...) are refused as unknown types, save the two below.
ENTITY_TYPES: Mapping[str, TransactionType] = {
    "Invoice": TransactionType.INVOICE,
    "Bill": TransactionType.BILL,
    "Payment": TransactionType.CUSTOMER_PAYMENT,
    "SalesReceipt": TransactionType.SALES_RECEIPT,
    "CreditMemo": TransactionType.CREDIT_MEMO,
}
#: A BillPayment's type follows its PayType.
BILL_PAYMENT_TYPES: Mapping[str, TransactionType] = {
    "Check": TransactionType.VENDOR_CHECK,
    "CreditCard": TransactionType.CREDIT_CARD_CHARGE,
}
#: A Purchase's type follows its PaymentType; a CreditCard purchase with
#: ``"Credit": true`` is a credit card credit instead.
PURCHASE_TYPES: Mapping[str, TransactionType] = {
    "Check": TransactionType.VENDOR_CHECK,
    "CreditCard": TransactionType.CREDIT_CARD_CHARGE,
    "Cash": TransactionType.EXPENSE,
}

# Where the counterparty's name is, in the order they are looked for.
_COUNTERPARTY_REFS = ("CustomerRef", "VendorRef", "EntityRef")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_IDENTITY = "entity name and Id"


class _Unreadable(Exception):
    """The file holds no shape this reader knows; the message says why."""


def read_entities(text: str, *, source: str, currency: str) -> list[Row]:
    """Read QuickBooks Online entities, one row per entity.

    Args:
        text: the file's text; a leading byte order mark is ignored.
        source: how the file is named in each row's ``where``.
        currency: the currency of entities that carry no CurrencyRef.

    Returns:
        The rows in file order, parsed or refused with a reason. A file
        that is not JSON, or holds none of the known shapes, comes back as
        one refused row naming the file.

    """
    try:
        data = json.loads(text.removeprefix("\ufeff"), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        reason = f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        return [Row.refused(source, reason)]
    except RecursionError:
        return [Row.refused(source, "not JSON we can read: nested too deeply")]

    try:
        if isinstance(data, list):
            found = [pair for element in data for pair in _find(element)]
        else:
            found = _find(data)
    except _Unreadable as exc:
        return [Row.refused(source, str(exc))]
    logger.debug("entities found", extra={"source": source, "count": len(found)})
    return [_row(name, entity, source, currency) for name, entity in found]


def _find(data: object) -> list[tuple[str | None, object]]:
    """The entities in one JSON value, each with its name when it is given."""
    if not isinstance(data, dict):
        raise _Unreadable(
            f"expected QuickBooks Online entities, found a JSON {_json_kind(data)}"
        )
    if isinstance(data.get("Fault"), dict):
        raise _Unreadable(
            "the file holds an API error, not entities: " + _fault(data["Fault"])
        )
    if "Id" in data:
        return [(None, data)]
    if "QueryResponse" in data:
        response = data["QueryResponse"]
        if not isinstance(response, dict):
            raise _Unreadable("QueryResponse is not an object")
        return [
            (name, entity)
            for name, value in response.items()
            if isinstance(value, list)
            for entity in value
        ]
    found: list[tuple[str | None, object]] = [
        (name, value)
        for name, value in data.items()
        if name[:1].isupper() and isinstance(value, dict)
    ]
    if not found:
        raise _Unreadable("no QuickBooks Online entities found")
    return found


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


def _fault(fault: dict[str, Any]) -> str:
    errors = fault.get("Error")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return ": ".join(
            str(first[k]) for k in ("Message", "Detail") if first.get(k)
        ) or str(fault.get("type", "unknown fault"))
    return str(fault.get("type", "unknown fault"))


def infer_entity(entity: Mapping[str, object]) -> str | None:
    """The name of a bare entity, told by fields only it has, or None.

    Only shapes that cannot be mistaken are named: PayType (BillPayment),
    PaymentType (Purchase), UnappliedAmt (Payment), and DueDate with a
    VendorRef (Bill) or a CustomerRef (Invoice). Anything else must come
    wrapped, as in ``{"CreditMemo": {...}}``.
    """
    if "PayType" in entity:
        return "BillPayment"
    if "PaymentType" in entity:
        return "Purchase"
    if "UnappliedAmt" in entity:
        return "Payment"
    if "DueDate" in entity:
        if "VendorRef" in entity:
            return "Bill"
        if "CustomerRef" in entity:
            return "Invoice"
    return None


def _row(name: str | None, entity: object, source: str, currency: str) -> Row:
    if not isinstance(entity, dict):
        return Row.refused(
            f"{source} {name}", f"expected an object, found a JSON {_json_kind(entity)}"
        )
    entity_id = _text(entity.get("Id"))
    where = f"{source} {name or 'entity'} {entity_id or '(no Id)'}"
    if name is None:
        name = infer_entity(entity)
        if name is None:
            return Row.refused(
                where,
                "cannot tell which entity this is; "
                'wrap it in its name, as in {"Invoice": {...}}',
            )
        where = f"{source} {name} {entity_id or '(no Id)'}"
    if not entity_id:
        return Row.refused(where, missing_field("Id"))

    kind = _kind(name, entity)
    # TransactionType is a str too, so the test is for the type.
    if not isinstance(kind, TransactionType):
        return Row.refused(where, kind)
    date = entity.get("TxnDate")
    if date is None:
        return Row.refused(where, missing_field("TxnDate"))
    if not _is_date(date):
        return Row.refused(where, bad_date(str(date), "YYYY-MM-DD"))
    total = entity.get("TotalAmt")
    if total is None:
        return Row.refused(where, missing_field("TotalAmt"))
    amount = _amount(total)
    if amount is None:
        return Row.refused(where, bad_amount(str(total)))

    doc_number = _text(entity.get("DocNumber"))
    if not doc_number and name == "Payment":
        # A received payment keeps the customer's check number here.
        doc_number = _text(entity.get("PaymentRefNum"))
    item = TransactionInput(
        external_id=f"{name}:{entity_id}",
        type=kind.value,
        doc_number=doc_number,
        date=str(date),
        counterparty=_counterparty(entity),
        memo=_text(entity.get("PrivateNote")),
        amount=format(amount, "f"),
        currency=_text(_ref(entity, "CurrencyRef").get("value")) or currency,
    )
    return Row.parsed(where, item, identity=_IDENTITY)


def _kind(name: str, entity: dict[str, Any]) -> TransactionType | str:
    """The entity's Tickmark type, or the reason it has none."""
    if name in ENTITY_TYPES:
        return ENTITY_TYPES[name]
    if name == "BillPayment":
        return _by_field(name, entity, "PayType", BILL_PAYMENT_TYPES)
    if name == "Purchase":
        kind = _by_field(name, entity, "PaymentType", PURCHASE_TYPES)
        if kind is TransactionType.CREDIT_CARD_CHARGE and entity.get("Credit") is True:
            return TransactionType.CREDIT_CARD_CREDIT
        return kind
    return unknown_type(name)


def _by_field(
    name: str,
    entity: dict[str, Any],
    field: str,
    types: Mapping[str, TransactionType],
) -> TransactionType | str:
    value = entity.get(field)
    if value is None:
        return missing_field(field)
    if not isinstance(value, str) or value not in types:
        return f"unknown type {name!r} with {field} {value!r}"
    return types[value]


def _is_date(value: object) -> bool:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _amount(value: object) -> Decimal | None:
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    # bool is an int to Python, but true is no amount.
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return Decimal(value.strip())
    return None


def _text(value: object) -> str:
    """A text field; numbers are accepted as written, anything else is empty."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return ""


def _ref(entity: dict[str, Any], field: str) -> dict[str, Any]:
    ref = entity.get(field)
    return ref if isinstance(ref, dict) else {}


def _counterparty(entity: dict[str, Any]) -> str:
    for field in _COUNTERPARTY_REFS:
        name = _text(_ref(entity, field).get("name"))
        if name:
            return name
    return ""
