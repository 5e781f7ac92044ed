"""``sco-settle swap-lines``: the swap-line agreements of a ledger's network, and the operator
actions of a central bank on them (draw a tranche, repay it, roll it over).

Each action writes one linked chain to the ledger at ``--db`` (``payments/swap_lines.py``); a
refused action prints a one-line reason with its code and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from sco_settle.domain.money import format_minor_amount

if TYPE_CHECKING:
    from sco_settle.payments.swap_lines import Agreement, SwapLineDesk

DbOption = Annotated[Path, typer.Option(help="SQLite ledger file (from sco-settle init).")]
NetworkOption = Annotated[str, typer.Option(help='Network name ("sco") or a YAML file.')]
OnOption = Annotated[str | None, typer.Option(help="The day (YYYY-MM-DD; default: today, UTC).")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Swap-line agreements, and tranches drawn, repaid or rolled over.")
    group.command("status")(status)
    group.command("draw")(draw)
    group.command("repay")(repay)
    group.command("rollover")(rollover)
    app.add_typer(group, name="swap-lines")


def _desk(db: Path, network: str) -> SwapLineDesk:
    from sco_settle.ledger import Ledger
    from sco_settle.network import load_network
    from sco_settle.payments.network_view import NetworkView, load_rates
    from sco_settle.payments.swap_lines import SwapLineDesk
    from sco_settle.storage import SqliteStore

    if not db.exists():
        _fail(f"no database at {db} (create one with: sco-settle init --db {db})")
    ledger = Ledger(SqliteStore(db))
    view = NetworkView(load_network(network), load_rates(network))
    return SwapLineDesk(ledger, view)


def _fail(message: str) -> None:
    typer.echo(f"sco-settle: {message}", err=True)
    raise typer.Exit(code=2)


def _day(text: str | None) -> dt.date:
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        _fail(f"--on {text!r} is not a date (YYYY-MM-DD)")
        raise


def _rate(text: str) -> Decimal:
    try:
        rate = Decimal(text)
    except InvalidOperation:
        rate = Decimal(-1)
    if not rate.is_finite() or rate < 0 or rate > 1:
        _fail(f"--interest {text!r} is not an annual rate between 0 and 1 (0.025 is 2.5 %)")
    return rate


def status(
    db: DbOption,
    network: NetworkOption = "sco",
    on: OnOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Each side of each swap line: status on the day, size, drawn, facility, tranches."""
    desk = _desk(db, network)
    day = _day(on)
    if as_json:
        try:
            for side in desk.sides():
                typer.echo(json.dumps(_side_json(desk, side, day)))
        finally:
            desk.ledger.close()
        return
    table = Table(title=f"Swap lines on {day}")
    for column in ("drawer", "provider", "status", "drawable", "size", "drawn", "facility"):
        table.add_column(column)
    table.add_column("outstanding tranches")
    try:
        for side in desk.sides():
            state = desk.state(side, day)
            code = side.provider_currency
            outstanding = [t for t in state.tranches if t.state.value == "outstanding"]
            table.add_row(
                side.drawer,
                side.provider,
                state.status.value,
                "yes" if state.drawable else "no",
                format_minor_amount(side.size_minor, code) if side.size_minor else "unknown",
                format_minor_amount(state.drawn_minor, code),
                format_minor_amount(state.facility_minor, code),
                ", ".join(f"{t.terms.tranche_id} (m. {t.terms.maturity})" for t in outstanding),
            )
    finally:
        desk.ledger.close()
    Console().print(table)


def _side_json(desk: SwapLineDesk, side: Agreement, day: dt.date) -> dict[str, object]:
    return desk.state(side, day).as_dict()


def draw(
    drawer: Annotated[str, typer.Argument(help="BIC of the drawing central bank.")],
    provider: Annotated[str, typer.Argument(help="BIC of the providing central bank.")],
    amount: Annotated[str, typer.Argument(help="Principal in the provider's currency, major.")],
    db: DbOption,
    months: Annotated[int, typer.Option(help="Tenor: 3, 6 or 12 months.")] = 3,
    interest: Annotated[str, typer.Option(help="Annual interest rate, e.g. 0.025.")] = "0.025",
    network: NetworkOption = "sco",
    on: OnOption = None,
) -> None:
    """Draw a tranche (the counter-value at the provider's mid quote)."""
    from sco_settle.network.model import minor_units_of
    from sco_settle.payments.swap_lines import DrawRefused, agreement

    desk = _desk(db, network)
    try:
        found = agreement(desk.network, drawer, provider)
        principal = minor_units_of(Decimal(amount), found.provider_currency)
        day = _day(on)
        terms = desk.draw(
            drawer, provider, principal, day, months, _rate(interest), desk.view.rates
        )
    except DrawRefused as refused:
        _fail(f"draw refused ({refused.code}): {refused}")
        return
    except InvalidOperation:
        _fail(f"amount {amount!r} is not a decimal number of major units")
        return
    except ValueError as error:
        _fail(f"amount {amount!r}: {error}")
        return
    finally:
        desk.ledger.close()
    principal_text = format_minor_amount(terms.principal_minor, found.provider_currency)
    counter_text = format_minor_amount(terms.counter_minor, found.drawer_currency)
    typer.echo(
        f"drew {terms.tranche_id}: {principal_text} {found.provider_currency} against"
        f" {counter_text} {found.drawer_currency}, {terms.value_date} to {terms.maturity}"
        f" at {terms.interest_rate}"
    )


def repay(
    drawer: Annotated[str, typer.Argument(help="BIC of the drawing central bank.")],
    provider: Annotated[str, typer.Argument(help="BIC of the providing central bank.")],
    tranche: Annotated[str, typer.Argument(help="The tranche id.")],
    db: DbOption,
    network: NetworkOption = "sco",
    on: OnOption = None,
) -> None:
    """Repay a tranche with its interest and take the counter-value back."""
    from sco_settle.payments.swap_lines import DrawRefused

    desk = _desk(db, network)
    try:
        desk.repay(drawer, provider, tranche, _day(on))
    except DrawRefused as refused:
        _fail(f"repayment refused ({refused.code}): {refused}")
    finally:
        desk.ledger.close()
    typer.echo(f"repaid {tranche}")


def rollover(
    drawer: Annotated[str, typer.Argument(help="BIC of the drawing central bank.")],
    provider: Annotated[str, typer.Argument(help="BIC of the providing central bank.")],
    tranche: Annotated[str, typer.Argument(help="The tranche id.")],
    db: DbOption,
    months: Annotated[int, typer.Option(help="Tenor: 3, 6 or 12 months.")] = 3,
    interest: Annotated[str, typer.Option(help="Annual interest rate, e.g. 0.025.")] = "0.025",
    network: NetworkOption = "sco",
    on: OnOption = None,
) -> None:
    """Repay a tranche and draw its principal again, in one chain."""
    from sco_settle.payments.swap_lines import DrawRefused

    desk = _desk(db, network)
    try:
        new = desk.rollover(
            drawer, provider, tranche, _day(on), months, _rate(interest), desk.view.rates
        )
    except DrawRefused as refused:
        _fail(f"rollover refused ({refused.code}): {refused}")
        return
    finally:
        desk.ledger.close()
    typer.echo(f"rolled {tranche} over into {new.tranche_id}, maturing {new.maturity}")
