"""Firm FX quotes: one payment's price, fixed for a stated time, with the liquidity it needs held.

A debtor agent asks for a quote before it pays across currencies (``POST /v1/fx-quotes``, the
``fx-quote`` command). The engine routes the payment on current balances, plans its ledger chain
and answers with every term of the settlement: the amounts on both sides, each conversion's
provider, rate and side, the charges and who bears them, and when the quote expires. From then
until expiry the liquidity the chain takes from others is *held*: each account the chain leaves
poorer that is not the payer's own (an FX provider's delivering account, above all) carries a
pending ledger transfer of that amount to its currency's clearing account, with the quote's
timeout, so the ledger itself expires it. A payment that names the quote settles exactly at the
quote: the chain is the quoted chain, under the payment's own transfer ids, and it first voids
the holds, all linked (both currencies or neither).

Guarantees (stated once here; ``tests/payments/test_fx_quotes.py`` asserts them):
- A payment naming a quote settles at the quoted amounts and rates or not at all: never re-routed,
  never queued, never at another price.
- A quote is used at most once: the holds are voided inside the settling chain, so a second
  payment's chain fails in the ledger (``pending_transfer_already_voided``) and moves nothing.
- An expired quote is refused: the ledger expires the holds at the timeout, and the engine
  refuses a payment after ``expires_ns`` before it reaches the ledger.
- Only the debtor agent that asked for a quote can use it; another participant is told the quote
  does not exist.
- A quote never outlives the rates it was priced at (``expires_ns`` is at most every rate's
  ``valid_until``).

Charges (``ChrgBr``): a route's charges are the hop charges its intermediaries deduct. ``CRED``:
the debtor pays the fixed sent amount and the creditor receives what is left (every charge borne
by the creditor). ``DEBT``: the creditor receives the fixed amount in full; the debtor pays it and
every charge on top. ``SHAR``: each side bears its own agent's charges (this network's debtor and
creditor agents charge nothing inside the chain), so the intermediaries' charges are deducted as
with ``CRED`` for a fixed sent amount, and added as with ``DEBT`` for a fixed received amount.

Pure: no I/O; the engine applies the transfers this module plans and the records keep the quote.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.payments.fx import RateSide, RateTable, Rounding
from sco_settle.payments.model import AmountType, Payment
from sco_settle.payments.plan import LINKED, leg_id, transfer_id_for
from sco_settle.payments.quote_records import (
    Booking,
    Charge,
    ChargeBearer,
    FxQuote,
    Hold,
    QuotedConversion,
)
from sco_settle.payments.routing import EdgeKind, Route

CODE_QUOTE_HOLD = 20  # a quote's hold on a provider's liquidity (pending, then voided or expired)
QUOTE_SECONDS_DEFAULT = 60
QUOTE_SECONDS_MAX = 600
_PENDING = int(TransferFlags.PENDING)
_VOID = int(TransferFlags.VOID_PENDING)
NS_PER_SECOND = 1_000_000_000


class QuoteStatus(enum.StrEnum):
    OPEN = "open"  # its holds are in place and it has not expired
    USED = "used"  # a payment settled at it (its holds were voided in that payment's chain)
    EXPIRED = "expired"  # it expired unused (or its holds could not be placed)


def amount_type_for(bearer: ChargeBearer, amount_type: AmountType) -> AmountType:
    """Which amount a quote fixes under ``bearer``: the creditor bearing charges means the sent
    amount is fixed (they are deducted on the way); the debtor bearing them, the received one."""
    if bearer is ChargeBearer.DEBT:
        return AmountType.RECEIVE
    if bearer is ChargeBearer.CRED:
        return AmountType.SEND
    return amount_type


def bearer_problem(bearer: ChargeBearer, amount_type: AmountType) -> str:
    """Why ``bearer`` contradicts the fixed amount ("" when it does not)."""
    if bearer is ChargeBearer.CRED and amount_type is AmountType.RECEIVE:
        return "ChrgBr CRED: the creditor bears the charges, so the received amount cannot be fixed"
    if bearer is ChargeBearer.DEBT and amount_type is AmountType.SEND:
        return "ChrgBr DEBT: the debtor bears the charges, so fix the received amount, not the sent"
    return ""


def quote_id_for(debtor_agent: str, clock_ns: int, sequence: int) -> str:
    """A quote id unique per engine: its debtor agent, the ledger clock and a counter."""
    return f"fxq-{debtor_agent}-{clock_ns:x}-{sequence}"


def expiry_ns(now_ns: int, seconds: int, rates_valid_until_ns: Iterable[int]) -> int:
    """When a quote made at ``now_ns`` for ``seconds`` expires: never after a rate it uses."""
    return min([now_ns + seconds * NS_PER_SECOND, *rates_valid_until_ns])


def charges_of(route: Route, amount_type: AmountType) -> tuple[Charge, ...]:
    """The route's charges (hop charges deducted by intermediaries) and who bears each: with a
    fixed sent amount they come off what the creditor receives, with a fixed received amount
    they are added to what the debtor pays (``amount_type_for`` makes the bearer's choice)."""
    borne_by = "creditor" if amount_type is AmountType.SEND else "debtor"
    return tuple(
        Charge(leg.source.participant, leg.fee_minor, leg.source.currency, borne_by)
        for leg in route.legs
        if leg.fee_minor
    )


def conversions_of(
    route: Route, rates: RateTable, rounding: Rounding
) -> tuple[QuotedConversion, ...]:
    """Each conversion of ``route`` at the quote that priced it (its provider's, in ``rates``)."""
    found = []
    for leg in route.legs:
        if leg.kind is not EdgeKind.FX or leg.rate_provider is None:
            continue
        source, target = leg.source.currency, leg.target.currency
        priced = rates.best(source, target, rounding, provider=leg.rate_provider)
        assert priced is not None, leg  # The route was priced at this table a moment ago.
        found.append(
            QuotedConversion(
                provider=leg.source.participant,
                from_currency=source,
                to_currency=target,
                amount_minor=leg.amount_minor,
                converted_minor=leg.converted_minor,
                rate=str(priced.rate.bid if priced.side is RateSide.BID else priced.rate.ask),
                side=priced.side.value,
                rate_provider=leg.rate_provider,
                valid_until_ns=_ns(priced.rate.valid_until),
            )
        )
    return tuple(found)


def _ns(moment: datetime | None) -> int:
    if moment is None:
        return 2**63 - 1
    return int(moment.timestamp()) * NS_PER_SECOND + moment.microsecond * 1000


def bookings_of(chain: Sequence[Transfer]) -> tuple[Booking, ...]:
    return tuple(Booking(t.debit_account, t.credit_account, t.amount, t.code) for t in chain)


AccountInfo = Callable[[int], tuple[str, str]]  # account id -> (owner BIC, currency)


def holds_for(
    quote_id: str,
    chain: Sequence[Transfer],
    payer: str,
    account_info: AccountInfo,
    clearing: dict[str, int],
) -> tuple[Hold, ...]:
    """The holds a quote places: for every account the chain leaves poorer (its net debit) that
    is not the payer's, that net debit, held against the currency's clearing account. Accounts
    a chain only passes value through (credited, then debited the same) need no hold."""
    net: dict[int, int] = defaultdict(int)
    for transfer in chain:
        net[transfer.debit_account] -= transfer.amount
        net[transfer.credit_account] += transfer.amount
    holds: list[Hold] = []
    for account_id in sorted(net):
        owner, currency = account_info(account_id)
        if net[account_id] >= 0 or owner == payer or currency not in clearing:
            continue
        holds.append(
            Hold(
                transfer_id=transfer_id_for(f"fx-quote:{quote_id}:hold:{len(holds)}"),
                account_id=account_id,
                clearing_id=clearing[currency],
                amount_minor=-net[account_id],
                currency=currency,
                owner=owner,
            )
        )
    return tuple(holds)


def hold_transfers(quote: FxQuote) -> list[Transfer]:
    """The pending transfers that place a quote's holds (one linked chain: all or none), each
    expiring with the quote. ``now_ns``-independent: the timeout counts from the ledger's own
    timestamp of the hold, which is at or after ``created_ns``."""
    timeout = max(1, -(-(quote.expires_ns - quote.created_ns) // NS_PER_SECOND))
    transfers = [
        Transfer(
            hold.transfer_id,
            hold.account_id,
            hold.clearing_id,
            hold.amount_minor,
            _PENDING | LINKED,
            timeout=timeout,
            code=CODE_QUOTE_HOLD,
            ref=quote.quote_id[:140],
        )
        for hold in quote.holds
    ]
    if transfers:
        transfers[-1] = transfers[-1]._replace(flags=_PENDING)
    return transfers


def void_id(quote: FxQuote, payment_id: str, index: int) -> int:
    return transfer_id_for(f"fx-quote:{quote.quote_id}:void:{index}:{payment_id}")


def settlement_chain(quote: FxQuote, payment_id: str) -> list[Transfer]:
    """The linked chain that settles ``payment_id`` at ``quote``: void every hold, then the quoted
    bookings under the payment's own leg ids (so recovery finds them as any gross chain)."""
    chain = [
        Transfer(
            void_id(quote, payment_id, index),
            flags=_VOID | LINKED,
            pending_id=hold.transfer_id,
            code=CODE_QUOTE_HOLD,
        )
        for index, hold in enumerate(quote.holds)
    ]
    ref = quote.ref[:140]
    chain.extend(
        Transfer(
            leg_id(payment_id, position),
            booking.debit_account,
            booking.credit_account,
            booking.amount_minor,
            LINKED,
            code=booking.code,
            ref=ref,
        )
        for position, booking in enumerate(quote.bookings)
    )
    chain[-1] = chain[-1]._replace(flags=chain[-1].flags & ~LINKED)
    return chain


def mismatch(quote: FxQuote, payment: Payment) -> str:
    """Why ``payment`` cannot settle at ``quote`` ("" when its terms are the quote's)."""
    checks = (
        (payment.creditor_agent, quote.creditor_agent, "creditor agent"),
        (payment.currency, quote.currency, "currency"),
        (payment.creditor_currency, quote.creditor_currency, "creditor currency"),
        (payment.amount_type, quote.amount_type, "amount type"),
        (payment.amount_minor, quote.fixed_minor, "amount"),
    )
    for given, quoted, what in checks:
        if given != quoted:
            return f"the payment's {what} {given} is not the quote's {quoted}"
    return ""
