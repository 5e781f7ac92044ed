"""``sco-settle``: the command line. Parsing and printing only; the work is done elsewhere."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from sco_settle.domain.account_key import AccountKey, AccountKeyError
from sco_settle.domain.money import format_minor_amount
from sco_settle.ledger import BatchTooLargeError, Ledger
from sco_settle.ledger.invariants import verify as verify_store
from sco_settle.ledger.jsonl import (
    BatchFormatError,
    account_to_json,
    error_line,
    parse_batch,
    results_line,
    transfer_to_json,
)
from sco_settle.ledger.store import Store
from sco_settle.network import NetworkError
from sco_settle.network.install import NetworkInstallError, install_network
from sco_settle.payments.records import PaymentRecords
from sco_settle.storage import SqliteStore, StoreLockedError, open_database_file
from sco_settle.storage.payment_records_sql import SqlPaymentRecords
from sco_settle.storage.sqlite import StoreFormatError

if TYPE_CHECKING:
    from sco_settle.domain.account import Account
    from sco_settle.domain.results import CreateAccountResult, CreateTransferResult
    from sco_settle.domain.transfer import Transfer
    from sco_settle.payments.recovery import AuditReport

app = typer.Typer(
    name="sco-settle",
    help="SCO Settle: national-currency settlement for banks of SCO states.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)


def _error(message: str) -> None:
    """One line on stderr, never wrapped or styled: scripts grep these."""
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.stderr.flush()


DbOption = Annotated[Path, typer.Option("--db", help="SQLite database file.")]


class CliError(Exception):
    """An expected failure: printed as one line on stderr, exit code 1."""


def _open_ledger(db: Path) -> Ledger:
    return Ledger(SqliteStore(db))


def _open_readonly(db: Path) -> Store:
    if not db.exists():
        raise CliError(f"no database at {db} (create one with: sco-settle init --db {db})")
    return open_database_file(db, readonly=True)  # SQLite, or a log store's file


@app.command()
def init(
    db: DbOption,
    network: Annotated[str, typer.Option(help='Network name ("sco") or a YAML file.')] = "sco",
) -> None:
    """Create a database holding a network's participants, their accounts and opening balances."""
    from sco_settle.network import load_network

    if db.exists():
        raise CliError(f"{db} already exists; choose a new path")
    loaded = load_network(network)
    with _open_ledger(db) as ledger:
        summary = install_network(ledger, loaded)
    console.print(
        f"Created {db}: {summary['accounts']} accounts for {len(loaded.participants)} participants,"
        f" {summary['transfers']} opening transfers."
    )


@app.command()
def apply(db: DbOption) -> None:
    """Apply JSON-lines batches from stdin; print one result line per batch once it is durable."""
    out = sys.stdout
    with _open_ledger(db) as ledger:
        for line_number, line in enumerate(sys.stdin.buffer, start=1):
            if not line.strip():
                continue
            try:
                kind, items = parse_batch(line)
                # Casts: ``parse_batch`` returns Account items for "accounts" and Transfer items
                # otherwise, a pairing its return type does not express.
                results: list[CreateAccountResult] | list[CreateTransferResult]
                if kind == "accounts":
                    results = ledger.create_accounts(cast("list[Account]", items))
                else:
                    results = ledger.create_transfers(cast("list[Transfer]", items))
            except (BatchFormatError, BatchTooLargeError) as error:
                out.write(error_line(line_number, str(error)) + "\n")
                out.flush()
                continue
            # The batch is durable (committed and fsync'd) before this line is written.
            out.write(results_line(results) + "\n")
            out.flush()


@app.command()
def export(
    what: Annotated[str, typer.Argument(help='"transfers" or "accounts".')],
    db: DbOption,
) -> None:
    """Print every transfer (in timestamp order) or account as JSON lines."""
    if what not in ("transfers", "accounts"):
        raise CliError(f'export takes "transfers" or "accounts", not {what!r}')
    store = _open_readonly(db)
    try:
        write = sys.stdout.write
        if what == "transfers":
            for transfer in store.iter_transfers():
                write(json.dumps(transfer_to_json(transfer)) + "\n")
        else:
            for stored in store.load_accounts():
                write(json.dumps(account_to_json(stored.account, stored.balance())) + "\n")
    finally:
        store.close()


