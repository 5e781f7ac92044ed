"""``sco-settle export``: settled data for analysts, as Parquet or CSV (and, as before, the
ledger's transfers and accounts as JSON lines).

Parsing and printing only: the rows come from the payment records (``PaymentQueries``), the
ledger's store (``iter_transfers``) and the server's netting-cycle table, each through a read-only
session; ``sco-settle verify``'s way of opening a database (``cli.main._open_for_audit``) is
reused, so ``--db`` takes a SQLite path or a postgresql:// URL.

The Parquet schema is explicit and the same for every file of a kind, even an empty one: amounts
are int64 minor units (``AMOUNT_MAX`` is 2**63 - 1) beside the currency's number of minor-unit
digits, times are timestamp[ns, UTC] (the ledger's clock), codes (statuses, reasons, BICs,
countries, currencies) are dictionary-encoded strings, and ids that may pass 2**63 (transfer and
account ids are 128-bit) are strings. pyarrow, pandas and DuckDB read the files as they are.

Rows are read and written in batches of ``BATCH_ROWS_MAX``, so memory stays bounded however large
the database. A file is written beside its name and renamed when complete.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer

if TYPE_CHECKING:
    from sco_settle.ledger.store import Store
    from sco_settle.network import Network
    from sco_settle.payments.records import PaymentQueries, RecordedPayment

BATCH_ROWS_MAX = 50_000  # rows per Parquet row group and per write
PAGE_ROWS_MAX = 1_000  # payments read from the records per query
NS_PER_DAY = 86_400 * 10**9
TIME_NS_MAX = 2**63 - 1  # the last instant a timestamp[ns] holds
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

NO_CYCLES = (
    "holds no netting cycles: cycles are recorded by the server (sco-settle serve, on"
    " POST /v1/netting-cycles and on its RTGS timer) in its table api_netting_cycles; the payment"
    " records keep none, and a simulation writes its cycles to cycles.csv (--mode dns)"
)


class Kind(enum.StrEnum):
    PAYMENTS = "payments"
    TRANSFERS = "transfers"
    CYCLES = "cycles"
    ACCOUNTS = "accounts"


class Format(enum.StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    JSONL = "jsonl"


class ExportError(Exception):
    """An expected failure: one line on stderr, exit code 1."""


# Column types, named here and mapped to Arrow types only when a file is written (pyarrow is not
# imported for the other commands).
STRING, CODE, INT64, INT32, INT8, TIME = "string", "code", "int64", "int32", "int8", "time"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    nullable: bool = False


PAYMENT_COLUMNS = (
    Column("payment_id", STRING),
    Column("seq", INT64),  # arrival order in the records
    Column("status", CODE),
    Column("reason", CODE, nullable=True),  # ISO 20022 reason code
    Column("reason_text", STRING),
    Column("debtor_agent", CODE),
    Column("creditor_agent", CODE),
    Column("debtor_country", CODE),  # BIC letters 5-6
    Column("creditor_country", CODE),
    Column("corridor", CODE),  # "KZ-CN": debtor country, creditor country
    Column("debtor_sco_status", CODE, nullable=True),  # None: the country is not in the network
    Column("creditor_sco_status", CODE, nullable=True),
    Column("debtor_sco_tier", CODE, nullable=True),
    Column("creditor_sco_tier", CODE, nullable=True),
    Column("tier_pair", CODE, nullable=True),  # as in the simulator's tiers.csv
    Column("currency", CODE),  # what the debtor agent pays in
    Column("currency_minor_digits", INT8, nullable=True),  # None: not an ISO 4217 currency
    Column("creditor_currency", CODE),
    Column("creditor_currency_minor_digits", INT8, nullable=True),
    Column("amount_type", CODE),  # send: amount_minor is in currency; receive: creditor currency
    Column("amount_minor", INT64),
    Column("amount_currency", CODE),
    Column("amount_sent_minor", INT64),  # debited from the debtor agent, in currency
    Column("amount_delivered_minor", INT64),  # in creditor_currency
    Column("amount_returned_minor", INT64),  # in creditor_currency
    Column("applied_rate", STRING, nullable=True),  # creditor currency per unit of currency
    Column("priority", CODE),
    Column("returns", STRING, nullable=True),  # the payment this one returns
    Column("end_to_end_id", STRING),
    Column("uetr", STRING),
    Column("received_at", TIME),
    Column("settled_at", TIME, nullable=True),
)
TRANSFER_COLUMNS = (
    Column("transfer_id", STRING),
    Column("timestamp", TIME),
    Column("debit_account_id", STRING),
    Column("debit_participant", CODE, nullable=True),
    Column("debit_account_kind", CODE, nullable=True),
    Column("credit_account_id", STRING),
    Column("credit_participant", CODE, nullable=True),
    Column("credit_account_kind", CODE, nullable=True),
    Column("currency", CODE),
    Column("currency_minor_digits", INT8, nullable=True),
    Column("amount_minor", INT64),
    Column("flags", CODE),  # names joined by ","; "" for none
    Column("pending_id", STRING, nullable=True),
    Column("timeout_s", INT64),
    Column("code", INT32),
    Column("ref", STRING),
)
CYCLE_COLUMNS = (
    Column("cycle_id", INT64),
    Column("kind", CODE),  # dns or lsm
    Column("requested_by", CODE),
    Column("currencies", STRING, nullable=True),  # the cycle's selection, ","-joined; None: all
    Column("started_at", TIME),
    Column("finished_at", TIME),
    Column("settled", INT64),
    Column("deferred", INT64),
    Column("rejected", INT64),
    Column("currency", CODE, nullable=True),  # one row per currency; None: the cycle moved none
    Column("currency_minor_digits", INT8, nullable=True),
    Column("gross_minor", INT64),
    Column("net_minor", INT64),
)
COLUMNS = {
    Kind.PAYMENTS: PAYMENT_COLUMNS,
    Kind.TRANSFERS: TRANSFER_COLUMNS,
    Kind.CYCLES: CYCLE_COLUMNS,
}
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """Times from the start of ``--from``'s day to the end of ``--to``'s (UTC, ledger ns)."""

    start_ns: int = 0
    end_ns: int = TIME_NS_MAX  # inclusive

    def admits(self, at_ns: int) -> bool:
        return self.start_ns <= at_ns <= self.end_ns


def parse_window(date_from: str | None, date_to: str | None) -> Window:
    """The window of ``--from`` and ``--to``, clamped to what int64 nanoseconds hold (up to
    2262-04-11): a day past that admits nothing, or everything up to then."""

    def day_ns(text: str, option: str) -> int:
        try:
            if not _DATE.fullmatch(text):
                raise ValueError
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise ExportError(f"{option} {text!r} is not a date YYYY-MM-DD") from None
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        return max(int(midnight.timestamp()), 0) * 10**9

    start = day_ns(date_from, "--from") if date_from is not None else 0
    end = day_ns(date_to, "--to") + NS_PER_DAY - 1 if date_to is not None else TIME_NS_MAX
    if date_from is not None and date_to is not None and start > end:
        raise ExportError(f"--from {date_from} is after --to {date_to}")
    return Window(min(start, TIME_NS_MAX), min(end, TIME_NS_MAX))


def _minor_digits(code: str) -> int | None:
    from sco_settle.domain.money import UnknownCurrencyError, currency

    try:
        return currency(code).minor_units
    except UnknownCurrencyError:  # A rejected payment keeps the currency it was given.
        return None


def _time(at_ns: int) -> int | None:
    return at_ns if at_ns > 0 else None


class ScoStanding:
    """SCO status and tier of each country, from the network (None: not in it)."""

    def __init__(self, network: Network) -> None:
        self._by_code = {
            entry.code: (entry.sco_status.value, entry.sco_status.tier)
            for entry in network.countries
        }

    def of(self, country: str) -> tuple[str | None, str | None]:
        return self._by_code.get(country, (None, None))

    def tier_pair(self, debtor: str, creditor: str) -> str | None:
        """The simulator's tier pairs: sorted "member-partner", or "domestic member"."""
        debtor_tier, creditor_tier = self.of(debtor)[1], self.of(creditor)[1]
        if debtor_tier is None or creditor_tier is None:
            return None
        if debtor == creditor:
            return f"domestic {debtor_tier}"
        return "-".join(sorted((debtor_tier, creditor_tier)))


