"""A demo accounting firm: accountants, client companies, books, and talk.

Loaded by ``tickmark demo`` so a newcomer has something to look at. All
names, companies and figures are invented.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

from server.core.accounts import create_user
from server.store import companies, messages, reads, user_settings, users
from server.store.database import Database
from server.store.transactions import TransactionFields
from server.store.transactions import insert as insert_transaction


__all__ = ["DEMO_PASSWORD", "DemoAccount", "load_demo"]

# Printed by `tickmark demo`; the demo is for a local machine only.
DEMO_PASSWORD = "tickmark-demo"  # noqa: S105

#: Demo people are mailed 10 s after a message they have not read, rather
#: than the usual two minutes, so that someone trying Tickmark out sees the
#: email land in the local mailbox while they are still looking.
DEMO_EMAIL_DELAY_SECS = 10


@dataclasses.dataclass(frozen=True)
class DemoAccount:
    email: str
    name: str
    # What they are, in a few words, for the sign-in list.
    description: str


_PEOPLE = {
    "ana": ("ana.moreau@ledgerline.example", "Ana Moreau", "Europe/Paris"),
    "omar": ("omar.haddad@ledgerline.example", "Omar Haddad", "Europe/London"),
    "carl": ("carl.ibsen@northwind.example", "Carl Ibsen", "America/Los_Angeles"),
    "dana": ("dana.whitfield@northwind.example", "Dana Whitfield", "America/New_York"),
    "priya": ("priya.natarajan@bluefin.example", "Priya Natarajan", "Asia/Kolkata"),
    "jonas": ("jonas.muller@mueller-soehne.example", "Jonas Müller", "Europe/Berlin"),
    "lena": ("lena.vogel@mueller-soehne.example", "Lena Vogel", "Europe/Berlin"),
}

# company name, currency, {person: role}
_COMPANIES = [
    (
        "Northwind Ledger Ltd",
        "USD",
        {"ana": "accountant", "carl": "client", "dana": "client"},
    ),
    (
        "Bluefin Traders",
        "USD",
        {"ana": "accountant", "omar": "accountant", "priya": "client"},
    ),
    (
        "Müller & Söhne GmbH",
        "EUR",
        {"omar": "accountant", "jonas": "client", "lena": "client"},
    ),
]

# type, number, days before today, counterparty, memo, amount
_BOOKS: dict[str, list[tuple[str, str, int, str, str, str]]] = {
    "Northwind Ledger Ltd": [
        (
            "invoice",
            "1042",
            3,
            "Harbor View Dental",
            "Bookkeeping retainer, March",
            "1850.00",
        ),
        (
            "invoice",
            "1043",
            9,
            "Cedar & Pine Architects",
            "Office lease sublet, Q2",
            "4200.00",
        ),
        (
            "bill",
            "B-2207",
            5,
            "Pacific Office Supply",
            "Printer toner and paper",
            "312.48",
        ),
        (
            "bill",
            "B-2209",
            12,
            "Summit Property Mgmt",
            "Office lease, April",
            "6500.00",
        ),
        (
            "customer_payment",
            "PMT-881",
            2,
            "Harbor View Dental",
            "Payment on invoice 1039",
            "1850.00",
        ),
        ("vendor_check", "5531", 7, "Bayside Janitorial", "Cleaning, March", "640.00"),
        (
            "credit_card_charge",
            "CC-7710",
            4,
            "Delta Air Lines",
            "Flight to client site",
            "487.20",
        ),
        (
            "credit_card_credit",
            "CC-7712",
            6,
            "Delta Air Lines",
            "Refund, changed flight",
            "-120.00",
        ),
        ("sales_receipt", "SR-301", 8, "Walk-in customer", "Consulting hour", "150.00"),
        ("expense", "EXP-77", 10, "City Parking", "Parking downtown", "24.00"),
        ("billable_expense", "BE-12", 11, "FedEx", "Courier for Cedar & Pine", "38.90"),
        (
            "delayed_charge",
            "DC-4",
            14,
            "Harbor View Dental",
            "Year-end review, to invoice",
            "900.00",
        ),
        (
            "credit_memo",
            "CM-19",
            15,
            "Cedar & Pine Architects",
            "Discount on invoice 1031",
            "-200.00",
        ),
        (
            "paycheck",
            "PC-0331",
            1,
            "Dana Whitfield",
            "Pay period ending 31 March",
            "3120.55",
        ),
        ("payroll", "PR-2024-03", 1, "Gusto Payroll", "March payroll run", "9840.10"),
    ],
    "Bluefin Traders": [
        (
            "invoice",
            "BT-5001",
            2,
            "Seaside Grocers",
            "Frozen tuna, 40 cases",
            "12480.00",
        ),
        (
            "invoice",
            "BT-5002",
            6,
            "Harborline Restaurants",
            "Salmon fillets, weekly order",
            "3315.75",
        ),
        (
            "bill",
            "V-9931",
            3,
            "Cold Chain Logistics",
            "Refrigerated freight, March",
            "2740.00",
        ),
        ("bill", "V-9934", 13, "Portside Packaging", "Insulated boxes", "860.40"),
        (
            "customer_payment",
            "RCV-220",
            1,
            "Seaside Grocers",
            "Payment on BT-4988",
            "9800.00",
        ),
        ("vendor_check", "3307", 9, "Dockworkers Union Local 12", "Dues, Q1", "450.00"),
        (
            "credit_card_charge",
            "AMEX-4410",
            5,
            "Marine Supply Co",
            "Scale calibration",
            "219.99",
        ),
        (
            "credit_card_credit",
            "AMEX-4415",
            7,
            "Marine Supply Co",
            "Returned thermometer",
            "-45.00",
        ),
        (
            "sales_receipt",
            "CASH-88",
            4,
            "Farmers market stall",
            "Weekend sales",
            "1120.00",
        ),
        ("expense", "E-301", 8, "Harbor Fuel", "Truck diesel", "410.35"),
        (
            "billable_expense",
            "BX-7",
            10,
            "Ice House",
            "Extra ice for Harborline",
            "95.00",
        ),
        (
            "delayed_charge",
            "DL-2",
            12,
            "Harborline Restaurants",
            "Late delivery fee",
            "75.00",
        ),
        (
            "credit_memo",
            "CR-55",
            11,
            "Seaside Grocers",
            "Short shipment, 2 cases",
            "-624.00",
        ),
        ("paycheck", "PAY-118", 2, "Miguel Santos", "Week 13", "1180.00"),
        ("payroll", "RUN-13", 2, "ADP", "Payroll run, week 13", "7420.66"),
    ],
    "Müller & Söhne GmbH": [
        (
            "invoice",
            "RE-2024-118",
            4,
            "Bäckerei Hoffmann",
            "Ofenwartung, März",
            "2380.00",
        ),
        (
            "invoice",
            "RE-2024-121",
            8,
            "Stadtwerke Lindau",
            "Ersatzteile Pumpe",
            "5120.50",
        ),
        ("bill", "ER-7781", 2, "Würth GmbH", "Schrauben und Dübel", "418.27"),
        ("bill", "ER-7790", 10, "Vermietung Keller KG", "Lagermiete April", "1900.00"),
        (
            "customer_payment",
            "ZE-331",
            3,
            "Bäckerei Hoffmann",
            "Zahlung RE-2024-102",
            "2380.00",
        ),
        (
            "vendor_check",
            "SCH-118",
            6,
            "Elektro Brandt",
            "Abschlag Elektroarbeiten",
            "1500.00",
        ),
        (
            "credit_card_charge",
            "KK-551",
            5,
            "Deutsche Bahn",
            "Bahnfahrt Kundentermin",
            "139.90",
        ),
        (
            "credit_card_credit",
            "KK-553",
            9,
            "Deutsche Bahn",
            "Erstattung Verspätung",
            "-34.98",
        ),
        ("sales_receipt", "BAR-12", 7, "Barverkauf", "Kleinteile Ladentheke", "86.40"),
        ("expense", "AUS-40", 11, "Aral Tankstelle", "Diesel Firmenwagen", "92.15"),
        ("billable_expense", "WB-3", 12, "Hermes", "Versand an Stadtwerke", "17.80"),
        (
            "delayed_charge",
            "VB-1",
            13,
            "Stadtwerke Lindau",
            "Anfahrtspauschale",
            "120.00",
        ),
        ("credit_memo", "GS-9", 14, "Bäckerei Hoffmann", "Gutschrift Skonto", "-47.60"),
        ("paycheck", "LA-03-LV", 1, "Lena Vogel", "Gehalt März", "2980.00"),
        ("payroll", "LOHN-03", 1, "DATEV Lohn", "Lohnlauf März", "11450.30"),
    ],
}

# company, document number, [(author, [recipients], hours ago, body)]
_THREADS = [
    (
        "Northwind Ledger Ltd",
        "B-2209",
        [
            (
                "ana",
                ["carl"],
                50,
                "Carl, the April lease bill is $6,500 but the lease says "
                "$6,200. Did Summit add something this month?",
            ),
            (
                "carl",
                ["ana"],
                47,
                "They added $300 for the new parking spaces. I'll forward "
                "the addendum.",
            ),
            (
                "ana",
                ["carl"],
                2,
                "Thanks. Could you upload the addendum here when you have it? "
                "I'll code the $300 to parking.",
            ),
        ],
    ),
    (
        "Northwind Ledger Ltd",
        "CC-7710",
        [
            (
                "ana",
                ["dana"],
                20,
                "Dana, which client was the Delta flight on the 4th for? "
                "I'd like to mark it billable.",
            ),
        ],
    ),
    (
        "Bluefin Traders",
        "V-9931",
        [
            (
                "omar",
                ["priya"],
                30,
                "Priya, Cold Chain billed 8 refrigerated runs; the "
                "delivery log shows 7. Is one of them a credit we are owed?",
            ),
            (
                "priya",
                ["omar", "ana"],
                26,
                "Good catch: the run on the 18th was cancelled. "
                "I've asked them for a credit note.",
            ),
        ],
    ),
    (
        "Müller & Söhne GmbH",
        "RE-2024-121",
        [
            (
                "omar",
                ["jonas", "lena"],
                6,
                "Is RE-2024-121 for parts only, or labour too? "
                "The VAT code depends on it.",
            ),
            (
                "lena",
                ["omar"],
                1,
                "Nur Ersatzteile: parts only. Labour comes on a separate "
                "invoice next week.",
            ),
        ],
    ),
]

ACCOUNTS = [
    DemoAccount(_PEOPLE["ana"][0], "Ana Moreau", "accountant: Northwind, Bluefin"),
    DemoAccount(
        _PEOPLE["omar"][0], "Omar Haddad", "accountant: Bluefin, Müller & Söhne"
    ),
    DemoAccount(_PEOPLE["carl"][0], "Carl Ibsen", "client: Northwind Ledger Ltd"),
    DemoAccount(_PEOPLE["dana"][0], "Dana Whitfield", "client: Northwind Ledger Ltd"),
    DemoAccount(_PEOPLE["priya"][0], "Priya Natarajan", "client: Bluefin Traders"),
    DemoAccount(_PEOPLE["jonas"][0], "Jonas Müller", "client: Müller & Söhne GmbH"),
    DemoAccount(_PEOPLE["lena"][0], "Lena Vogel", "client: Müller & Söhne GmbH"),
]


async def load_demo(db: Database, *, now: dt.datetime) -> bool:
    """Load the demo firm once.

    Returns:
        True when loaded now, False when it was already there.

    """
    async with db.transaction() as conn:
        if await users.by_email(conn, _PEOPLE["ana"][0]) is not None:
            return False

        people: dict[str, uuid.UUID] = {}
        for key, (email, name, zone) in _PEOPLE.items():
            user = await create_user(
                conn,
                email=email,
                display_name=name,
                password=DEMO_PASSWORD,
                time_zone=zone,
            )
            people[key] = user.id
            await user_settings.update(
                conn,
                user.id,
                user_settings.UserSettings(
                    email_notifications=True,
                    email_delay_secs=DEMO_EMAIL_DELAY_SECS,
                    time_zone=zone,
                    # The clock people read in their own country.
                    clock_24h=not zone.startswith("America/"),
                ),
            )

        company_ids: dict[str, uuid.UUID] = {}
        txn_ids: dict[tuple[str, str], uuid.UUID] = {}
        for name, currency, members in _COMPANIES:
            company = await companies.insert(conn, name)
            company_ids[name] = company.id
            for person, role in members.items():
                await companies.add_member(conn, company.id, people[person], role)
            for kind, number, days_ago, counterparty, memo, amount in _BOOKS[name]:
                txn = await insert_transaction(
                    conn,
                    company.id,
                    TransactionFields(
                        type=kind,
                        doc_number=number,
                        txn_date=(now - dt.timedelta(days=days_ago)).date(),
                        counterparty=counterparty,
                        memo=memo,
                        amount=Decimal(amount),
                        currency=currency,
                    ),
                    external_id=f"demo-{number}",
                )
                txn_ids[(name, number)] = txn.id

        for company_name, number, thread in _THREADS:
            for author, recipients, hours_ago, body in thread:
                role = dict((n, m) for n, _, m in _COMPANIES)[company_name][author]
                message, _ = await messages.insert(
                    conn,
                    transaction_id=txn_ids[(company_name, number)],
                    company_id=company_ids[company_name],
                    author_id=people[author],
                    author_role=role,
                    body=body,
                    recipient_ids=[people[r] for r in recipients],
                    idempotency_key=f"demo-{uuid.uuid4()}",
                    created_at=now - dt.timedelta(hours=hours_ago),
                )
                # Authors have read their own thread up to what they wrote.
                await reads.advance(
                    conn, people[author], message.conversation_id, message.seq
                )
    return True
