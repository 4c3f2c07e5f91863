"""What every reader produces and what applying a row comes to."""

from __future__ import annotations

import dataclasses
import enum

from server.core.transactions import TransactionInput


__all__ = [
    "Row",
    "RowResult",
    "RowStatus",
    "bad_amount",
    "bad_date",
    "missing_field",
    "unknown_type",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One transaction read from a file, or the reason it cannot be one.

    Build one with :meth:`parsed` or :meth:`refused`.
    """

    # Where a person finds it: "march.csv line 14", "q1.json Invoice 130",
    # or the file alone when the whole file was refused.
    where: str
    # The transaction in the accounting system's words; None when refused.
    item: TransactionInput | None
    # Why it was refused while reading; None when item is set.
    reason: str | None
    # What its external id is made from, for the reason given when two
    # rows share one: "type, number and date".
    identity: str

    @classmethod
    def parsed(cls, where: str, item: TransactionInput, *, identity: str) -> Row:
        """A row ready to be checked and applied."""
        return cls(where, item, None, identity)

    @classmethod
    def refused(cls, where: str, reason: str) -> Row:
        """A row, or a whole file, that cannot become a transaction."""
        return cls(where, None, reason, "")


class RowStatus(enum.StrEnum):
    """What applying a row did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


@dataclasses.dataclass(frozen=True, slots=True)
class RowResult:
    """What became of one row."""

    where: str
    status: RowStatus
    # None when the row was refused before an external id was known.
    external_id: str | None
    # Why it was refused; None unless status is REFUSED.
    reason: str | None = None


# Reasons are short lowercase phrases that quote what the file said, so
# that one summary line is enough to find and fix the row.


def unknown_type(name: str) -> str:
    """The reason for a type the importer does not map: unknown type 'X'."""
    return f"unknown type {name!r}"


def bad_date(raw: str, expected: str) -> str:
    """The reason for a date that cannot be read, naming the format expected."""
    return f"bad date {raw!r} (expected {expected})"


def bad_amount(raw: str) -> str:
    """The reason for an amount that cannot be read."""
    return f"bad amount {raw!r}"


def missing_field(name: str) -> str:
    """The reason for a required field that is empty or absent."""
    return f"missing field {name!r}"
