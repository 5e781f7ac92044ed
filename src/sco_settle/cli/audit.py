"""``sco-settle audit checkpoint|verify``, and the audit half of ``sco-settle verify --audit``.

The composition only: the chain and its checks are ``sco_settle.audit``; the rows come from a
read-only session of the ledger store (SQLite file or PostgreSQL schema) and of its API tables.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from sco_settle.audit.chain import Checkpoint
from sco_settle.audit.ledger_rows import resolution_row
from sco_settle.audit.sql import (
    AuditTables,
    Execute,
    has_table,
    iter_entries,
    iter_payment_events,
    postgres_execute,
    read_cycle_rows,
    read_head,
    read_key_rows,
    sqlite_execute,
)
from sco_settle.audit.verify import AuditReport, LedgerRows, TableRows, verify_audit

audit_app = typer.Typer(
    help="The tamper-evident audit trail: export its head, verify it.", no_args_is_help=True
)

DbUrl = Annotated[
    str, typer.Option("--db", help="SQLite database file, or postgresql://user@host:port/db.")
]
SchemaOption = Annotated[str, typer.Option(help="PostgreSQL schema of the ledger.")]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(help="A checkpoint exported earlier (JSON): the chain must still contain it."),
]


@dataclass
class AuditReader:
    """A read-only store and a statement callable on its connection."""

    store: Any
    execute: Execute
    tables: AuditTables


@contextlib.contextmanager
def open_audit_reader(db: str, schema: str = "sco_settle") -> Iterator[AuditReader]:
    from sco_settle.server.config import DatabaseKind, parse_database_url
    from sco_settle.storage.sqlite import SqliteStore, is_log_file

    database = parse_database_url(db, schema=schema)
    if database.kind is DatabaseKind.POSTGRES:
        from sco_settle.storage.postgres import PostgresStore

        store: Any = PostgresStore(database.dsn, schema=database.schema, readonly=True)
        reader = AuditReader(
            store, postgres_execute(store.connection), AuditTables.postgres(database.schema)
        )
    else:
        assert database.path is not None
        if is_log_file(database.path):
            raise FileNotFoundError(f"{database.path} is a log store: it keeps no audit trail")
        store = SqliteStore(database.path, readonly=True)
        reader = AuditReader(store, sqlite_execute(store.connection), AuditTables.sqlite())
    try:
        if not has_table(reader.execute, reader.tables, "audit_log"):
            raise FileNotFoundError(f"{db} holds no audit trail (written from schema 4 on)")
        yield reader
    finally:
        store.close()


def verify_database(db: str, schema: str, checkpoint: Checkpoint | None) -> AuditReport:
    """Check the chain of ``db`` and every ledger row, payment event, key and cycle against it."""
    with open_audit_reader(db, schema) as reader:
        execute, tables = reader.execute, reader.tables
        store = reader.store
        ledger = LedgerRows(
            accounts=(stored.account for stored in store.iter_accounts()),
            transfers=store.iter_transfers(),
            resolutions=(resolution_row(*r) for r in store.iter_pending_resolutions()),
        )
        found = {
            name: has_table(execute, tables, name)
            for name in ("payment_events", "api_keys", "api_netting_cycles")
        }
        rows = TableRows(
            payment_events=iter_payment_events(execute, tables)
            if found["payment_events"]
            else None,
            keys=read_key_rows(execute, tables) if found["api_keys"] else None,
            cycles=read_cycle_rows(execute, tables) if found["api_netting_cycles"] else None,
        )
        return verify_audit(iter_entries(execute, tables), ledger, rows, checkpoint)


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        return Checkpoint.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        raise typer.BadParameter(f"{path}: {error}") from None


def print_report(report: AuditReport) -> bool:
    """Print the findings (stdout) and a summary; whether the audit passed."""
    for finding in report.findings:
        where = f"entry {finding.seq}: " if finding.seq is not None else ""
        sys.stdout.write(f"  audit {finding.kind.value}: {where}{finding.detail}\n")
    checked = ", ".join(f"{count} {name}" for name, count in report.rows_checked.items())
    if report.ok:
        sys.stdout.write(
            f"verify --audit: OK: {report.entries} entries chained to head {report.head.seq}"
            f" {report.head.hash}; explained {checked}\n"
        )
    else:
        sys.stderr.write(f"verify --audit: FAILED: {len(report.findings)} findings (above)\n")
    return report.ok


@audit_app.command("checkpoint")
def checkpoint_command(
    db: DbUrl,
    schema: SchemaOption = "sco_settle",
    out: Annotated[Path | None, typer.Option(help="Write the JSON here, not stdout.")] = None,
) -> None:
    """Export the chain's head (seq and hash) as JSON, to keep outside the database."""
    with open_audit_reader(db, schema) as reader:
        head = read_head(reader.execute, reader.tables)
    text = json.dumps(head.as_dict()) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


@audit_app.command("verify")
def verify_command(
    db: DbUrl,
    schema: SchemaOption = "sco_settle",
    checkpoint: CheckpointOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Verify the chain and every row it explains (as ``sco-settle verify --audit``)."""
    report = verify_database(db, schema, read_checkpoint(checkpoint) if checkpoint else None)
    if json_output:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
    elif not print_report(report):
        raise typer.Exit(1)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
