"""``sco-settle fx-quote``: firm FX quotes on a ledger file, as a participant (``--as``) would
take them over the API (``POST /v1/fx-quotes``): ``create`` prices a payment and holds the
liquidity it needs, ``show`` tells a quote's terms and status, ``pay`` settles a payment exactly
at a quote (or refuses it). A refusal prints one line with its ISO 20022 reason and exits 1;
nothing changes. ``payments/fx_quotes.py`` states the rules.
"""

from __future__ import annotations

import json
from decimal import InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sco_settle.domain.money import format_minor_amount, parse_major_amount

if TYPE_CHECKING:
    from sco_settle.payments.engine import PaymentEngine
    from sco_settle.payments.quote_records import FxQuote

DbOption = Annotated[Path, typer.Option("--db", help="SQLite database (sco-settle init).")]
AsOption = Annotated[str, typer.Option("--as", help="BIC of the participant acting.")]
NetworkOption = Annotated[str, typer.Option(help="Network the database was created with.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the quote as the API answers.")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Firm FX quotes: price a payment, hold its liquidity, pay at it.")
    group.command("create")(create)
    group.command("show")(show)
    group.command("pay")(pay)
    app.add_typer(group, name="fx-quote")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"sco-settle: {message}", err=True)
    raise typer.Exit(code=code)


def _engine(db: Path, network: str, acting: str) -> PaymentEngine:
    from sco_settle.cli.iso import open_engine

    if not db.exists():
        _fail(f"no database at {db} (create one with: sco-settle init --db {db})")
    engine, _ = open_engine(db, network)
    if acting.upper() not in engine.view.network.participants_by_bic:
        _close(engine)
        _fail(f"--as {acting!r} is not a participant of the network")
    return engine


def _close(engine: PaymentEngine) -> None:
    engine.ledger.close()
    engine.records.close()


def _print(engine: PaymentEngine, quote: FxQuote, as_json: bool) -> None:
    from sco_settle.payments.quote_desk import quote_status
    from sco_settle.server.routes.fx_quotes import fx_quote_json

    shown = fx_quote_json(quote, quote_status(engine, quote))
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    typer.echo(f"{quote.quote_id}  {shown['status']}  expires {shown['expires_at']}")
    typer.echo(
        f"  pay     {format_minor_amount(quote.send_minor, quote.currency)} {quote.currency}"
        f"  ->  receive {format_minor_amount(quote.receive_minor, quote.creditor_currency)}"
        f" {quote.creditor_currency}  (fixed: {quote.amount_type.value},"
        f" ChrgBr {quote.charge_bearer.value})"
    )
    for c in quote.conversions:
        typer.echo(
            f"  convert {c.from_currency}->{c.to_currency} at {c.provider}: {c.rate} ({c.side})"
        )
    for charge in quote.charges:
        amount = format_minor_amount(charge.amount_minor, charge.currency)
        typer.echo(
            f"  charge  {amount} {charge.currency} by {charge.agent}, borne by {charge.borne_by}"
        )
    for hold in quote.holds:
        amount = format_minor_amount(hold.amount_minor, hold.currency)
        typer.echo(f"  held    {amount} {hold.currency} of {hold.owner}")
    typer.echo(f"  route   {' -> '.join(quote.route)}")


def create(
    db: DbOption,
    acting: AsOption,
    to: Annotated[str, typer.Option("--to", help="BIC of the creditor agent.")],
    amount: Annotated[str, typer.Option(help="The fixed amount in major units, e.g. 500000.00")],
    currency: Annotated[str, typer.Option(help="The currency the debtor agent pays in.")],
    creditor_currency: Annotated[str, typer.Option(help="The currency the creditor receives.")],
    receive: Annotated[
        bool, typer.Option("--receive", help="The amount is what the creditor receives.")
    ] = False,
    charge_bearer: Annotated[str, typer.Option(help="ChrgBr: DEBT, CRED or SHAR.")] = "SHAR",
    seconds: Annotated[int, typer.Option(help="How long the quote is firm (1-600).")] = 60,
    network: NetworkOption = "sco",
    as_json: JsonOption = False,
) -> None:
    """Price a payment on the best route now and hold the liquidity it needs."""
    from sco_settle.payments.model import AmountType, PaymentOutcome
    from sco_settle.payments.quote_desk import FxQuoteRequest
    from sco_settle.payments.quote_records import ChargeBearer

    fixed = (creditor_currency if receive else currency).upper()
    try:
        amount_minor = parse_major_amount(amount, fixed)
        bearer = ChargeBearer(charge_bearer.upper())
    except (ValueError, InvalidOperation) as error:
        _fail(f"{error}")
    engine = _engine(db, network, acting)
    try:
        answer = engine.quote_fx(
            FxQuoteRequest(
                acting.upper(),
                to.upper(),
                amount_minor,
                currency.upper(),
                creditor_currency.upper(),
                amount_type=AmountType.RECEIVE if receive else AmountType.SEND,
                charge_bearer=bearer,
                seconds=seconds,
            )
        )
        if isinstance(answer, PaymentOutcome):
            reason = answer.reason.value if answer.reason else "NARR"
            _fail(f"no quote: {reason}: {answer.reason_text}", code=1)
        else:
            _print(engine, answer, as_json)
    finally:
        _close(engine)


def show(
    quote_id: Annotated[str, typer.Argument(help="The quote's id.")],
    db: DbOption,
    acting: AsOption,
    network: NetworkOption = "sco",
    as_json: JsonOption = False,
) -> None:
    """A quote's terms and status (open, used or expired); only its debtor agent sees it."""
    engine = _engine(db, network, acting)
    try:
        quote = engine.quotes.get_quote(quote_id)
        if quote is None or quote.debtor_agent != acting.upper():
            _fail(f"no FX quote {quote_id!r} for {acting.upper()}", code=1)
        else:
            _print(engine, quote, as_json)
    finally:
        _close(engine)


def pay(
    quote_id: Annotated[str, typer.Argument(help="The quote to pay at.")],
    db: DbOption,
    acting: AsOption,
    instruction_id: Annotated[str, typer.Option(help="Unique among the payer's payments.")],
    network: NetworkOption = "sco",
) -> None:
    """Settle a payment exactly at the quote's terms, or refuse it (exit 1)."""
    from sco_settle.payments.model import Payment, PaymentStatus

    engine = _engine(db, network, acting)
    try:
        quote = engine.quotes.get_quote(quote_id)
        if quote is None or quote.debtor_agent != acting.upper():
            _fail(f"no FX quote {quote_id!r} for {acting.upper()}", code=1)
            return
        payment = Payment(
            f"{quote.debtor_agent}:{instruction_id}", quote.debtor_agent, quote.creditor_agent,
            quote.fixed_minor, quote.currency, quote.creditor_currency,
            amount_type=quote.amount_type, fx_quote_id=quote.quote_id,
        )  # fmt: skip
        (outcome,) = engine.submit_many([payment])
        if outcome.status is not PaymentStatus.SETTLED:
            reason = outcome.reason.value if outcome.reason else ""
            _fail(
                f"{payment.payment_id} {outcome.status.value}: {reason}: {outcome.reason_text}", 1
            )
        sent = format_minor_amount(outcome.amount_sent_minor, quote.currency)
        got = format_minor_amount(outcome.amount_delivered_minor, quote.creditor_currency)
        typer.echo(
            f"{payment.payment_id} settled at {quote.quote_id}: paid {sent} {quote.currency},"
            f" delivered {got} {quote.creditor_currency}"
        )
    finally:
        _close(engine)