def payment_row(recorded: RecordedPayment, standing: ScoStanding) -> Row:
    from sco_settle.gateway.iso import applied_rate_of

    payment, outcome = recorded.payment, recorded.outcome
    debtor, creditor = payment.debtor_agent[4:6], payment.creditor_agent[4:6]
    debtor_status, debtor_tier = standing.of(debtor)
    creditor_status, creditor_tier = standing.of(creditor)
    rate = applied_rate_of(payment, outcome)
    return (
        payment.payment_id,
        recorded.seq,
        outcome.status.value,
        outcome.reason.value if outcome.reason is not None else None,
        outcome.reason_text,
        payment.debtor_agent,
        payment.creditor_agent,
        debtor,
        creditor,
        f"{debtor}-{creditor}",
        debtor_status,
        creditor_status,
        debtor_tier,
        creditor_tier,
        standing.tier_pair(debtor, creditor),
        payment.currency,
        _minor_digits(payment.currency),
        payment.creditor_currency,
        _minor_digits(payment.creditor_currency),
        payment.amount_type.value,
        payment.amount_minor,
        payment.fixed_currency,
        outcome.amount_sent_minor,
        outcome.amount_delivered_minor,
        outcome.amount_returned_minor,
        format(rate, "f") if rate is not None else None,
        payment.priority.value,
        payment.returns or None,
        payment.end_to_end_id,
        payment.uetr,
        recorded.received_at,
        _time(outcome.settled_at),
    )


