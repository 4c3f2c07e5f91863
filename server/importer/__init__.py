"""Taking transactions from the files an accounting system exports.

The accounting system owns the transactions; Tickmark keeps a copy to pin
conversations to. Each input format has a reader that turns a file into
:class:`~server.importer.rows.Row` objects and never touches the
database: :mod:`~server.importer.qb_csv` for a QuickBooks "Transaction
List" CSV export, :mod:`~server.importer.qbo_json` for entities from the
QuickBooks Online Accounting API. :mod:`~server.importer.run` reads files
and applies their rows through the same checks and upsert as the HTTP API.
docs/importing.md holds the full mapping.
"""