@app.command()
def balances(
    db: DbOption,
    participant: Annotated[str | None, typer.Option(help="Only this participant's BIC.")] = None,
) -> None:
    """Show account balances (posted and pending), in major units."""
    store = _open_readonly(db)
    try:
        rows = [
            s
            for s in store.load_accounts()
            if participant is None or s.account.participant == participant
        ]
    finally:
        store.close()
    if participant is not None and not rows:
        raise CliError(f"no accounts for participant {participant!r}")
    table = Table(title=f"Balances in {db}")
    for column in ("participant", "kind", "currency", "ref", "posted", "pending dr", "pending cr"):
        table.add_column(
            column, justify="right" if column.startswith(("posted", "pending")) else "left"
        )
    for stored in sorted(
        rows, key=lambda s: (s.account.participant, s.account.currency, s.account.kind)
    ):
        account = stored.account
        posted = stored.credits_posted - stored.debits_posted
        table.add_row(
            account.participant,
            account.kind,
            account.currency,
            account.ref,
            format_minor_amount(posted, account.currency),
            format_minor_amount(stored.debits_pending, account.currency),
            format_minor_amount(stored.credits_pending, account.currency),
        )
    console.print(table)


@app.command()
def verify(
    db: Annotated[
        str,
        typer.Option("--db", help="SQLite database file, or postgresql://user@host:port/database."),
    ],
    schema: Annotated[str, typer.Option(help="PostgreSQL schema of the ledger.")] = "sco_settle",
    audit: Annotated[
        bool, typer.Option("--audit", help="Also verify the audit chain (docs/audit-and-events.md)")
    ] = False,
    checkpoint: Annotated[
        Path | None, typer.Option(help="With --audit: a checkpoint the chain must still contain.")
    ] = None,
) -> None:
    """Recompute every balance from the journal and check every invariant; then reconcile the
    payment records with the ledger (every settled payment's legs exist, are posted and carry
    its amounts; every payment chain in the ledger has its record). With ``--audit``, check the
    audit chain and that it explains every ledger row, payment event, key and netting cycle."""
    if audit:
        _verify_audit(db, schema, checkpoint)
    store, records = _open_for_audit(db, schema)
    try:
        report = verify_store(store)
        payments = _audit_payments(records, store) if report.ok and records else None
    finally:
        if records is not None:
            records.close()
        store.close()
    if not report.ok:
        _error(f"verify: FAILED: {report.violation}")
        raise typer.Exit(1)
    console.print(
        f"verify: OK: {report.accounts} accounts, {report.transfers} transfers,"
        f" {report.resolutions} pending resolutions; debits = credits in"
        f" {len(report.currencies)} currencies"
    )
    if payments is None:
        return
    for finding in payments.findings:
        console.print(f"  payment {finding.payment_id or '(none)'}: {finding.problem}")
    if not payments.ok:
        _error(
            f"verify: FAILED: {len(payments.findings)} payment records disagree with"
            " the ledger (listed above)"
        )
        raise typer.Exit(1)
    console.print(
        f"verify: OK: {payments.payments} payment records reconcile with the ledger"
        f" ({payments.settled} settled, {payments.returned} returned,"
        f" {payments.intents} in flight, settled from the ledger at the next start)"
    )


def _verify_audit(db: str, schema: str, checkpoint: Path | None) -> None:
    from sco_settle.cli.audit import print_report, read_checkpoint, verify_database

    mark = read_checkpoint(checkpoint) if checkpoint is not None else None
    if not print_report(verify_database(db, schema, mark)):
        raise typer.Exit(1)


def _open_for_audit(db: str, schema: str) -> tuple[Store, SqlPaymentRecords | None]:
    """Read-only sessions of the ledger store and of its payment records (None: the database
    holds none, as after ``init`` and ``apply`` only), SQLite or PostgreSQL."""
    import sqlite3

    from sco_settle.server.config import ConfigError, DatabaseKind, parse_database_url
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    try:
        database = parse_database_url(db, schema=schema)
    except ConfigError as error:
        raise CliError(str(error)) from None
    if database.kind is DatabaseKind.POSTGRES:
        return _open_postgres_for_audit(database.dsn, database.schema)
    assert database.path is not None
    store = _open_readonly(database.path)
    try:
        records = SqlitePaymentRecords(database.path, readonly=True)
    except sqlite3.Error:
        return store, None
    try:
        records.counts()
    except sqlite3.Error:  # No payment tables.
        records.close()
        return store, None
    return store, records