def payment_rows(queries: PaymentQueries, network: Network, window: Window) -> Iterator[Row]:
    """Every payment received in ``window``, in arrival order, read a page at a time."""
    from sco_settle.payments.records import PaymentFilter

    standing = ScoStanding(network)
    everything = PaymentFilter(everything=True)
    after = 0
    while True:
        page = queries.list_payments(everything, after=after, limit=PAGE_ROWS_MAX)
        for recorded in page:
            if window.admits(recorded.received_at):
                yield payment_row(recorded, standing)
        if len(page) < PAGE_ROWS_MAX:
            return
        after = page[-1].seq


def transfer_rows(store: Store, window: Window) -> Iterator[Row]:
    """Every transfer with a timestamp in ``window``, in timestamp order."""
    from sco_settle.domain.account import flag_names
    from sco_settle.domain.transfer import TRANSFER_FLAG_NAMES

    accounts = {
        stored.account.id: (
            stored.account.participant,
            stored.account.kind,
            stored.account.currency,
        )
        for stored in store.load_accounts()
    }
    unknown = (None, None, "")
    for transfer in store.iter_transfers():
        if not window.admits(transfer.timestamp):
            continue
        debit = accounts.get(transfer.debit_account, unknown)
        credit = accounts.get(transfer.credit_account, unknown)
        code = transfer.currency or debit[2] or credit[2]
        yield (
            str(transfer.id),
            transfer.timestamp,
            str(transfer.debit_account),
            debit[0],
            debit[1],
            str(transfer.credit_account),
            credit[0],
            credit[1],
            code,
            _minor_digits(code) if code else None,
            transfer.amount,
            ",".join(flag_names(transfer.flags, TRANSFER_FLAG_NAMES)),
            str(transfer.pending_id) if transfer.pending_id else None,
            transfer.timeout,
            transfer.code,
            transfer.ref,
        )


def cycle_rows(raw_rows: Iterable[Sequence[Any]], window: Window) -> Iterator[Row]:
    """One row per cycle and currency of the server's ``api_netting_cycles`` rows."""
    from sco_settle.server.service import cycle_json

    for raw in raw_rows:
        cycle = cycle_json(raw)
        if not window.admits(cycle["started_at"]):
            continue
        currencies = cycle["currencies"]
        head = (
            cycle["cycle_id"],
            cycle["kind"],
            cycle["requested_by"],
            ",".join(currencies) if currencies is not None else None,
            cycle["started_at"],
            cycle["finished_at"],
            cycle["settled"],
            cycle["deferred"],
            cycle["rejected"],
        )
        gross, net = cycle["gross_minor"], cycle["net_minor"]
        if not gross:
            yield (*head, None, None, 0, 0)
        for code in sorted(gross):
            yield (*head, code, _minor_digits(code), gross[code], net.get(code, 0))


