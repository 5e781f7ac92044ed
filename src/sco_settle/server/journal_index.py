"""The payment journal as the API reads it: by party and currency, page by page, and in totals.

``PaymentJournal`` (payments/journal.py) is keyed by payment id only. The API needs "my payments"
and "volume per corridor", so this module keeps ``api_payment_index``, a table *derived* from the
journal, in the journal's own SQLite file: one row per payment, in arrival order, with the fields
the filters need. The writer calls ``PaymentIndex.catch_up`` after every journal write; at start it
re-derives any rows it lacks, so a crash between a journal write and its index write loses
nothing (the index is rebuilt from the journal, never the other way round). The index connection
commits without fsync for the same reason.

Readers use their own read-only connections (one per thread), never the writer's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_DDL = (
    """CREATE TABLE IF NOT EXISTS api_payment_index (
        seq INTEGER PRIMARY KEY,
        payment_id TEXT NOT NULL UNIQUE,
        debtor_agent TEXT NOT NULL,
        creditor_agent TEXT NOT NULL,
        currency TEXT NOT NULL,
        creditor_currency TEXT NOT NULL,
        amount_minor INTEGER NOT NULL,
        received_at INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS api_payment_index_debtor ON api_payment_index (debtor_agent, seq)",
    "CREATE INDEX IF NOT EXISTS api_payment_index_creditor"
    " ON api_payment_index (creditor_agent, seq)",
    "CREATE INDEX IF NOT EXISTS api_payment_index_currency ON api_payment_index (currency, seq)",
    "CREATE INDEX IF NOT EXISTS api_payment_index_creditor_currency"
    " ON api_payment_index (creditor_currency, seq)",
)
_CATCH_UP_ROWS_MAX = 10_000  # Rows per catch-up step: bounds memory on a large rebuild.
_OUTCOME_COLUMNS = (
    "p.payment_id, p.body, p.status, p.reason, p.reason_text, p.delivered, p.route,"
    " p.transfer_ids, p.settled_at, p.received_at"
)


