"""Reading QuickBooks Online API entities, with no database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.core.transactions import TransactionInput
from server.importer.qbo_json import infer_entity, read_entities
from server.importer.rows import Row


SAMPLES = Path(__file__).parent / "samples"


def read(data: Any, currency: str = "USD") -> list[Row]:
    text = data if isinstance(data, str) else json.dumps(data)
    return read_entities(text, source="q.json", currency=currency)


def item(**fields: str) -> TransactionInput:
    defaults = {
        "doc_number": "",
        "counterparty": "",
        "memo": "",
        "currency": "USD",
    }
    return TransactionInput(**(defaults | fields))


def entity(**fields: Any) -> dict[str, Any]:
    return {"Id": "7", "TxnDate": "2026-03-02", "TotalAmt": 10.0} | fields


def test_query_response_sample_becomes_one_row_per_entity() -> None:
    text = (SAMPLES / "qbo-query-response.json").read_text(encoding="utf-8")

    rows = read_entities(text, source="q.json", currency="USD")

    assert [(row.where, row.item.type if row.item else row.reason) for row in rows] == [
        ("q.json Invoice 130", "invoice"),
        ("q.json Invoice 131", "invoice"),
        ("q.json Bill 212", "bill"),
        ("q.json Bill 213", "bill"),
        ("q.json Payment 145", "customer_payment"),
        ("q.json BillPayment 220", "vendor_check"),
        ("q.json BillPayment 221", "credit_card_charge"),
        ("q.json Purchase 301", "vendor_check"),
        ("q.json Purchase 302", "credit_card_charge"),
        ("q.json Purchase 303", "credit_card_credit"),
        ("q.json Purchase 304", "expense"),
        ("q.json SalesReceipt 160", "sales_receipt"),
        ("q.json CreditMemo 170", "credit_memo"),
        ("q.json VendorCredit 230", "unknown type 'VendorCredit'"),
        ("q.json JournalEntry 400", "unknown type 'JournalEntry'"),
        ("q.json Deposit 410", "unknown type 'Deposit'"),
    ]


def test_query_response_sample_fields_come_from_the_entities() -> None:
    text = (SAMPLES / "qbo-query-response.json").read_text(encoding="utf-8")

    rows = {
        row.where: row.item
        for row in read_entities(text, source="q.json", currency="USD")
    }

    assert rows["q.json Invoice 130"] == item(
        external_id="Invoice:130",
        type="invoice",
        doc_number="1042",
        date="2026-03-02",
        counterparty="Acme Ltd",
        memo="March retainer; includes the extra reconciliation hours",
        amount="1275.00",
    )
    # The amount arrives exactly as written, and CurrencyRef wins.
    assert rows["q.json Invoice 131"] == item(
        external_id="Invoice:131",
        type="invoice",
        doc_number="1043",
        date="2026-03-05",
        counterparty="Maple Leaf Charters",
        amount="2480.10",
        currency="CAD",
    )
    # A received payment's number is the customer's check number.
    assert rows["q.json Payment 145"] == item(
        external_id="Payment:145",
        type="customer_payment",
        doc_number="4502",
        date="2026-03-06",
        counterparty="Cobalt Marine Services",
        amount="3450.00",
    )
    # A Purchase names its counterparty in EntityRef.
    assert rows["q.json Purchase 303"] == item(
        external_id="Purchase:303",
        type="credit_card_credit",
        date="2026-01-26",
        counterparty="Delta Air Lines",
        memo="Refund of seat upgrade",
        amount="89.00",
    )


def test_single_entity_read_response_is_read() -> None:
    text = (SAMPLES / "qbo-bill.json").read_text(encoding="utf-8")

    rows = read_entities(text, source="b.json", currency="USD")

    assert rows == [
        Row.parsed(
            "b.json Bill 214",
            item(
                external_id="Bill:214",
                type="bill",
                doc_number="A-5521",
                date="2026-03-04",
                counterparty="Smith & Rowe Legal",
                memo="Contract review, February",
                amount="1800.00",
            ),
            identity="entity name and Id",
        )
    ]


def test_array_of_entities_is_read_in_order() -> None:
    rows = read(
        [
            {"Invoice": entity(Id="5")},
            {"Bill": entity(Id="5")},
            {"QueryResponse": {"CreditMemo": [entity(Id="6")]}},
        ]
    )

    assert [row.item.external_id for row in rows if row.item] == [
        "Invoice:5",
        "Bill:5",
        "CreditMemo:6",
    ]


def test_empty_query_response_holds_no_rows() -> None:
    assert read({"QueryResponse": {}, "time": "2026-04-07T06:12:44.021-07:00"}) == []


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"PayType": "Check"}, "BillPayment"),
        ({"PaymentType": "Cash"}, "Purchase"),
        ({"UnappliedAmt": 0, "CustomerRef": {"value": "1"}}, "Payment"),
        ({"DueDate": "2026-04-01", "VendorRef": {"value": "1"}}, "Bill"),
        ({"DueDate": "2026-04-01", "CustomerRef": {"value": "1"}}, "Invoice"),
        ({"CustomerRef": {"value": "1"}}, None),
        ({"VendorRef": {"value": "1"}}, None),
        ({"DueDate": "2026-04-01"}, None),
    ],
)
def test_bare_entity_is_named_only_by_fields_it_alone_has(
    fields: dict[str, Any], name: str | None
) -> None:
    assert infer_entity(entity(**fields)) == name


def test_bare_entity_with_a_known_shape_is_read() -> None:
    rows = read(
        entity(
            Id="88",
            DocNumber="1050",
            DueDate="2026-04-01",
            CustomerRef={"value": "58", "name": "Acme Ltd"},
        )
    )

    assert rows == [
        Row.parsed(
            "q.json Invoice 88",
            item(
                external_id="Invoice:88",
                type="invoice",
                doc_number="1050",
                date="2026-03-02",
                counterparty="Acme Ltd",
                amount="10.0",
            ),
            identity="entity name and Id",
        )
    ]


def test_bare_entity_of_an_unclear_shape_is_refused() -> None:
    rows = read(entity(Id="9", CustomerRef={"value": "58", "name": "Acme Ltd"}))

    assert rows == [
        Row.refused(
            "q.json entity 9",
            "cannot tell which entity this is; "
            'wrap it in its name, as in {"Invoice": {...}}',
        )
    ]


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"PaymentType": "Check"}, "vendor_check"),
        ({"PaymentType": "CreditCard"}, "credit_card_charge"),
        ({"PaymentType": "CreditCard", "Credit": False}, "credit_card_charge"),
        ({"PaymentType": "CreditCard", "Credit": True}, "credit_card_credit"),
        ({"PaymentType": "Cash"}, "expense"),
        ({"PaymentType": "Check", "Credit": True}, "vendor_check"),
    ],
)
def test_purchase_type_follows_payment_type_and_credit(
    fields: dict[str, Any], kind: str
) -> None:
    rows = read({"Purchase": entity(**fields)})

    assert rows[0].item is not None
    assert rows[0].item.type == kind


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "missing field 'PaymentType'"),
        (
            {"PaymentType": "Barter"},
            "unknown type 'Purchase' with PaymentType 'Barter'",
        ),
    ],
)
def test_purchase_without_a_known_payment_type_is_refused(
    fields: dict[str, Any], reason: str
) -> None:
    assert read({"Purchase": entity(**fields)}) == [
        Row.refused("q.json Purchase 7", reason)
    ]


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"PayType": "Check"}, "vendor_check"),
        ({"PayType": "CreditCard"}, "credit_card_charge"),
        ({}, "missing field 'PayType'"),
        ({"PayType": "Cash"}, "unknown type 'BillPayment' with PayType 'Cash'"),
    ],
)
def test_bill_payment_type_follows_pay_type(
    fields: dict[str, Any], outcome: str
) -> None:
    row = read({"BillPayment": entity(**fields)})[0]

    assert (row.item.type if row.item else row.reason) == outcome


@pytest.mark.parametrize(
    "name",
    [
        "VendorCredit",
        "RefundReceipt",
        "JournalEntry",
        "Deposit",
        "Transfer",
        "Estimate",
        "PurchaseOrder",
        "Customer",
    ],
)
def test_entities_we_do_not_take_are_refused_by_name(name: str) -> None:
    assert read({name: entity()}) == [
        Row.refused(f"q.json {name} 7", f"unknown type {name!r}")
    ]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"Id": None}, "missing field 'Id'"),
        ({"TxnDate": None}, "missing field 'TxnDate'"),
        ({"TxnDate": "03/02/2026"}, "bad date '03/02/2026' (expected YYYY-MM-DD)"),
        ({"TxnDate": "2026-02-30"}, "bad date '2026-02-30' (expected YYYY-MM-DD)"),
        ({"TotalAmt": None}, "missing field 'TotalAmt'"),
        ({"TotalAmt": "ten"}, "bad amount 'ten'"),
        ({"TotalAmt": True}, "bad amount 'True'"),
    ],
)
def test_entity_with_a_bad_field_is_refused(
    fields: dict[str, Any], reason: str
) -> None:
    data = {k: v for k, v in entity(**fields).items() if v is not None}

    rows = read({"Invoice": data})

    where = "q.json Invoice (no Id)" if "Id" not in data else "q.json Invoice 7"
    assert rows == [Row.refused(where, reason)]


def test_amounts_are_decimals_never_floats() -> None:
    rows = read(
        '{"Invoice": {"Id": "1", "TxnDate": "2026-03-02", "TotalAmt": 1234567.89}}'
    )

    assert rows[0].item is not None
    assert rows[0].item.amount == "1234567.89"


def test_integer_amounts_and_ids_are_accepted() -> None:
    rows = read({"Invoice": {"Id": 12, "TxnDate": "2026-03-02", "TotalAmt": 300}})

    assert rows[0].item is not None
    assert (rows[0].item.external_id, rows[0].item.amount) == ("Invoice:12", "300")


def test_currency_option_applies_where_currency_ref_is_missing() -> None:
    rows = read({"Invoice": entity()}, currency="EUR")

    assert rows[0].item is not None
    assert rows[0].item.currency == "EUR"


def test_file_that_is_not_json_is_refused_whole() -> None:
    assert read("Date,Transaction Type\n") == [
        Row.refused("q.json", "not JSON: Expecting value at line 1 column 1")
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([1, 2], "expected QuickBooks Online entities, found a JSON number"),
        ('"Invoice"', "expected QuickBooks Online entities, found a JSON string"),
        ({"time": "2026-04-07"}, "no QuickBooks Online entities found"),
        ({"QueryResponse": []}, "QueryResponse is not an object"),
    ],
)
def test_json_of_another_shape_is_refused_whole(data: Any, reason: str) -> None:
    text = data if isinstance(data, str) else json.dumps(data)

    assert read(text) == [Row.refused("q.json", reason)]


def test_api_error_response_is_refused_with_its_message() -> None:
    fault = {
        "Fault": {
            "Error": [
                {
                    "Message": "Invalid query",
                    "Detail": 'QueryParserError: Encountered "Invoices"',
                    "code": "4000",
                }
            ],
            "type": "ValidationFault",
        },
        "time": "2026-04-07T06:12:44.021-07:00",
    }

    assert read(fault) == [
        Row.refused(
            "q.json",
            "the file holds an API error, not entities: Invalid query: "
            'QueryParserError: Encountered "Invoices"',
        )
    ]
