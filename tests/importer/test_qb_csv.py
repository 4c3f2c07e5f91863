"""Reading QuickBooks Transaction List exports, with no database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from server.core.eligibility import TransactionType
from server.core.transactions import TransactionInput
from server.importer.qb_csv import (
    QB_TYPES,
    external_id,
    parse_amount,
    parse_date,
    read_transaction_list,
)
from server.importer.rows import Row


SAMPLE = Path(__file__).parent / "samples" / "transaction-list.csv"

HEADER = ",Date,Transaction Type,Num,Name,Memo/Description,Account,Amount\n"


def read(text: str) -> list[Row]:
    return read_transaction_list(text, source="t.csv", currency="USD")


def test_sample_reads_every_row_with_a_line_number() -> None:
    rows = read(SAMPLE.read_text(encoding="utf-8"))

    assert len(rows) == 32
    assert [row.where for row in rows] == [f"t.csv line {n}" for n in range(6, 38)]
    assert [(row.where, row.reason) for row in rows if row.item is None] == [
        ("t.csv line 13", "unknown type 'Journal Entry'"),
        ("t.csv line 24", "unknown type 'Deposit'"),
        ("t.csv line 29", "bad date '02/30/2026' (expected MM/DD/YYYY)"),
        ("t.csv line 36", "bad amount '-4.200,00'"),
    ]


def test_sample_maps_every_type_it_holds() -> None:
    rows = read(SAMPLE.read_text(encoding="utf-8"))

    kinds = [row.item.type for row in rows if row.item is not None]
    assert sorted(set(kinds)) == sorted(t.value for t in TransactionType)
    assert len(kinds) == 28


def test_sample_row_becomes_the_transaction_the_export_shows() -> None:
    rows = read(SAMPLE.read_text(encoding="utf-8"))

    assert rows[0] == Row.parsed(
        "t.csv line 6",
        TransactionInput(
            external_id="qbcsv:7e18c17761eaaeea4375c06fba6df0c9",
            type="invoice",
            doc_number="1037",
            date="2026-01-02",
            counterparty="Acme Ltd",
            memo="Q1 bookkeeping retainer",
            amount="1250.00",
            currency="USD",
        ),
        identity="type, number and date",
    )
    # A quoted memo keeps its comma; a blank Num gives another identity.
    assert rows[3] == Row.parsed(
        "t.csv line 9",
        TransactionInput(
            external_id="qbcsv:9882db428336f41c9778277f3b941d42",
            type="credit_card_charge",
            doc_number="",
            date="2026-01-08",
            counterparty="Delta Air Lines",
            memo="Flight to client site, BOS-ORD",
            amount="-486.30",
            currency="USD",
        ),
        identity="type, date, name and amount",
    )


def test_title_lines_blank_lines_and_total_footer_are_skipped() -> None:
    text = (
        "Cobalt Books\n"
        "Transaction List by Date\n"
        '"All Dates"\n'
        "\n"
        "\n" + HEADER + "\n"
        ",03/02/2026,Invoice,1042,Acme Ltd,,Accounts Receivable (A/R),50.00\n"
        ",,,,,,,\n"
        "\n"
        ',03/03/2026,Bill,77,Northline,,Accounts Payable (A/P),"1,000.00"\n'
        'TOTAL,,,,,,,"$1,050.00"\n'
        "\n"
        '"Accrual Basis  Tuesday, April 7, 2026  09:12 AM GMT-04:00"\n'
    )

    rows = read(text)

    assert [(row.where, row.item and row.item.amount) for row in rows] == [
        ("t.csv line 8", "50.00"),
        ("t.csv line 11", "1000.00"),
    ]


def test_byte_order_mark_is_ignored() -> None:
    text = "\ufeff" + HEADER + ",03/02/2026,Invoice,1042,Acme Ltd,,A/R,50.00\n"

    rows = read(text)

    assert len(rows) == 1
    assert rows[0].item is not None
    assert rows[0].item.doc_number == "1042"


def test_memo_with_line_breaks_keeps_the_next_row_line_number() -> None:
    text = (
        HEADER
        + ',03/02/2026,Invoice,1042,Acme Ltd,"two\nlines",A/R,50.00\n'
        + ",03/03/2026,Invoice,1043,Acme Ltd,,A/R,60.00\n"
    )

    rows = read(text)

    assert [row.where for row in rows] == ["t.csv line 2", "t.csv line 4"]
    assert rows[0].item is not None
    assert rows[0].item.memo == "two\nlines"


def test_desktop_header_names_and_column_order_are_understood() -> None:
    text = (
        "Type,Date,Num,Name,Memo,Account,Clr,Split,Amount\n"
        "Check,03/02/2026,5020,Kessler Property Mgmt,Rent,Checking,X,Rent,-900.00\n"
    )

    rows = read(text)

    assert rows == [
        Row.parsed(
            "t.csv line 2",
            TransactionInput(
                external_id=external_id(
                    TransactionType.VENDOR_CHECK,
                    "5020",
                    dt.date(2026, 3, 2),
                    "",
                    Decimal(0),
                ),
                type="vendor_check",
                doc_number="5020",
                date="2026-03-02",
                counterparty="Kessler Property Mgmt",
                memo="Rent",
                amount="-900.00",
                currency="USD",
            ),
            identity="type, number and date",
        )
    ]


def test_file_with_no_header_row_is_refused_whole() -> None:
    rows = read("Date,Kind,Total\n03/02/2026,Invoice,5.00\n")

    assert rows == [
        Row.refused(
            "t.csv", "no header row with Date, Transaction Type and Amount columns"
        )
    ]


def test_missing_fields_are_named_as_the_header_writes_them() -> None:
    text = (
        HEADER
        + ",,Invoice,1,Acme,,A/R,5.00\n"
        + ",03/02/2026,,2,Acme,,A/R,5.00\n"
        + ",03/02/2026,Invoice,3,Acme,,A/R,\n"
        + ",03/02/2026,Invoice\n"
    )

    assert [row.reason for row in read(text)] == [
        "missing field 'Date'",
        "missing field 'Transaction Type'",
        "missing field 'Amount'",
        "missing field 'Amount'",
    ]


def test_currency_option_applies_to_every_row() -> None:
    text = HEADER + ",03/02/2026,Invoice,1042,Acme Ltd,,A/R,50.00\n"

    rows = read_transaction_list(text, source="t.csv", currency="CAD")

    assert rows[0].item is not None
    assert rows[0].item.currency == "CAD"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Invoice", "invoice"),
        ("Bill", "bill"),
        ("Payment", "customer_payment"),
        ("Check", "vendor_check"),
        ("Bill Payment (Check)", "vendor_check"),
        ("Bill Payment (Credit Card)", "credit_card_charge"),
        ("Credit Card Expense", "credit_card_charge"),
        ("Credit Card Charge", "credit_card_charge"),
        ("Credit Card Credit", "credit_card_credit"),
        ("Sales Receipt", "sales_receipt"),
        ("Expense", "expense"),
        ("Cash Expense", "expense"),
        ("Billable Expense Charge", "billable_expense"),
        ("Delayed Charge", "delayed_charge"),
        ("Credit Memo", "credit_memo"),
        ("Paycheck", "paycheck"),
        ("Payroll Check", "payroll"),
        ("credit card expense", "credit_card_charge"),
    ],
)
def test_quickbooks_type_names_map_to_ours(name: str, kind: str) -> None:
    rows = read(HEADER + f",03/02/2026,{name},1,Acme,,A/R,5.00\n")

    assert rows[0].item is not None
    assert rows[0].item.type == kind


def test_type_table_covers_the_names_tested() -> None:
    assert len(QB_TYPES) == 17


@pytest.mark.parametrize(
    "name",
    [
        "Journal Entry",
        "Deposit",
        "Transfer",
        "Estimate",
        "Vendor Credit",
        "Refund",
        "Purchase Order",
        "Credit Card Payment",
    ],
)
def test_types_we_do_not_know_are_refused_by_name(name: str) -> None:
    rows = read(HEADER + f",03/02/2026,{name},1,Acme,,A/R,5.00\n")

    assert rows == [Row.refused("t.csv line 2", f"unknown type {name!r}")]


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        ("1250.00", Decimal("1250.00")),
        ("1,250.00", Decimal("1250.00")),
        ("1,234,567.89", Decimal("1234567.89")),
        ("-1,250.00", Decimal("-1250.00")),
        ("(1,250.00)", Decimal("-1250.00")),
        ("$1,250.00", Decimal("1250.00")),
        ("-$1,250.00", Decimal("-1250.00")),
        ("$-1,250.00", Decimal("-1250.00")),
        ("($1,250.00)", Decimal("-1250.00")),
        ("€ 99.50", Decimal("99.50")),
        ("99.50 €", Decimal("99.50")),
        ("£0.99", Decimal("0.99")),
        (" 7 ", Decimal("7")),
        (".50", Decimal("0.50")),
    ],
)
def test_amounts_are_read_as_reports_write_them(raw: str, amount: Decimal) -> None:
    assert parse_amount(raw) == amount


@pytest.mark.parametrize(
    "raw",
    [
        "1.250,00",
        "12,50",
        "1,2345.00",
        "--5.00",
        "(-5.00)",
        "$$5.00",
        "5.00-",
        "abc",
        "",
        "$",
        "1e3",
        "NaN",
    ],
)
def test_amounts_that_are_not_amounts_are_refused(raw: str) -> None:
    assert parse_amount(raw) is None


@pytest.mark.parametrize(
    ("raw", "date"),
    [
        ("03/02/2026", dt.date(2026, 3, 2)),
        ("3/2/2026", dt.date(2026, 3, 2)),
        ("12/31/2025", dt.date(2025, 12, 31)),
        ("2026-03-02", dt.date(2026, 3, 2)),
    ],
)
def test_dates_are_read_month_first(raw: str, date: dt.date) -> None:
    assert parse_date(raw) == date


@pytest.mark.parametrize(
    "raw", ["02/30/2026", "13/01/2026", "03/02/26", "2026-3-2", "March 2, 2026", ""]
)
def test_dates_that_are_not_dates_are_refused(raw: str) -> None:
    assert parse_date(raw) is None


def test_external_id_recipe_is_stable() -> None:
    # These values are stored: if this test fails, every re-import of an
    # earlier export would create its transactions again.
    date = dt.date(2026, 3, 2)
    kind = TransactionType.INVOICE
    assert (
        external_id(kind, "1042", date, "Acme Ltd", Decimal("1250.00"))
        == "qbcsv:52a071b8c15ae92448634bb251fa03f7"
    )
    assert (
        external_id(kind, "", date, "Acme Ltd", Decimal("1250.00"))
        == "qbcsv:39e2e2febc0eae11655dc2a1946d339e"
    )


def test_numbered_row_keeps_its_id_when_name_amount_or_memo_change() -> None:
    before = read(HEADER + ",03/02/2026,Invoice,1042,Acme Ltd,old,A/R,50.00\n")
    after = read(HEADER + ",03/02/2026,Invoice,1042,Acme Limited,new,A/R,75.00\n")
    other_day = read(HEADER + ",03/03/2026,Invoice,1042,Acme Ltd,old,A/R,50.00\n")

    ids = [
        rows[0].item.external_id for rows in (before, after, other_day) if rows[0].item
    ]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]


def test_unnumbered_rows_alike_are_told_apart_by_their_order() -> None:
    line = ",03/02/2026,Expense,,Corner Deli,Coffee,Petty Cash,-4.50\n"
    rows = read(HEADER + line + line + ",03/02/2026,Expense,,Corner Deli,,Cash,-9.00\n")

    date = dt.date(2026, 3, 2)
    kind = TransactionType.EXPENSE
    assert [row.item.external_id for row in rows if row.item] == [
        external_id(kind, "", date, "Corner Deli", Decimal("-4.50")),
        external_id(kind, "", date, "Corner Deli", Decimal("-4.50"), occurrence=2),
        external_id(kind, "", date, "Corner Deli", Decimal("-9.00")),
    ]
    assert len({row.item.external_id for row in rows if row.item}) == 3
    assert rows[0].identity == "type, date, name and amount"


def test_unnumbered_amount_is_the_same_however_it_is_written() -> None:
    date = dt.date(2026, 3, 2)
    kind = TransactionType.EXPENSE

    assert external_id(kind, "", date, "Shell", Decimal("1250.5")) == external_id(
        kind, "", date, "Shell", Decimal("1250.50")
    )


def test_text_that_csv_cannot_split_is_refused_whole() -> None:
    rows = read('"' + "a" * 200_000 + '"\n')

    assert rows == [
        Row.refused("t.csv", "not a CSV file: field larger than field limit (131072)")
    ]