class PaymentIndex:
    """The writer's side: derive index rows from journal rows it has not indexed yet."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA synchronous=NORMAL")
        for statement in _DDL:
            self.connection.execute(statement)
        self.last_rowid = 0
        indexed = self.connection.execute("SELECT count(*) FROM api_payment_index").fetchone()[0]
        journalled = self.connection.execute("SELECT count(*) FROM payments").fetchone()[0]
        if indexed == journalled:
            row = self.connection.execute("SELECT max(rowid) FROM payments").fetchone()
            self.last_rowid = row[0] or 0
        self.catch_up()

    def catch_up(self) -> int:
        """Index journal rows past ``last_rowid``; how many were new."""
        added = 0
        while True:
            rows = self.connection.execute(
                "SELECT rowid, payment_id, body, received_at FROM payments WHERE rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (self.last_rowid, _CATCH_UP_ROWS_MAX),
            ).fetchall()
            if not rows:
                return added
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                for _, payment_id, body, received_at in rows:
                    added += self._insert(payment_id, json.loads(body), received_at)
                self.connection.execute("COMMIT")
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.last_rowid = rows[-1][0]

    def _insert(self, payment_id: str, body: dict[str, Any], received_at: int) -> int:
        cursor = self.connection.execute(
            "INSERT OR IGNORE INTO api_payment_index (payment_id, debtor_agent, creditor_agent,"
            " currency, creditor_currency, amount_minor, received_at) VALUES (?,?,?,?,?,?,?)",
            (
                payment_id,
                str(body.get("debtor_agent", "")),
                str(body.get("creditor_agent", "")),
                str(body.get("currency", "")),
                str(body.get("creditor_currency", "")),
                int(body.get("amount_minor", 0)),
                received_at,
            ),
        )
        return cursor.rowcount

    def close(self) -> None:
        self.connection.close()


class PaymentFilter:
    """Which payments a caller may see, as SQL over ``api_payment_index i``."""

    def __init__(
        self, *, parties: Iterable[str] = (), currencies: Iterable[str] = (), everything: bool
    ) -> None:
        self.parties = tuple(parties)
        self.currencies = tuple(currencies)
        self.everything = everything

    def sql(self) -> tuple[str, tuple[str, ...]]:
        if self.everything:
            return "1 = 1", ()
        clauses, params = [], []
        for party in self.parties:
            clauses += ["i.debtor_agent = ?", "i.creditor_agent = ?"]
            params += [party, party]
        for code in self.currencies:
            clauses += ["i.currency = ?", "i.creditor_currency = ?"]
            params += [code, code]
        if not clauses:
            return "1 = 0", ()
        return "(" + " OR ".join(clauses) + ")", tuple(params)


class JournalReader:
    """Request threads' side: read-only connections, one per thread."""

    def __init__(self, path: Path) -> None:
        self.uri = f"{path.resolve().as_uri()}?mode=ro"
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.uri, uri=True, isolation_level=None)
            self._local.connection = connection
        return connection

    def get(self, payment_id: str) -> dict[str, Any] | None:
        connection = self._connection()
        row = connection.execute(
            f"SELECT {_OUTCOME_COLUMNS} FROM payments p WHERE p.payment_id = ?", (payment_id,)
        ).fetchone()
        if row is None:
            return None
        found = payment_json(row)
        found["events"] = [
            {"status": status, "at": at, "detail": detail}
            for status, at, detail in connection.execute(
                "SELECT status, at, detail FROM payment_events WHERE payment_id = ? ORDER BY seq"
                " LIMIT 1000",
                (payment_id,),
            )
        ]
        return found

    def page(
        self, visible: PaymentFilter, *, after: int, limit: int, status: str | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        where, params = visible.sql()
        extra, extra_params = ("", ()) if status is None else (" AND p.status = ?", (status,))
        rows = (
            self._connection()
            .execute(
                f"SELECT i.seq, {_OUTCOME_COLUMNS} FROM api_payment_index i"
                " JOIN payments p ON p.payment_id = i.payment_id"
                f" WHERE i.seq > ? AND {where}{extra} ORDER BY i.seq LIMIT ?",
                (after, *params, *extra_params, limit),
            )
            .fetchall()
        )
        return [(row[0], payment_json(row[1:])) for row in rows]

    def corridors(
        self, visible: PaymentFilter, *, received_min: int, received_max: int
    ) -> list[dict[str, Any]]:
        """Per (debtor country, creditor country, currency, creditor currency): counts and sums.

        Sums are exact integers of any size. SQLite's ``sum`` of integers fails once a total
        passes 2^63 - 1 and ``total`` is a float, so neither is used: each amount is summed as
        its high and low 32 bits (``exact_sum_sql``), two totals that stay far inside int64,
        and the two are put together in Python.
        """
        where, params = visible.sql()
        rows = (
            self._connection()
            .execute(
                "SELECT substr(i.debtor_agent, 5, 2), substr(i.creditor_agent, 5, 2), i.currency,"
                " i.creditor_currency, p.status, count(*),"
                f" {exact_sum_sql('i.amount_minor')}, {exact_sum_sql('p.delivered')}"
                " FROM api_payment_index i JOIN payments p ON p.payment_id = i.payment_id"
                f" WHERE {where} AND i.received_at BETWEEN ? AND ? GROUP BY 1, 2, 3, 4, 5",
                (*params, received_min, received_max),
            )
            .fetchall()
        )
        groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for debtor, creditor, code, creditor_code, status, count, *sums in rows:
            key = (debtor, creditor, code, creditor_code)
            group = groups.setdefault(key, _empty_corridor(*key))
            group["payments"] += count
            if f"{status}_count" in group:  # In-flight states (routed) count in "payments" only.
                group[f"{status}_count"] += count
            if status == "settled":
                group["settled_value_minor"] += exact_sum(sums[0], sums[1])
                group["delivered_value_minor"] += exact_sum(sums[2], sums[3])
        return [groups[key] for key in sorted(groups)]

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


# An exact SQL sum of a 64-bit integer column in two parts: its high 32 bits (arithmetic shift)
# and its low 32 bits. Each part is below 2^32 in magnitude, so each total stays within int64 for
# up to 2^31 rows, where ``sum`` of the column itself overflows after two rows near 2^63.
# ``value == (value >> 32) * 2^32 + (value & 0xFFFFFFFF)`` also for negative values.
_SUM_HIGH = "coalesce(sum(({column}) >> 32), 0)"
_SUM_LOW = "coalesce(sum(({column}) & 4294967295), 0)"


def exact_sum_sql(column: str) -> str:
    """Two SQL aggregates whose values ``exact_sum`` turns into the exact sum of ``column``."""
    return f"{_SUM_HIGH.format(column=column)}, {_SUM_LOW.format(column=column)}"


def exact_sum(high: int | None, low: int | None) -> int:
    """The sum from the two totals of ``exact_sum_sql`` (a Python int: no overflow)."""
    return (int(high or 0) << 32) + int(low or 0)


def _empty_corridor(debtor: str, creditor: str, code: str, creditor_code: str) -> dict[str, Any]:
    return {
        "corridor": f"{debtor}-{creditor}",
        "debtor_country": debtor,
        "creditor_country": creditor,
        "currency": code,
        "creditor_currency": creditor_code,
        "payments": 0,
        "settled_count": 0,
        "queued_count": 0,
        "rejected_count": 0,
        "returned_count": 0,
        "settled_value_minor": 0,
        "delivered_value_minor": 0,
    }


def payment_json(row: tuple[Any, ...] | sqlite3.Row) -> dict[str, Any]:
    """A journal row as the API shows a payment: its outcome and the instruction it came from."""
    (
        payment_id,
        body,
        status,
        reason,
        reason_text,
        delivered,
        route,
        transfer_ids,
        settled_at,
        received_at,
    ) = row
    instruction = json.loads(body)
    instruction.pop("payment_id", None)
    return {
        "payment_id": payment_id,
        "status": status,
        "reason": reason,
        "reason_text": reason_text,
        "amount_delivered_minor": delivered,
        "route": json.loads(route),
        "transfer_ids": json.loads(transfer_ids),
        "settled_at": settled_at,
        "received_at": received_at,
        "instruction": instruction,
    }
