"""Firm FX quotes in the payment records' database (SQLite or PostgreSQL): the ``fx_quotes``
table, one row per quote, its terms as JSON (``payments.fx_quotes.FxQuote``).

A mixin of ``SqlPaymentRecords``: it uses the records' connection, statement rewriting and
transactions, so a quote is durable (committed with the records' synchronous setting) before the
engine places its holds and answers. The table is created by the first quote saved, so a
database from before firm quotes needs no migration; a reader finds no quote there.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from sco_settle.payments.quote_records import FxQuote

_CREATE = (
    "CREATE TABLE IF NOT EXISTS fx_quotes (quote_id TEXT PRIMARY KEY, debtor_agent TEXT NOT NULL,"
    " created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, body TEXT NOT NULL)"
)
_INSERT = (
    "INSERT INTO fx_quotes (quote_id, debtor_agent, created_at, expires_at, body)"
    " VALUES (?, ?, ?, ?, ?)"
)
_SELECT = "SELECT body FROM fx_quotes WHERE quote_id = ?"
_MISSING_TABLE = (sqlite3.OperationalError, psycopg.errors.UndefinedTable)


class SqlFxQuotes:
    """``FxQuoteStore`` on the host's ``connection`` (see the module docstring)."""

    connection: Any
    readonly: bool
    _quotes_laid_out = False

    def _sql(self, statement: str) -> str:
        return statement

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def save_quote(self, quote: FxQuote) -> None:
        if self.readonly:
            raise PermissionError("the payment records are open read-only")
        with self._transaction():
            if not self._quotes_laid_out:
                self.connection.execute(_CREATE)
            self.connection.execute(
                self._sql(_INSERT),
                (
                    quote.quote_id,
                    quote.debtor_agent,
                    quote.created_ns,
                    quote.expires_ns,
                    quote.to_json(),
                ),
            )
        self._quotes_laid_out = True

    def get_quote(self, quote_id: str) -> FxQuote | None:
        try:
            rows = list(self.connection.execute(self._sql(_SELECT), (quote_id,)))
        except _MISSING_TABLE:
            return None  # No quote was ever saved here.
        return FxQuote.from_json(rows[0][0]) if rows else None
