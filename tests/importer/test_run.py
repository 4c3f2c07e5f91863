"""Applying imported rows to a real PostgreSQL, and the import command."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import termios
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from server.__main__ import main
from server.app import policy_from
from server.clock import SystemClock
from server.core.events import NoEvents
from server.core.services import Services
from server.core.transactions import MAX_UPSERT_BATCH
from server.errors import NotFound
from server.importer.rows import Row, RowResult, RowStatus
from server.importer.run import (
    Format,
    detect_format,
    import_rows,
    read_file,
    summary_lines,
)
from server.settings import Settings
from server.store import companies
from server.store.database import Database
from tests.world import World, post


SAMPLES = Path(__file__).parent / "samples"
CSV_SAMPLE = SAMPLES / "transaction-list.csv"
QUERY_SAMPLE = SAMPLES / "qbo-query-response.json"
BILL_SAMPLE = SAMPLES / "qbo-bill.json"

HEADER = ",Date,Transaction Type,Num,Name,Memo/Description,Account,Amount\n"


def services(db: Database) -> Services:
    return Services(db, SystemClock(), NoEvents(), policy_from(Settings()))


async def new_company(db: Database) -> uuid.UUID:
    async with db.transaction() as conn:
        return (await companies.insert(conn, "Northwind Ledger Ltd")).id


async def import_files(
    db: Database, company_id: uuid.UUID, *paths: Path, currency: str = "USD"
) -> list[RowResult]:
    rows = [row for p in paths for row in read_file(p, Format.AUTO, currency=currency)]
    return await import_rows(services(db), company_id, rows)


async def transaction_count(db: Database) -> int:
    async with db.connection() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM transactions")
    return count


def csv_refusals(path: Path) -> list[str]:
    return [
        f"{path} line 13: unknown type 'Journal Entry'",
        f"{path} line 24: unknown type 'Deposit'",
        f"{path} line 29: bad date '02/30/2026' (expected MM/DD/YYYY)",
        f"{path} line 36: bad amount '-4.200,00'",
    ]


# Applying rows


async def test_sample_csv_imports_then_reimports_unchanged_then_updates_one(
    db: Database, tmp_path: Path
) -> None:
    company_id = await new_company(db)

    first = await import_files(db, company_id, CSV_SAMPLE)

    assert summary_lines(first) == [
        "imported 28, updated 0, unchanged 0, refused 4",
        *csv_refusals(CSV_SAMPLE),
    ]
    assert await transaction_count(db) == 28
    async with db.connection() as conn:
        stamped = await conn.fetchval("SELECT max(updated_at) FROM transactions")

    again = await import_files(db, company_id, CSV_SAMPLE)

    assert summary_lines(again) == [
        "imported 0, updated 0, unchanged 28, refused 4",
        *csv_refusals(CSV_SAMPLE),
    ]
    assert [r.external_id for r in again] == [r.external_id for r in first]
    assert await transaction_count(db) == 28
    async with db.connection() as conn:
        assert (
            await conn.fetchval("SELECT max(updated_at) FROM transactions") == stamped
        )

    text = CSV_SAMPLE.read_text(encoding="utf-8")
    assert text.count('"1,275.00"') == 1
    changed = tmp_path / "transaction-list.csv"
    changed.write_text(text.replace('"1,275.00"', '"1,300.00"'), encoding="utf-8")

    third = await import_files(db, company_id, changed)

    assert summary_lines(third) == [
        "imported 0, updated 1, unchanged 27, refused 4",
        *csv_refusals(changed),
    ]
    updated = [r for r in third if r.status is RowStatus.UPDATED]
    assert [r.where for r in updated] == [f"{changed} line 31"]
    assert await transaction_count(db) == 28
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT type, doc_number, amount FROM transactions WHERE external_id = $1",
            updated[0].external_id,
        )
    assert row is not None
    assert dict(row) == {
        "type": "invoice",
        "doc_number": "1042",
        "amount": Decimal("1300.00"),
    }


async def test_sample_csv_rows_are_stored_as_read(db: Database) -> None:
    company_id = await new_company(db)

    await import_files(db, company_id, CSV_SAMPLE)

    async with db.connection() as conn:
        rows = await conn.fetch(
            """
            SELECT type, count(*)::int AS n, sum(amount) AS total
            FROM transactions WHERE company_id = $1 GROUP BY type ORDER BY type
            """,
            company_id,
        )
    assert [(r["type"], r["n"], r["total"]) for r in rows] == [
        ("bill", 3, Decimal("2531.40")),
        ("billable_expense", 1, Decimal("38.50")),
        ("credit_card_charge", 4, Decimal("-1059.20")),
        ("credit_card_credit", 1, Decimal("89.00")),
        ("credit_memo", 1, Decimal("-150.00")),
        ("customer_payment", 3, Decimal("7180.00")),
        ("delayed_charge", 1, Decimal("375.00")),
        ("expense", 2, Decimal("-116.85")),
        ("invoice", 5, Decimal("11085.00")),
        ("paycheck", 1, Decimal("-2312.16")),
        ("payroll", 1, Decimal("-1987.40")),
        ("sales_receipt", 2, Decimal("190.00")),
        ("vendor_check", 3, Decimal("-4787.48")),
    ]


async def test_qbo_json_files_import_then_reimport_unchanged(db: Database) -> None:
    company_id = await new_company(db)

    first = await import_files(db, company_id, QUERY_SAMPLE, BILL_SAMPLE)
    again = await import_files(db, company_id, QUERY_SAMPLE, BILL_SAMPLE)

    refusals = [
        f"{QUERY_SAMPLE} VendorCredit 230: unknown type 'VendorCredit'",
        f"{QUERY_SAMPLE} JournalEntry 400: unknown type 'JournalEntry'",
        f"{QUERY_SAMPLE} Deposit 410: unknown type 'Deposit'",
    ]
    assert summary_lines(first) == [
        "imported 14, updated 0, unchanged 0, refused 3",
        *refusals,
    ]
    assert summary_lines(again) == [
        "imported 0, updated 0, unchanged 14, refused 3",
        *refusals,
    ]
    assert await transaction_count(db) == 14
    async with db.connection() as conn:
        stored = await conn.fetchrow(
            """
            SELECT type, doc_number, txn_date::text, counterparty, amount, currency
            FROM transactions WHERE company_id = $1 AND external_id = 'Invoice:131'
            """,
            company_id,
        )
    assert stored is not None
    assert tuple(stored) == (
        "invoice",
        "1043",
        "2026-03-05",
        "Maple Leaf Charters",
        Decimal("2480.10"),
        "CAD",
    )


async def test_rows_beyond_one_batch_are_applied_in_several(
    db: Database, tmp_path: Path
) -> None:
    company_id = await new_company(db)
    count = 2 * MAX_UPSERT_BATCH + 201
    lines = [
        f",03/02/2026,Invoice,{10000 + i},Acme Ltd,,A/R,{i}.00\n" for i in range(count)
    ]
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "".join(lines) + ",03/02/2026,Estimate,1,,,,5\n")
    rows = read_file(path, Format.CSV, currency="USD")
    progress: list[int] = []

    results = await import_rows(
        services(db), company_id, rows, on_progress=progress.append
    )

    assert progress == [1, MAX_UPSERT_BATCH, MAX_UPSERT_BATCH, 201]
    assert summary_lines(results) == [
        f"imported {count}, updated 0, unchanged 0, refused 1",
        f"{path} line {count + 2}: unknown type 'Estimate'",
    ]
    assert await transaction_count(db) == count


async def test_same_rows_in_overlapping_files_are_applied_once(
    db: Database, tmp_path: Path
) -> None:
    company_id = await new_company(db)
    january = tmp_path / "january.csv"
    january.write_text(HEADER + ",01/30/2026,Invoice,1040,Acme Ltd,,A/R,10.00\n")
    overlap = tmp_path / "overlap.csv"
    overlap.write_text(
        HEADER
        + ",01/30/2026,Invoice,1040,Acme Ltd,,A/R,10.00\n"
        + ",02/02/2026,Invoice,1041,Acme Ltd,,A/R,20.00\n"
    )

    results = await import_files(db, company_id, january, overlap)

    assert [(r.where, r.status) for r in results] == [
        (f"{january} line 2", RowStatus.CREATED),
        (f"{overlap} line 2", RowStatus.UNCHANGED),
        (f"{overlap} line 3", RowStatus.CREATED),
    ]
    assert await transaction_count(db) == 2


async def test_rows_that_share_an_external_id_but_differ_are_all_refused(
    db: Database, tmp_path: Path
) -> None:
    company_id = await new_company(db)
    path = tmp_path / "bills.csv"
    path.write_text(
        HEADER
        + ",03/05/2026,Bill,1001,Harbor Office Supply,,A/P,40.00\n"
        + ",03/05/2026,Bill,1001,Northline Utilities,,A/P,75.00\n"
        + ",03/05/2026,Bill,1002,Northline Utilities,,A/P,75.00\n"
    )

    results = await import_files(db, company_id, path)

    assert summary_lines(results) == [
        "imported 1, updated 0, unchanged 0, refused 2",
        f"{path} line 2: type, number and date repeat on {path} line 3 "
        "with different details",
        f"{path} line 3: type, number and date repeat on {path} line 2 "
        "with different details",
    ]
    assert await transaction_count(db) == 1


async def test_rows_the_api_would_refuse_are_refused_with_the_api_reason(
    db: Database, tmp_path: Path
) -> None:
    company_id = await new_company(db)
    csv_path = tmp_path / "long.csv"
    csv_path.write_text(
        HEADER
        + f',03/02/2026,Invoice,1,Acme,"{"m" * 2001}",A/R,5.00\n'
        + f",03/02/2026,Invoice,{'9' * 51},Acme,,A/R,5.00\n"
        + ",03/02/2026,Invoice,2,Acme,,A/R,5.001\n"
        + ",03/02/2026,Invoice,3,Acme,,A/R,5.00\n"
    )
    json_path = tmp_path / "odd.json"
    json_path.write_text(
        '{"QueryResponse": {"Invoice": ['
        '{"Id": "1 2", "TxnDate": "2026-03-02", "TotalAmt": 5},'
        '{"Id": "3", "TxnDate": "2026-03-02", "TotalAmt": 5,'
        ' "CurrencyRef": {"value": "Dollars"}}]}}'
    )

    results = await import_files(db, company_id, csv_path, json_path)

    assert summary_lines(results) == [
        "imported 1, updated 0, unchanged 0, refused 5",
        f"{csv_path} line 2: invalid memo: At most 2000 characters.",
        f"{csv_path} line 3: invalid number: At most 50 characters.",
        f"{csv_path} line 4: invalid amount: Amounts have at most two decimal places.",
        f"{json_path} Invoice 1 2: invalid external id: "
        "External ids are 1 to 100 letters, digits or . _ : -.",
        f"{json_path} Invoice 3: invalid currency: "
        "Currencies are three-letter ISO 4217 codes.",
    ]


async def test_import_into_a_company_that_does_not_exist_is_refused(
    db: Database,
) -> None:
    missing = uuid.uuid4()

    with pytest.raises(NotFound) as caught:
        await import_files(db, missing, BILL_SAMPLE)

    assert caught.value.message == f"There is no company {missing}."
    assert await transaction_count(db) == 0


async def test_changed_amount_notes_itself_in_the_thread(
    db: Database, world: World, tmp_path: Path
) -> None:
    path = tmp_path / "march.csv"
    path.write_text(HEADER + ',03/02/2026,Invoice,1042,Acme Ltd,,A/R,"1,275.00"\n')
    (created,) = await import_files(db, world.a, path)
    async with db.connection() as conn:
        txn = await conn.fetchval(
            "SELECT id FROM transactions WHERE company_id = $1 AND external_id = $2",
            world.a,
            created.external_id,
        )
    async with world.client(world.ana) as ana:
        posted = await post(ana, world, world.a, txn, "Why 1,275?", [world.carl])
        assert posted.status_code == 201

        path.write_text(HEADER + ',03/02/2026,Invoice,1042,Acme Ltd,,A/R,"1,300.00"\n')
        (updated,) = await import_files(db, world.a, path)
        page = (await ana.get(world.tx_url(world.a, txn) + "/messages")).json()

    assert updated.status is RowStatus.UPDATED
    assert [(m["kind"], m["author"], m["body"]) for m in page["messages"][1:]] == [
        (
            "system",
            None,
            "The accounting system changed the amount from 1275.00 USD to 1300.00 USD.",
        )
    ]


# Reading files


def test_format_is_told_by_suffix_then_by_content(tmp_path: Path) -> None:
    assert detect_format(Path("a.CSV"), "{") is Format.CSV
    assert detect_format(Path("a.json"), "Date") is Format.QBO_JSON
    assert detect_format(Path("export"), '  {"QueryResponse": {}}') is Format.QBO_JSON
    assert detect_format(Path("export.txt"), "[]") is Format.QBO_JSON
    assert detect_format(Path("export.txt"), "Cobalt Books\n") is Format.CSV


def test_format_given_overrides_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(HEADER + ",03/02/2026,Invoice,1,Acme,,A/R,5.00\n")

    rows = read_file(path, Format.CSV, currency="USD")

    assert [row.where for row in rows] == [f"{path} line 2"]
    assert rows[0].item is not None


def test_byte_order_mark_in_a_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(
        (HEADER + ",03/02/2026,Invoice,1,Acme,,A/R,5.00\n").encode("utf-8-sig")
    )

    rows = read_file(path, Format.AUTO, currency="USD")

    assert rows[0].item is not None


def test_file_that_cannot_be_read_is_one_refused_row(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    latin = tmp_path / "latin.csv"
    latin.write_bytes((HEADER + ",03/02/2026,Invoice,1,Café,,A/R,5\n").encode("cp1252"))
    offset = len(HEADER + ",03/02/2026,Invoice,1,Caf")

    assert read_file(missing, Format.AUTO, currency="USD") == [
        Row.refused(str(missing), "cannot read the file: No such file or directory")
    ]
    assert read_file(latin, Format.AUTO, currency="USD") == [
        Row.refused(
            str(latin),
            f"not UTF-8 text (byte offset {offset}); export it again as UTF-8",
        )
    ]


# The command


@pytest.fixture
def cli_env(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Settings for main(), and the root logger put back after it."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "test-secret")
    monkeypatch.setenv("TICKMARK_DATA_DIR", str(tmp_path / "data"))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def run_main(*argv: str) -> int:
    # main() runs its own event loop, so it gets a thread of its own.
    return await asyncio.to_thread(main, list(argv))


@pytest.mark.usefixtures("cli_env")
async def test_import_command_prints_the_summary_and_exits_1_on_refusals(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    company_id = await new_company(db)

    code = await run_main("import", str(CSV_SAMPLE), "--company", str(company_id))
    out, err = capsys.readouterr()
    again = await run_main("import", str(CSV_SAMPLE), "--company", str(company_id))
    out_again, _ = capsys.readouterr()

    assert code == 1
    assert out.splitlines() == [
        "imported 28, updated 0, unchanged 0, refused 4",
        *csv_refusals(CSV_SAMPLE),
    ]
    # stderr is no terminal here, so no progress bar is drawn.
    assert "importing" not in err
    assert again == 1
    assert out_again.splitlines() == [
        "imported 0, updated 0, unchanged 28, refused 4",
        *csv_refusals(CSV_SAMPLE),
    ]
    assert await transaction_count(db) == 28


@pytest.mark.usefixtures("cli_env")
async def test_import_command_exits_0_when_nothing_is_refused(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    company_id = await new_company(db)

    code = await run_main(
        "import",
        str(BILL_SAMPLE),
        "--company",
        str(company_id),
        "--format",
        "qbo-json",
    )

    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "imported 1, updated 0, unchanged 0, refused 0"
    ]


@pytest.mark.usefixtures("cli_env")
async def test_import_command_applies_the_currency_option(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    company_id = await new_company(db)
    path = tmp_path / "eur.csv"
    path.write_text(HEADER + ",03/02/2026,Invoice,1,Acme,,A/R,5.00\n")

    code = await run_main(
        "import", str(path), "--company", str(company_id), "--currency", "eur"
    )

    assert code == 0
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT currency FROM transactions") == "EUR"


@pytest.mark.usefixtures("cli_env")
async def test_import_command_names_a_company_that_does_not_exist(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = uuid.uuid4()

    code = await run_main("import", str(BILL_SAMPLE), "--company", str(missing))

    assert code == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"tickmark: There is no company {missing}.\n"


@pytest.mark.usefixtures("cli_env")
async def test_import_command_refuses_a_currency_that_is_no_code(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    company_id = await new_company(db)

    with pytest.raises(SystemExit) as caught:
        await run_main(
            "import", str(BILL_SAMPLE), "--company", str(company_id), "--currency", "$"
        )

    assert caught.value.code == 2
    assert capsys.readouterr().err.endswith(
        "argument --currency: expected a three-letter ISO 4217 code such as USD, "
        "got '$'\n"
    )


@pytest.mark.usefixtures("cli_env")
async def test_import_command_draws_a_progress_bar_on_a_terminal(
    db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    company_id = await new_company(db)
    controller, terminal = os.openpty()
    # A new pseudo-terminal is 0 columns wide: give it a real size.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with os.fdopen(terminal, "w") as tty, os.fdopen(controller, "rb") as screen:
        monkeypatch.setattr("sys.stderr", tty)

        code = await run_main("import", str(BILL_SAMPLE), "--company", str(company_id))
        tty.flush()
        drawn = os.read(screen.fileno(), 65536).decode()

    assert code == 0
    assert "importing: 100%" in drawn
    assert "1/1" in drawn
    assert capsys.readouterr().out == "imported 1, updated 0, unchanged 0, refused 0\n"
