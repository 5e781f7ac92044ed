"""The engine's side of firm FX quotes (``payments.fx_quotes`` states the rules): pricing a
quote on current balances and holding the liquidity it needs, and settling a payment at one.

Both run inside an engine operation (``PaymentEngine.quote_fx`` and ``submit_many``); refusals
are ``PaymentRejected`` with an ISO 20022 reason, which change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import PendingStatus
from sco_settle.payments.fx import Rounding
from sco_settle.payments.fx_quotes import (
    CODE_QUOTE_HOLD,
    QUOTE_SECONDS_MAX,
    QuoteStatus,
    amount_type_for,
    bearer_problem,
    bookings_of,
    charges_of,
    conversions_of,
    expiry_ns,
    hold_transfers,
    holds_for,
    mismatch,
    quote_id_for,
    settlement_chain,
)
from sco_settle.payments.model import (
    AmountType,
    Payment,
    PaymentOutcome,
    PaymentRejected,
    PaymentStatus,
    Reason,
)
from sco_settle.payments.modes import Events
from sco_settle.payments.quote_records import ChargeBearer, FxQuote

if TYPE_CHECKING:
    from sco_settle.payments.engine import PaymentEngine

_USED_UP = {
    TR.PENDING_TRANSFER_ALREADY_VOIDED: "the FX quote was already used by another payment",
    TR.PENDING_TRANSFER_EXPIRED: "the FX quote expired",
    TR.PENDING_TRANSFER_NOT_FOUND: "the FX quote's liquidity was never held: ask for a new one",
}


@dataclass(frozen=True)
class FxQuoteRequest:
    """What a debtor agent asks to be quoted. ``amount_type`` says which amount is fixed;
    ``charge_bearer`` may fix it instead (``fx_quotes.amount_type_for``)."""

    debtor_agent: str
    creditor_agent: str
    amount_minor: int
    currency: str
    creditor_currency: str
    amount_type: AmountType = AmountType.SEND
    charge_bearer: ChargeBearer = ChargeBearer.SHAR
    seconds: int = 60
    ref: str = ""


# Open quotes one debtor agent may hold at once: a quote holds an FX provider's liquidity, so
# without a bound one bank could hold all of it and starve every other bank's payments.
QUOTES_OPEN_MAX = 16


def open_quotes(engine: PaymentEngine, debtor_agent: str) -> int:
    """How many of ``debtor_agent``'s quotes hold liquidity now (their holds are pending; a
    quote's holds carry its id, which names its debtor agent, as ``ref``)."""
    prefix = quote_id_for(debtor_agent, 0, 0).rsplit("-", 2)[0] + "-"
    return len(
        {
            pending.ref
            for pending in engine.ledger.state.pending_open.values()
            if pending.code == CODE_QUOTE_HOLD and pending.ref.startswith(prefix)
        }
    )


def make_quote(engine: PaymentEngine, request: FxQuoteRequest, sequence: int) -> FxQuote:
    """Price ``request`` on the best route now, save the quote, then hold its liquidity."""
    problem = bearer_problem(request.charge_bearer, request.amount_type)
    if problem:
        raise PaymentRejected(Reason.NARR, problem)
    if not 1 <= request.seconds <= QUOTE_SECONDS_MAX:
        raise PaymentRejected(Reason.NARR, f"a quote is firm for 1 to {QUOTE_SECONDS_MAX} seconds")
    if open_quotes(engine, request.debtor_agent) >= QUOTES_OPEN_MAX:
        raise PaymentRejected(
            Reason.AM04,
            f"{request.debtor_agent} already holds {QUOTES_OPEN_MAX} open FX quotes: use or let"
            " them expire first (no bank may hold the providers' liquidity for everyone)",
        )
    now = engine.clock()
    quote_id = quote_id_for(request.debtor_agent, now, sequence)
    probe = Payment(
        quote_id,
        request.debtor_agent,
        request.creditor_agent,
        request.amount_minor,
        request.currency,
        request.creditor_currency,
        amount_type=amount_type_for(request.charge_bearer, request.amount_type),
    )
    engine.check(probe)
    routes = engine.route(probe, alternatives=False, refuse_hopeless=True)
    if not routes:
        raise PaymentRejected(
            Reason.AM04, "no route has the liquidity for this amount now: nothing can be held"
        )
    route = routes[0]
    chain = engine.plan(probe, route)
    conversions = conversions_of(route, engine.view.rates_at(now), Rounding.CUSTOMER_RECEIVES)
    expires = expiry_ns(now, request.seconds, (c.valid_until_ns for c in conversions))
    if expires <= now:
        raise PaymentRejected(Reason.NARR, "the rates on the route expire now: ask again")
    quote = FxQuote(
        quote_id=quote_id,
        debtor_agent=request.debtor_agent,
        creditor_agent=request.creditor_agent,
        currency=request.currency,
        creditor_currency=request.creditor_currency,
        amount_type=probe.amount_type,
        charge_bearer=request.charge_bearer,
        send_minor=route.legs[0].amount_minor,
        receive_minor=route.amount_delivered_minor,
        charges=charges_of(route, probe.amount_type),
        conversions=conversions,
        route=tuple(str(node) for node in route.nodes),
        bookings=bookings_of(chain),
        holds=holds_for(
            quote_id, chain, request.debtor_agent, engine.account_info, engine.clearing
        ),
        created_ns=now,
        expires_ns=expires,
        ref=request.ref,
    )
    if not quote.holds:
        raise PaymentRejected(
            Reason.NARR,
            "the best route takes no one else's liquidity (the debtor agent converts in its own"
            " books): there is nothing to hold, so pay without a quote",
        )
    engine.quotes.save_quote(quote)  # Durable before its holds: a quote never holds unseen.
    placed = engine.ledger.create_transfers(hold_transfers(quote))
    engine.view.invalidate()  # Routes no longer see the held liquidity.
    if any(result is not TR.OK for result in placed):
        raise PaymentRejected(
            Reason.AM04, "the liquidity on the route moved while it was quoted: ask again"
        )
    return quote


