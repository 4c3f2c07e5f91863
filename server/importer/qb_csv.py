"""QuickBooks "Transaction List" reports, exported as CSV.

The export is a report made for people, not a data file: the company
name, the report name and its date range come before the header row,
blank lines may separate the parts, and a TOTAL row and a footnote close
it. The reader finds the header row by its column names, reads rows until
TOTAL, and ignores columns it has no use for (Split, Posting, Clr, ...).

The export carries no transaction id, so each row's external id is made
from what identifies it in the books; see :func:`external_id`.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import enum
import hashlib
import io
import logging
import re
from collections.abc import Mapping
from decimal import Decimal

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
    "QB_TYPES",
    "external_id",
    "parse_amount",
    "parse_date",
    "read_transaction_list",
]

logger = logging.getLogger(__name__)

#: QuickBooks' names for transaction types, and the Tickmark type each
#: becomes. A name not here (Journal Entry, Deposit, Transfer, Estimate,
#: Vendor Credit, ...) is refused as an unknown type.
QB_TYPES: Mapping[str, TransactionType] = {
    "Invoice": TransactionType.INVOICE,
    "Bill": TransactionType.BILL,
    # A payment received from a customer; paying a vendor is a Bill Payment.
    "Payment": TransactionType.CUSTOMER_PAYMENT,
    "Check": TransactionType.VENDOR_CHECK,
    "Bill Payment (Check)": TransactionType.VENDOR_CHECK,
    "Bill Payment (Credit Card)": TransactionType.CREDIT_CARD_CHARGE,
    # QuickBooks Online says Expense where QuickBooks Desktop says Charge.
    "Credit Card Expense": TransactionType.CREDIT_CARD_CHARGE,
    "Credit Card Charge": TransactionType.CREDIT_CARD_CHARGE,
    "Credit Card Credit": TransactionType.CREDIT_CARD_CREDIT,
    "Sales Receipt": TransactionType.SALES_RECEIPT,
    "Expense": TransactionType.EXPENSE,
    "Cash Expense": TransactionType.EXPENSE,
    "Billable Expense Charge": TransactionType.BILLABLE_EXPENSE,
    "Delayed Charge": TransactionType.DELAYED_CHARGE,
    "Credit Memo": TransactionType.CREDIT_MEMO,
    "Paycheck": TransactionType.PAYCHECK,
    "Payroll Check": TransactionType.PAYROLL,
}

_TYPES_BY_KEY = {name.casefold(): kind for name, kind in QB_TYPES.items()}


class _Column(enum.Enum):
    DATE = "Date"
    TYPE = "Transaction Type"
    NUM = "Num"
    NAME = "Name"
    MEMO = "Memo/Description"
    AMOUNT = "Amount"


# Header names, casefolded, as QuickBooks Online and Desktop write them.
# Account is read by neither: Tickmark stores no account.
_HEADER_NAMES = {
    "date": _Column.DATE,
    "transaction type": _Column.TYPE,
    "type": _Column.TYPE,
    "num": _Column.NUM,
    "no.": _Column.NUM,
    "name": _Column.NAME,
    "memo/description": _Column.MEMO,
    "memo": _Column.MEMO,
    "amount": _Column.AMOUNT,
}
_REQUIRED = (_Column.DATE, _Column.TYPE, _Column.AMOUNT)

_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Digits with or without thousands separators, and an optional fraction.
_DIGITS = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+")
_CURRENCY_SYMBOLS = "$€£¥"

_EXTERNAL_ID_PREFIX = "qbcsv:"
# 128 bits of SHA-256: a chance collision is out of reach for any company.
_EXTERNAL_ID_HEX_CHARS = 32
# Joins the parts of a key; a unit separator never occurs in a report.
_KEY_SEPARATOR = "\x1f"

_NUMBERED_IDENTITY = "type, number and date"
_UNNUMBERED_IDENTITY = "type, date, name and amount"


def read_transaction_list(text: str, *, source: str, currency: str) -> list[Row]:
    """Read a Transaction List export, one row per transaction line.

    Args:
        text: the file's text; a leading byte order mark is ignored.
        source: how the file is named in each row's ``where``.
        currency: the currency of every amount; the export names none.

    Returns:
        The rows in file order, parsed or refused with a reason. A file
        with no header row comes back as one refused row naming the file.

    """
    try:
        records = _records(text.removeprefix("\ufeff"))
    except csv.Error as exc:
        return [Row.refused(source, f"not a CSV file: {exc}")]

    header: dict[_Column, tuple[int, str]] | None = None
    rows: list[Row] = []
    # Rows with no number seen so far, by key; see external_id().
    occurrences: collections.Counter[str] = collections.Counter()
    for line, cells in records:
        if header is None:
            header = _header(cells)
            if header is not None:
                logger.debug("header row found", extra={"line": line})
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if _is_total(cells, header):
            # What follows TOTAL is the report's footnote (basis, time).
            break
        rows.append(_row(line, cells, header, source, currency, occurrences))

    if header is None:
        return [
            Row.refused(
                source, "no header row with Date, Transaction Type and Amount columns"
            )
        ]
    return rows


def _records(text: str) -> list[tuple[int, list[str]]]:
    """Each CSV record with the line it starts on, counting from 1.

    A quoted memo may hold line breaks, so a record's first line is the
    line after the previous record ended, not a count of records.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    records = []
    start = 1
    for cells in reader:
        records.append((start, cells))
        start = reader.line_num + 1
    return records


