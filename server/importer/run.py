"""Reading export files, and applying their rows to one company's books."""

from __future__ import annotations

import collections
import enum
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from server.core.services import Services
from server.core.transactions import (
    MAX_UPSERT_BATCH,
    CheckedTransaction,
    check_item,
    upsert_as_operator,
)
from server.errors import InvalidInput
from server.importer import qb_csv, qbo_json
from server.importer.rows import Row, RowResult, RowStatus


__all__ = [
    "Format",
    "detect_format",
    "import_rows",
    "read_file",
    "summary_lines",
]

logger = logging.getLogger(__name__)

# The HTTP API's field names, as a person reading a refusal knows them.
_FIELD_NAMES = {
    "external_id": "external id",
    "doc_number": "number",
    "counterparty": "name",
}


class Format(enum.StrEnum):
    """The formats a file may be read as."""

    AUTO = "auto"
    CSV = "csv"
    QBO_JSON = "qbo-json"


def detect_format(path: Path, text: str) -> Format:
    """CSV or QuickBooks Online JSON, by the file's suffix, else its first character."""
    suffix = path.suffix.casefold()
    if suffix == ".csv":
        return Format.CSV
    if suffix == ".json":
        return Format.QBO_JSON
    return Format.QBO_JSON if text.lstrip()[:1] in ("{", "[") else Format.CSV


def read_file(path: Path, fmt: Format, *, currency: str) -> list[Row]:
    """Read one export file into rows.

    The whole file is read into memory; exports of a company's books fit.

    Args:
        path: the file; rows name it as given here.
        fmt: how to read it; AUTO goes by :func:`detect_format`.
        currency: the currency of amounts the file does not name one for.

    Returns:
        The file's rows. A file that cannot be read, is not UTF-8, or is
        not of the format comes back as one refused row naming it.

    """
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Row.refused(source, f"cannot read the file: {exc.strerror}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [
            Row.refused(
                source,
                f"not UTF-8 text (byte offset {exc.start}); export it again as UTF-8",
            )
        ]

    if fmt is Format.AUTO:
        fmt = detect_format(path, text)
    if fmt is Format.CSV:
        return qb_csv.read_transaction_list(text, source=source, currency=currency)
    return qbo_json.read_entities(text, source=source, currency=currency)


async def import_rows(
    services: Services,
    company_id: uuid.UUID,
    rows: Sequence[Row],
    *,
    on_progress: Callable[[int], object] | None = None,
) -> list[RowResult]:
    """Apply rows to a company's transactions, as the operator.

    Each row is checked as the HTTP API checks a transaction and refused
    with a reason when it fails. Rows that come to the same external id
    (a transaction in two overlapping exports) are applied once when they
    agree, the later ones counting as unchanged; when they disagree, all
    of them are refused, since nothing says which one is right.

    The rest are upserted in batches of up to MAX_UPSERT_BATCH, each batch
    in a database transaction of its own: an error part-way leaves the
    earlier batches applied, and running the same import again finishes
    the work without changing them twice.

    Args:
        company_id: whose books; no principal is checked (see
            :func:`~server.core.transactions.upsert_as_operator`).
        on_progress: called with the number of rows just dealt with; the
            numbers add up to ``len(rows)``.

    Returns:
        One result per row, in the order of ``rows``.

    Raises:
        NotFound: there is no such company (found out only once a row is
            to be applied).
        Unavailable: the database could not be reached; earlier batches
            stay applied.

    """
    results: list[RowResult | None] = [None] * len(rows)
    checked: dict[int, CheckedTransaction] = {}
    by_external_id: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row.item is None:
            results[i] = RowResult(row.where, RowStatus.REFUSED, None, row.reason)
            continue
        try:
            checked[i] = check_item(row.item, "row")
        except InvalidInput as exc:
            results[i] = RowResult(
                row.where, RowStatus.REFUSED, row.item.external_id, _reason(exc)
            )
            continue
        by_external_id.setdefault(row.item.external_id, []).append(i)

    to_apply = []
    for indexes in by_external_id.values():
        first, *repeats = indexes
        if all(checked[i].fields == checked[first].fields for i in repeats):
            to_apply.append(first)
            for i in repeats:
                results[i] = RowResult(
                    rows[i].where, RowStatus.UNCHANGED, checked[i].external_id
                )
            continue
        for i in indexes:
            others = ", ".join(rows[j].where for j in indexes if j != i)
            reason = f"{rows[i].identity} repeat on {others} with different details"
            results[i] = RowResult(
                rows[i].where, RowStatus.REFUSED, checked[i].external_id, reason
            )
    if on_progress is not None:
        on_progress(len(rows) - len(to_apply))

    for start in range(0, len(to_apply), MAX_UPSERT_BATCH):
        batch = to_apply[start : start + MAX_UPSERT_BATCH]
        upserted = await upsert_as_operator(
            services, company_id, [checked[i] for i in batch]
        )
        for i, result in zip(batch, upserted, strict=True):
            results[i] = RowResult(
                rows[i].where, RowStatus(result.status), result.external_id
            )
        logger.debug("batch applied", extra={"rows": len(batch)})
        if on_progress is not None:
            on_progress(len(batch))

    done = [result for result in results if result is not None]
    assert len(done) == len(rows), "every row has a result"
    # Prefixed: a bare "created" would clash with the LogRecord attribute.
    counts = collections.Counter(f"rows_{result.status.value}" for result in done)
    logger.info("import applied", extra={"company_id": str(company_id), **counts})
    return done


def _reason(exc: InvalidInput) -> str:
    field = (exc.field or "").rsplit(".", 1)[-1]
    return f"invalid {_FIELD_NAMES.get(field, field)}: {exc.message}"


def summary_lines(results: Sequence[RowResult]) -> list[str]:
    """What an import did, for a person: the counts, then each refusal.

    The first line reads "imported N, updated N, unchanged N, refused N";
    each refused row follows as "<where>: <reason>".
    """
    counts = collections.Counter(result.status for result in results)
    lines = [
        f"imported {counts[RowStatus.CREATED]}, "
        f"updated {counts[RowStatus.UPDATED]}, "
        f"unchanged {counts[RowStatus.UNCHANGED]}, "
        f"refused {counts[RowStatus.REFUSED]}"
    ]
    lines.extend(
        f"{result.where}: {result.reason}"
        for result in results
        if result.status is RowStatus.REFUSED
    )
    return lines