def settle_at_quote(engine: PaymentEngine, payment: Payment, events: Events) -> PaymentOutcome:
    """Settle ``payment`` exactly at its firm quote, or refuse it: never re-routed or queued."""
    quote = engine.quotes.get_quote(payment.fx_quote_id)
    if quote is None or quote.debtor_agent != payment.debtor_agent:
        raise PaymentRejected(
            Reason.NARR, f"no FX quote {payment.fx_quote_id!r} for {payment.debtor_agent}"
        )
    problem = mismatch(quote, payment)
    if problem:
        raise PaymentRejected(Reason.AM09, problem)
    if payment.settle_from > engine.clock():
        raise PaymentRejected(
            Reason.DT01, "a payment at a firm quote settles now: it cannot wait for a later time"
        )
    if engine.clock() > quote.expires_ns:
        raise PaymentRejected(Reason.DT01, f"the FX quote {quote.quote_id} has expired")
    if engine.queue.blocks(payment):
        raise PaymentRejected(
            Reason.AM04,
            "earlier payments of the debtor agent wait in the queue, and a payment at a firm"
            " quote cannot wait behind them",
        )
    chain = settlement_chain(quote, payment.payment_id)
    engine.records.begin([(payment, "settle")], engine.clock())
    results = engine.ledger.create_transfers(chain)
    events.append((PaymentStatus.ROUTED, f"{' -> '.join(quote.route)} at {quote.quote_id}"))
    legs = chain[len(quote.holds) :]
    if all(result is TR.OK for result in results):
        events.append((PaymentStatus.SETTLED, f"at firm quote {quote.quote_id}"))
        engine.view.invalidate()
        return PaymentOutcome(
            payment.payment_id,
            PaymentStatus.SETTLED,
            amount_delivered_minor=quote.receive_minor,
            amount_sent_minor=quote.send_minor,
            route=quote.route,
            transfer_ids=tuple(transfer.id for transfer in legs),
            settled_at=engine.ledger.state.last_timestamp,
        )
    failure = next(result for result in results if result is not TR.LINKED_EVENT_FAILED)
    if failure in (TR.EXISTS, TR.EXISTS_WITH_DIFFERENT_FIELDS):
        return engine.settled_in_ledger(payment)  # Applied before a crash (only we write ids).
    if failure in _USED_UP:
        raise PaymentRejected(Reason.DT01 if "expired" in _USED_UP[failure] else Reason.DUPL,
                              _USED_UP[failure])  # fmt: skip
    raise PaymentRejected(
        Reason.AM04, f"the debtor agent's account cannot fund the payment at the quote: {failure}"
    )


def quote_status(engine: PaymentEngine, quote: FxQuote) -> QuoteStatus:
    """Open while every hold is pending and the quote has not expired; used once a payment's
    chain voided them; expired otherwise."""
    ids = [hold.transfer_id for hold in quote.holds]
    open_now = engine.ledger.state.pending_open
    if all(hold_id in open_now for hold_id in ids) and engine.clock() <= quote.expires_ns:
        return QuoteStatus.OPEN
    statuses = engine.ledger.store.get_pending_statuses(ids)
    if any(status is PendingStatus.VOIDED for status in statuses.values()):
        return QuoteStatus.USED
    return QuoteStatus.EXPIRED