# Writing: Parquet (pyarrow) or CSV, batch by batch, into a ``.partial`` file renamed at the end.


class TimeUnit(enum.StrEnum):
    """How Parquet times are kept: nanoseconds (the ledger's, exact) or microseconds (what Spark
    reads as timestamps; Spark reads nanoseconds only as integers)."""

    NS = "ns"
    US = "us"


def arrow_schema(columns: Sequence[Column], time_unit: TimeUnit = TimeUnit.NS) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]

    types = {
        STRING: pa.string(),
        CODE: pa.dictionary(pa.int32(), pa.string()),
        INT64: pa.int64(),
        INT32: pa.int32(),
        INT8: pa.int8(),
        TIME: pa.timestamp(time_unit.value, tz="UTC"),
    }
    return pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in columns])


class ParquetSink:
    def __init__(
        self, path: Path, columns: Sequence[Column], time_unit: TimeUnit = TimeUnit.NS
    ) -> None:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        self.schema = arrow_schema(columns, time_unit)
        self.writer = pq.ParquetWriter(str(path), self.schema)
        # Microseconds: the ledger's nanoseconds floored (times are never negative).
        self.time_divisor = 1 if time_unit is TimeUnit.NS else 1_000
        self.times = {index for index, column in enumerate(columns) if column.type == TIME}

    def write(self, rows: Sequence[Row]) -> None:
        import pyarrow as pa

        arrays = []
        for index, field in enumerate(self.schema):
            values = [row[index] for row in rows]
            if index in self.times and self.time_divisor != 1:
                values = [None if v is None else v // self.time_divisor for v in values]
            arrays.append(pa.array(values, type=field.type))
        self.writer.write_batch(pa.record_batch(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


class CsvSink:
    """RFC 4180 CSV with a header: integers as digits, times as ISO 8601 UTC with nanoseconds
    ("2026-01-05T09:01:00.000000000Z"), nulls as empty cells."""

    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        self.handle: TextIO = path.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle, lineterminator="\n")
        self.times = [index for index, column in enumerate(columns) if column.type == TIME]
        self.writer.writerow([column.name for column in columns])

    def write(self, rows: Sequence[Row]) -> None:
        for row in rows:
            cells = ["" if value is None else value for value in row]
            for index in self.times:
                if row[index] is not None:
                    cells[index] = iso_time(row[index])
            self.writer.writerow(cells)

    def close(self) -> None:
        self.handle.close()


def iso_time(at_ns: int) -> str:
    seconds, nanoseconds = divmod(at_ns, 10**9)
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanoseconds:09d}Z"


def write_rows(
    rows: Iterable[Row],
    columns: Sequence[Column],
    out: Path,
    form: Format,
    time_unit: TimeUnit = TimeUnit.NS,
) -> int:
    """Write ``rows`` to ``out`` as ``form``; the number of rows written."""
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent}: no such directory for --out")
    partial = out.with_name(out.name + ".partial")
    count = 0
    try:
        sink: ParquetSink | CsvSink
        if form is Format.PARQUET:
            sink = ParquetSink(partial, columns, time_unit)
        else:
            sink = CsvSink(partial, columns)
        try:
            batch: list[Row] = []
            for row in rows:
                assert len(row) == len(columns), (len(row), len(columns))
                batch.append(row)
                if len(batch) == BATCH_ROWS_MAX:
                    sink.write(batch)
                    count += len(batch)
                    batch = []
            if batch:
                sink.write(batch)
                count += len(batch)
        finally:
            sink.close()
        partial.replace(out)
    except OSError as error:
        raise ExportError(f"{out}: cannot write: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)
    return count


def write_jsonl(kind: Kind, store: Store, window: Window, out: Path | None) -> int:
    """The ledger's own JSON-lines codec (as ``sco-settle apply`` reads), to ``out`` or stdout."""
    from sco_settle.ledger.jsonl import account_to_json, transfer_to_json

    handle = sys.stdout if out is None else out.open("w", encoding="utf-8")
    count = 0
    try:
        if kind is Kind.TRANSFERS:
            for transfer in store.iter_transfers():
                if window.admits(transfer.timestamp):
                    handle.write(json.dumps(transfer_to_json(transfer)) + "\n")
                    count += 1
        else:
            for stored in store.load_accounts():
                handle.write(json.dumps(account_to_json(stored.account, stored.balance())) + "\n")
                count += 1
    finally:
        if out is not None:
            handle.close()
    return count


# Reading: the database as ``sco-settle verify`` opens it, read-only.


def _open(db: str, schema: str) -> tuple[Store, Any]:
    """The ledger store and the payment records (None: the database holds none)."""
    from sco_settle.cli.main import CliError, _open_for_audit

    try:
        return _open_for_audit(db, schema)
    except CliError as error:
        raise ExportError(str(error)) from None


def _cycle_table_rows(db: str, schema: str) -> list[tuple[Any, ...]]:
    """The rows of the server's ``api_netting_cycles`` (in the ledger's SQLite file, or in the
    ``<schema>_api`` schema of its PostgreSQL database), by cycle id."""
    from sco_settle.server.config import ConfigError, DatabaseKind, parse_database_url

    try:
        database = parse_database_url(db, schema=schema)
    except ConfigError as error:
        raise ExportError(str(error)) from None
    columns = "cycle_id, kind, currencies, requested_by, started_at, finished_at, report"
    if database.kind is DatabaseKind.POSTGRES:
        return _postgres_cycles(database.dsn, database.api_schema, columns)
    assert database.path is not None
    return _sqlite_cycles(database.path, columns)


def _sqlite_cycles(path: Path, columns: str) -> list[tuple[Any, ...]]:
    import sqlite3

    if not path.is_file():
        raise ExportError(f"no database at {path}")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ExportError(f"{path}: {error}") from None
    try:
        found = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_netting_cycles'"
        ).fetchall()
        if not found:
            raise ExportError(f"{path} {NO_CYCLES}")
        return connection.execute(
            f"SELECT {columns} FROM api_netting_cycles ORDER BY cycle_id"
        ).fetchall()
    except sqlite3.Error as error:
        raise ExportError(f"{path}: {error}") from None
    finally:
        connection.close()