def _header(cells: list[str]) -> dict[_Column, tuple[int, str]] | None:
    """Where each known column is, with its name as written; None if no header."""
    found: dict[_Column, tuple[int, str]] = {}
    for i, cell in enumerate(cells):
        column = _HEADER_NAMES.get(cell.strip().casefold())
        if column is not None and column not in found:
            found[column] = (i, cell.strip())
    if all(column in found for column in _REQUIRED):
        return found
    return None


def _cell(
    cells: list[str], header: dict[_Column, tuple[int, str]], column: _Column
) -> str:
    if column not in header:
        return ""
    i = header[column][0]
    return cells[i].strip() if i < len(cells) else ""


def _is_total(cells: list[str], header: dict[_Column, tuple[int, str]]) -> bool:
    if _cell(cells, header, _Column.DATE) or _cell(cells, header, _Column.TYPE):
        return False
    first = next(cell.strip() for cell in cells if cell.strip())
    return first.casefold() == "total"


def _row(
    line: int,
    cells: list[str],
    header: dict[_Column, tuple[int, str]],
    source: str,
    currency: str,
    occurrences: collections.Counter[str],
) -> Row:
    where = f"{source} line {line}"
    values = {column: _cell(cells, header, column) for column in _Column}
    for column in _REQUIRED:
        if not values[column]:
            return Row.refused(where, missing_field(header[column][1]))

    type_name = values[_Column.TYPE]
    kind = _TYPES_BY_KEY.get(type_name.casefold())
    if kind is None:
        return Row.refused(where, unknown_type(type_name))
    date = parse_date(values[_Column.DATE])
    if date is None:
        return Row.refused(where, bad_date(values[_Column.DATE], "MM/DD/YYYY"))
    amount = parse_amount(values[_Column.AMOUNT])
    if amount is None:
        return Row.refused(where, bad_amount(values[_Column.AMOUNT]))

    num = values[_Column.NUM]
    name = values[_Column.NAME]
    occurrence = 1
    if not num:
        alike = _key(kind.value, date.isoformat(), name, _canon(amount))
        occurrences[alike] += 1
        occurrence = occurrences[alike]
    item = TransactionInput(
        external_id=external_id(kind, num, date, name, amount, occurrence=occurrence),
        type=kind.value,
        doc_number=num,
        date=date.isoformat(),
        counterparty=name,
        memo=values[_Column.MEMO],
        amount=format(amount, "f"),
        currency=currency,
    )
    identity = _NUMBERED_IDENTITY if num else _UNNUMBERED_IDENTITY
    return Row.parsed(where, item, identity=identity)


def parse_date(raw: str) -> dt.date | None:
    """A date written MM/DD/YYYY (or YYYY-MM-DD), or None if it is not one."""
    try:
        if match := _US_DATE.fullmatch(raw):
            return dt.date(int(match[3]), int(match[1]), int(match[2]))
        if _ISO_DATE.fullmatch(raw):
            return dt.date.fromisoformat(raw)
    except ValueError:
        # A calendar date that does not exist, such as 02/30/2026.
        return None
    return None


def parse_amount(raw: str) -> Decimal | None:
    """An amount as a report shows it, or None if it is not one.

    Accepts thousands separators, one currency symbol before or after the
    number, and a negative written with a leading minus (before or after
    the symbol) or in parentheses: ``-$1,250.00``, ``$-1,250.00`` and
    ``($1,250.00)`` are all -1250.00. Commas are always thousands
    separators, so a European ``1.250,00`` is refused rather than misread.
    """
    text = raw.strip()
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative = True
        text = text[1:-1].strip()
    symbol = False
    while text[:1] == "-" or (text[:1] and text[0] in _CURRENCY_SYMBOLS):
        if text[0] == "-":
            if negative:
                return None
            negative = True
        else:
            if symbol:
                return None
            symbol = True
        text = text[1:].lstrip()
    if not symbol and text[-1:] and text[-1] in _CURRENCY_SYMBOLS:
        text = text[:-1].rstrip()
    if not _DIGITS.fullmatch(text):
        return None
    value = Decimal(text.replace(",", ""))
    return -value if negative else value


def external_id(
    kind: TransactionType,
    num: str,
    date: dt.date,
    name: str,
    amount: Decimal,
    *,
    occurrence: int = 1,
) -> str:
    """The external id of a row of the export, which carries none of its own.

    A numbered row is known by its type, number and date; a row with no
    number by its type, date, name and amount, and, when several such rows
    are alike in all four, by its place among them in the file (1 for the
    first). The parts are hashed so that any number or name makes a valid
    id: ``qbcsv:`` and 32 hex digits of their SHA-256.

    This recipe is part of the stored data: changing it would make every
    transaction imported before look new. A consequence documented in
    docs/importing.md: editing a key part in QuickBooks (a date, a number)
    makes a new transaction in Tickmark and leaves the old one.
    """
    if num:
        key = _key("num", kind.value, num, date.isoformat())
    else:
        key = _key("nonum", kind.value, date.isoformat(), name, _canon(amount))
        if occurrence > 1:
            key = _key(key, str(occurrence))
    digest = hashlib.sha256(key.encode()).hexdigest()
    return _EXTERNAL_ID_PREFIX + digest[:_EXTERNAL_ID_HEX_CHARS]


def _key(*parts: str) -> str:
    return _KEY_SEPARATOR.join(parts)


def _canon(amount: Decimal) -> str:
    """The amount written one way whatever the export did: 1250.5, not 1,250.50."""
    return format(amount.normalize(), "f")
