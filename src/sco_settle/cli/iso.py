"""``sco-settle iso ...``: ISO 20022 message tools (argument parsing and output only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sco_settle.messaging.iso20022 import MESSAGE_BYTES_MAX, MessageRejectedError, open_message

if TYPE_CHECKING:  # Imported where used, so that the other commands start fast.
    from sco_settle.network import Network
    from sco_settle.payments.engine import PaymentEngine

iso_app = typer.Typer(
    help="ISO 20022 messages: validate against the official XSDs.", no_args_is_help=True
)


@iso_app.callback()
def _iso() -> None:
    """ISO 20022 messages (pacs, camt, head) with the official XSDs."""


@iso_app.command("validate")
def validate(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="XML file")
    ],
) -> None:
    """Check FILE safely and against its ISO 20022 XSD (and its application header's).

    Prints "valid: <message definition>" and exits 0, or "invalid: <file>:<line>: <first error>"
    and exits 1.
    """
    with file.open("rb") as stream:
        # Read one byte past the limit so that an oversize file is refused, not truncated.
        data = stream.read(MESSAGE_BYTES_MAX + 1)
    try:
        opened = open_message(data)
    except MessageRejectedError as error:
        line = error.line if error.line is not None else 0
        typer.echo(f"invalid: {file}:{line}: {error.text}")
        raise typer.Exit(code=1) from None
    typer.echo(f"valid: {opened.definition}")


def open_engine(db: Path, network_name: str) -> tuple[PaymentEngine, Network]:
    """Open the ledger at ``db`` (created by ``sco-settle init``) with its payment engine."""
    from sco_settle.ledger import Ledger
    from sco_settle.network import load_network
    from sco_settle.payments.engine import PaymentEngine
    from sco_settle.payments.network_view import NetworkView, load_rates
    from sco_settle.storage import SqliteStore
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    ledger = Ledger(SqliteStore(db))
    if not ledger.accounts():
        ledger.close()
        typer.echo(
            f"sco-settle: {db} has no accounts; create it with: sco-settle init --db {db}", err=True
        )
        raise typer.Exit(code=2)
    network = load_network(network_name)
    view = NetworkView(network, load_rates(network_name))
    return PaymentEngine(ledger, view, SqlitePaymentRecords(db)), network


@iso_app.command("submit")
def submit(
    file: Annotated[
        Path, typer.Argument(dir_okay=False, help="pacs.008 / pacs.009 / pacs.004 message")
    ],
    db: Annotated[Path, typer.Option("--db", help="SQLite database (sco-settle init).")],
    sender: Annotated[
        str,
        typer.Option(
            "--as",
            help="BIC of the participant sending the message. Its credit transfers are carried"
            " out only where it is the debtor agent, its returns only where it is the original"
            " payment's creditor agent; other transactions are answered RJCT AG01.",
        ),
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Write the pacs.002 here.")] = None,
    network: Annotated[str, typer.Option(help="Network the database was created with.")] = "sco",
) -> None:
    """Run a message through the payment pipeline and write the pacs.002 status report.

    Exit 0 whenever a status report was produced (also for a rejected or unreadable message,
    answered RJCT); exit 2 only when no report can be produced at all.
    """
    import datetime as dt

    from sco_settle.gateway.iso import submit_message

    try:
        with file.open("rb") as stream:
            data = stream.read(MESSAGE_BYTES_MAX + 1)
    except OSError as error:
        typer.echo(f"sco-settle: cannot read {file}: {error.strerror}", err=True)
        raise typer.Exit(code=2) from None
    engine, _ = open_engine(db, network)
    try:
        if sender.upper() not in engine.view.network.participants_by_bic:
            typer.echo(f"sco-settle: --as {sender!r} is not a participant of the network", err=True)
            raise typer.Exit(code=2)
        operator_bic = engine.view.network.currency_settlement_agent("CNY")
        report = submit_message(
            data,
            engine,
            now=dt.datetime.now(dt.UTC).replace(microsecond=0),
            sender_bic=operator_bic,
            caller_bic=sender.upper(),
        )
    finally:
        engine.ledger.close()
        engine.records.close()
    if out is None:
        typer.echo(report.decode())
    else:
        out.write_bytes(report)


@iso_app.command("statement")
def statement(
    db: Annotated[Path, typer.Option("--db", help="SQLite database.")],
    account: Annotated[
        str, typer.Option(help="Account id (decimal) or key, e.g. settlement:BKCHCNBJ:CNY.")
    ],
    date: Annotated[str, typer.Option(help="Statement day, YYYY-MM-DD (UTC).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the statement here.")] = None,
    format: Annotated[
        str, typer.Option("--format", help="camt.053 (XML) or json (as the API answers).")
    ] = "camt.053",
    page: Annotated[
        int, typer.Option(min=1, help="Page, from 1 (at most 50,000 entries a page).")
    ] = 1,
    network: Annotated[str, typer.Option(help="Network the database was created with.")] = "sco",
) -> None:
    """Write the statement of one account for one day: camt.053, or the API's JSON.

    Exit 1 for a bad date, a missing database or account, or a page after the last.
    """
    import datetime as dt
    import json

    from sco_settle.gateway.statements import (
        DayOutOfRange,
        PageOutOfRange,
        read_statement,
        statement_camt_053,
        statement_json,
    )
    from sco_settle.ledger import Ledger
    from sco_settle.network import load_network
    from sco_settle.storage import SqliteStore

    if format not in ("camt.053", "json"):
        typer.echo(f"sco-settle: --format {format!r} is not camt.053 or json", err=True)
        raise typer.Exit(code=1)
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        typer.echo(f"sco-settle: --date {date!r} is not YYYY-MM-DD", err=True)
        raise typer.Exit(code=1) from None
    if not db.exists():
        typer.echo(f"sco-settle: no database at {db}", err=True)
        raise typer.Exit(code=1)
    ledger = Ledger(SqliteStore(db))
    try:
        account_id = int(account) if account.isdigit() else None
        if account_id is None:
            matches = [s.id for s in ledger.accounts() if s.account.ref == account]
            account_id = matches[0] if matches else None
        state = ledger.lookup_account(account_id) if account_id is not None else None
        if state is None:
            typer.echo(f"sco-settle: no account {account!r}", err=True)
            raise typer.Exit(code=1)
        try:
            found = read_statement(ledger, state.account, day, page=page)
        except (DayOutOfRange, PageOutOfRange) as error:
            typer.echo(f"sco-settle: {error}", err=True)
            raise typer.Exit(code=1) from None
    finally:
        ledger.close()
    if format == "json":
        text = json.dumps(statement_json(found), indent=2) + "\n"
        data = text.encode()
    else:
        servicer = load_network(network).settlement_agents.get(state.account.currency)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        data = statement_camt_053(found, now=now, servicer_bic=servicer)
        text = data.decode()
    if out is None:
        typer.echo(text, nl=format != "json")
    else:
        out.write_bytes(data)