def _postgres_cycles(dsn: str, api_schema: str, columns: str) -> list[tuple[Any, ...]]:
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(dsn, autocommit=True) as connection:
            table = f"{api_schema}.api_netting_cycles"
            row = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if row is None or row[0] is None:
                raise ExportError(f"schema {api_schema} {NO_CYCLES}")
            query = sql.SQL("SELECT {} FROM {}.api_netting_cycles ORDER BY cycle_id").format(
                sql.SQL(columns), sql.Identifier(api_schema)
            )
            return connection.execute(query).fetchall()
    except psycopg.Error as error:
        raise ExportError(f"PostgreSQL: {error}") from None


def _format(form: Format | None, out: Path | None) -> Format:
    """The format asked for, or the one ``--out``'s suffix names, or JSON lines on stdout."""
    if form is not None:
        return form
    if out is None:
        return Format.JSONL
    by_suffix = {".parquet": Format.PARQUET, ".csv": Format.CSV, ".jsonl": Format.JSONL}
    if out.suffix.lower() not in by_suffix:
        raise ExportError(f"--out {out}: give --format parquet, csv or jsonl")
    return by_suffix[out.suffix.lower()]


def _rows_of(
    kind: Kind, db: str, schema: str, network: str, window: Window
) -> tuple[Iterator[Row], Callable[[], None]]:
    """The rows of ``kind`` and how to close what was opened for them."""
    if kind is Kind.CYCLES:
        return cycle_rows(_cycle_table_rows(db, schema), window), lambda: None
    store, records = _open(db, schema)

    def close() -> None:
        if records is not None:
            records.close()
        store.close()

    if kind is Kind.TRANSFERS:
        return transfer_rows(store, window), close
    if records is None:
        close()
        raise ExportError(
            f"{db} holds no payment records (a database made by init and apply has none; the"
            " server, sco-settle iso submit and simulate --db record payments)"
        )
    from sco_settle.network import load_network

    return payment_rows(records, load_network(network), window), close