def _open_postgres_for_audit(dsn: str, schema: str) -> tuple[Store, SqlPaymentRecords]:
    import psycopg

    from sco_settle.storage.payment_records_postgres import PostgresPaymentRecords
    from sco_settle.storage.postgres import PostgresStore

    try:
        store = PostgresStore(dsn, schema=schema, readonly=True)
    except psycopg.Error as error:
        raise CliError(f"PostgreSQL: {error}") from None
    try:
        return store, PostgresPaymentRecords(dsn, schema=schema, readonly=True)
    except BaseException:
        store.close()
        raise


def _network_key(ref: str) -> AccountKey | None:
    """The account key in an account's ``ref`` (None: not a network account)."""
    try:
        return AccountKey.parse(ref)
    except AccountKeyError:
        return None


def _audit_payments(records: PaymentRecords, store: Store) -> AuditReport:
    """The payment audit: every record against the ledger, every payment chain against a record."""
    from sco_settle.payments import recovery

    index = recovery.holder_index(
        (key, stored.account.id)
        for stored in store.load_accounts()
        if (key := _network_key(stored.account.ref)) is not None
    )
    return recovery.audit(
        records.records(),
        len(records.intents()),
        store.get_transfers,
        store.iter_transfers(),
        lambda payment: recovery.parties(index, payment),
    )


@app.command()
def demo(
    db: DbOption = Path("sco-demo.db"),
    transfers: Annotated[int, typer.Option(help="How many transfers to run.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same transfers).")] = 7,
    payments: Annotated[
        bool, typer.Option(help="Then run a short payments simulation (RTGS, one day).")
    ] = True,
) -> None:
    """The main job: a fresh database on the SCO network, funded, then N transfers, summarised;
    then a short simulation of SCO trade payments (routing, FX PvP, swap lines, RTGS + LSM)."""
    from sco_settle.cli.demo import run_demo
    from sco_settle.cli.simulate import simulate

    if transfers <= 0:
        raise CliError("--transfers must be positive")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    run_demo(db, transfers, seed, console)
    console.print(f"Ledger part done in {time.perf_counter() - started:.1f} s.")
    if payments:
        out = db.with_name(db.stem + "-sim")
        console.print(f"\n[bold]Payments[/]: one simulated day of SCO trade, RTGS, into {out}/")
        simulate(
            days=1,
            seed=seed,
            mode="rtgs",
            scale="0.25",
            db=None,
            out=out,
            scenario=None,
            national_share=None,
        )
    console.print(f"Check the ledger: sco-settle verify --db {db}")


def _mount_optional_apps() -> None:
    try:
        from sco_settle.cli.iso import iso_app
    except ImportError:  # The ISO 20022 adapter is optional at this stage of the project.
        return
    app.add_typer(iso_app, name="iso")


_mount_optional_apps()

from sco_settle.cli.simulate import register as _register_simulate  # noqa: E402 - after app exists.

_register_simulate(app)

from sco_settle.cli.serve import register as _register_server  # noqa: E402 - after app exists.

_register_server(app)

from sco_settle.cli.calendar import register as _register_calendar  # noqa: E402 - after app.

_register_calendar(app)

from sco_settle.cli.network import register as _register_network  # noqa: E402 - after app.

_register_network(app)

from sco_settle.cli.dst import register as _register_dst  # noqa: E402 - after app exists.

_register_dst(app)

from sco_settle.cli.report import register as _register_report  # noqa: E402 - after app.

_register_report(app)

from sco_settle.cli.export import register as _register_export  # noqa: E402 - after app.

_register_export(app)

from sco_settle.cli.audit import register as _register_audit  # noqa: E402 - after app.

_register_audit(app)

from sco_settle.cli.events import register as _register_events  # noqa: E402 - after app.

_register_events(app)

from sco_settle.cli.fx_quotes import register as _register_fx_quotes  # noqa: E402 - after app.

_register_fx_quotes(app)


def main() -> None:
    try:
        app()
    except (CliError, NetworkError, NetworkInstallError) as error:
        _error(f"sco-settle: {error}")
        sys.exit(1)
    except (StoreLockedError, StoreFormatError, FileNotFoundError) as error:
        _error(f"sco-settle: {error}")
        sys.exit(1)


from sco_settle.cli.swap_lines import register as _register_swap_lines  # noqa: E402 - after app.

_register_swap_lines(app)

from sco_settle.cli.dashboard import register as _register_dashboard  # noqa: E402 - after app.

_register_dashboard(app)