def export(
    what: Annotated[
        Kind,
        typer.Argument(
            help="payments (the payment records), transfers (the ledger), cycles (the server's"
            " netting cycles; only a database a server has run cycles on holds them), or accounts"
            " (JSON lines only).",
            case_sensitive=False,
        ),
    ],
    db: Annotated[
        str,
        typer.Option("--db", help="SQLite database file, or postgresql://user@host:port/database."),
    ],
    form: Annotated[
        Format | None,
        typer.Option(
            "--format",
            help="parquet or csv (need --out), or jsonl (transfers and accounts: the ledger's"
            " JSON lines). Default: from --out's suffix; without --out, jsonl on stdout.",
            case_sensitive=False,
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The file to write.")] = None,
    date_from: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="YYYY-MM-DD",
            help="From this day (UTC), by time received (payments), timestamp (transfers) or"
            " start (cycles).",
        ),
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", metavar="YYYY-MM-DD", help="To this day (UTC), included.")
    ] = None,
    time_unit: Annotated[
        TimeUnit,
        typer.Option(
            "--time-unit",
            help="Parquet times in ns (exact) or us (Spark reads those as timestamps).",
            case_sensitive=False,
        ),
    ] = TimeUnit.NS,
    network: Annotated[
        str, typer.Option(help="The network the database runs (SCO tiers of countries).")
    ] = "sco",
    schema: Annotated[str, typer.Option(help="PostgreSQL schema of the ledger.")] = "sco_settle",
) -> None:
    """Export settled data for analysts: Parquet (explicit Arrow schema: int64 minor units,
    nanosecond UTC timestamps, dictionary-encoded codes) or CSV, readable by pandas and DuckDB
    (and by Spark with --time-unit us).
    Payments carry corridor, SCO status and tier of both countries, currencies, amounts sent,
    delivered and returned, the applied rate and their times. Transfers carry each account's
    participant and currency. Cycles come from the server's table api_netting_cycles: the payment
    records hold none, so a database no server has run cycles on has no cycles to export."""
    from sco_settle.network import NetworkError

    try:
        window = parse_window(date_from, date_to)
        chosen = _format(form, out)
        if chosen is Format.JSONL:
            _export_jsonl(what, db, schema, window, out)
            return
        if what is Kind.ACCOUNTS:
            raise ExportError("accounts are exported as JSON lines only (--format jsonl)")
        if out is None:
            raise ExportError(f"--format {chosen.value} needs --out FILE")
        rows, close = _rows_of(what, db, schema, network, window)
        try:
            count = write_rows(rows, COLUMNS[what], out, chosen, time_unit)
        finally:
            close()
    except (ExportError, NetworkError) as error:
        _fail(str(error))
    typer.echo(f"Wrote {count:,} {what.value} to {out} ({chosen.value}).")


def _export_jsonl(what: Kind, db: str, schema: str, window: Window, out: Path | None) -> None:
    if what not in (Kind.TRANSFERS, Kind.ACCOUNTS):
        raise ExportError(f"{what.value} are exported as parquet or csv (--format, --out)")
    if what is Kind.ACCOUNTS and window != Window():
        raise ExportError("--from and --to apply to payments, transfers and cycles, not accounts")
    store, records = _open(db, schema)
    if records is not None:
        records.close()
    try:
        write_jsonl(what, store, window, out)
    except BrokenPipeError:
        if out is not None:
            raise ExportError(f"{out}: cannot write: broken pipe") from None
        # The reader went away (``| head``): stop quietly, and keep Python's exit-time flush of
        # stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as error:
        raise ExportError(f"{out}: cannot write: {error.strerror or error}") from None
    finally:
        store.close()


def _fail(message: str) -> NoReturn:
    """One line on stderr (scripts grep these), then exit code 1."""
    sys.stderr.write("sco-settle: export: " + " ".join(message.split()) + "\n")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``, in place of ``cli/main.py``'s JSON-lines ``export``:
    this one keeps that one's behaviour (``export transfers|accounts --db DB`` writes JSON lines
    on stdout) and adds payments, cycles, Parquet, CSV and date windows."""

    def name(info: Any) -> str:
        return str(info.name or info.callback.__name__).replace("_", "-")

    app.registered_commands[:] = [c for c in app.registered_commands if name(c) != "export"]
    app.command("export")(export)
