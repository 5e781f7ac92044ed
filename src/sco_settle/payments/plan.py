"""From a route to the ledger: the linked chain of transfers that settles a payment.

Every leg of a route moves value between two ledger accounts in one currency; a conversion (a
liquidity provider's FX or a central bank's swap-line draw) books both currencies. All transfers of
a payment form one linked chain, so the ledger applies them all or none: payment-versus-payment.

Leg bookings (dr = debit, cr = credit; ``settlement:X:c`` is X's account in c at c's central
bank; a central bank's own ``settlement`` account is its transit account):

| leg | dr | cr |
|---|---|---|
| settlement_in m -> A | settlement:m:c | settlement:A:c |
| settlement_out A -> m | settlement:A:c | settlement:m:c |
| in then out through A | settlement:m1:c | settlement:m2:c (one transfer, A is not touched) |
| nostro_debit h -> s | vostro:s:h:c | settlement:s:c |
| vostro_credit s -> h | settlement:s:c | vostro:s:h:c |
| fx at P, a -> b (mid-route) | P's account the leg before credited | fx-income:P:a (P keeps) |
| ... and P is the central bank of a | that account | issuance:P:a (the rest: retired) |
| ... and P is the central bank of b | issuance:P:b | settlement:P:b (issued, then paid on) |
| fx at the debtor or creditor agent (first, last leg) | (none: in its own books) | |
| swap_line D(a) -> P(b) | settlement:D:a; swap-line:D:P:b | swap-line:P:D:a; settlement:P:b |

A conversion is the two transfers around it through the provider's own accounts: the leg before
credits P's account in a, the leg after debits P's account in b. What P keeps beyond the mid
price (spread and rounding, ``kept_by_converter``) moves to its FX income account in a, so its
FX result can be reported. A central bank's facility retires the currency it buys when it is its
own and issues the currency it sells when it is its own. Consecutive conversions at one provider
are one conversion (a cross through its books). Fees stay where a route's amounts step down (with
the intermediary that charged them), so the chain conserves value per currency by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from fractions import Fraction

from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.ids import ENGINE_ID_MIN, ID_MAX
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.payments.routing import EdgeKind, Leg, Route

LINKED = int(TransferFlags.LINKED)
CODE_PAYMENT = 10
CODE_SWAP_DRAW = 11
CODE_LSM = 12
CODE_NETTING = 13
CODE_RETURN = 14
CODE_FX = 16  # a conversion's bookings inside a payment's chain (income, issue, retire)


class PlanError(ValueError):
    """The route needs an account the network does not have (a configuration fault)."""


def transfer_id_for(key: str) -> int:
    """A deterministic transfer id in the engine's reserved range (``ENGINE_ID_MIN`` up, which no
    client may write): the same payment leg always gets the same id, so after a crash the
    engine finds the chain it applied (``payments.recovery``) and never applies it twice."""
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "big")
    return ENGINE_ID_MIN + digest % (ID_MAX - ENGINE_ID_MIN)


def leg_id(payment_id: str, position: int) -> int:
    """The id of leg ``position`` of the chain that settles ``payment_id`` gross."""
    return transfer_id_for(f"payment:{payment_id}:leg:{position}")


def return_leg_id(payment_id: str, position: int) -> int:
    """The id of leg ``position`` of the chain that returns ``payment_id``."""
    return transfer_id_for(f"payment:{payment_id}:return:{position}")


def lsm_ids(payment_id: str, position: int = 0) -> tuple[int, int]:
    """(debit, credit): the two transfers through the clearing account that settle leg
    ``position`` of ``payment_id`` in an LSM chain (a one-currency payment has one leg, 0; a
    cross-currency one, ``payments.lsm_fx``, one per booking of its route)."""
    key = f"payment:{payment_id}:lsm" + (f":{position}" if position else "")
    return transfer_id_for(f"{key}:debit"), transfer_id_for(f"{key}:credit")


AccountLookup = Callable[[AccountKey], int | None]
# (debit account, credit account, amount in minor units, transfer code)
Booking = tuple[AccountKey, AccountKey, int, int]


def plan_route(
    route: Route, payment_id: str, lookup: AccountLookup, ref: str = ""
) -> list[Transfer]:
    """The linked chain for ``route``; ``lookup`` maps an account key to its ledger id."""
    legs: list[Booking] = []
    route_legs = route.legs
    index = 0
    while index < len(route_legs):
        leg = route_legs[index]
        source, target, currency = (
            leg.source.participant,
            leg.target.participant,
            leg.source.currency,
        )
        following = route_legs[index + 1] if index + 1 < len(route_legs) else None
        if (
            leg.kind is EdgeKind.SETTLEMENT_IN
            and following is not None
            and following.kind is EdgeKind.SETTLEMENT_OUT
            and following.amount_minor == leg.converted_minor
        ):
            # Member to member through their common settlement agent: one transfer.
            legs.append(
                (
                    AccountKey.settlement(source, currency),
                    AccountKey.settlement(following.target.participant, currency),
                    leg.amount_minor,
                    CODE_PAYMENT,
                )
            )
            index += 2
            continue
        if leg.kind is EdgeKind.FX:
            run = _fx_run(route_legs, index)
            if legs and index + len(run) < len(route_legs):
                legs.extend(_fx_bookings(run, legs[-1][1], lookup))
            index += len(run)
            continue
        legs.extend(_leg_bookings(leg.kind, source, target, currency, leg))
        index += 1
    transfers = []
    for position, (debit_key, credit_key, amount, code) in enumerate(legs):
        debit, credit = lookup(debit_key), lookup(credit_key)
        if debit is None or credit is None:
            missing = debit_key if debit is None else credit_key
            raise PlanError(f"route needs account '{missing}', which the network does not have")
        transfers.append(
            Transfer(
                leg_id(payment_id, position),
                debit,
                credit,
                amount,
                LINKED,
                code=code,
                ref=ref[:140],
            )
        )
    if transfers:
        transfers[-1] = transfers[-1]._replace(flags=0)  # The last transfer closes the chain.
    return transfers


def _fx_run(legs: Sequence[Leg], start: int) -> tuple[Leg, ...]:
    """The conversions at one provider starting at ``start`` (a cross through its books)."""
    provider = legs[start].source.participant
    end = start
    while (
        end < len(legs)
        and legs[end].kind is EdgeKind.FX
        and legs[end].source.participant == provider
    ):
        end += 1
    return tuple(legs[start:end])


def kept_by_converter(run: Sequence[Leg]) -> int:
    """What the provider of ``run`` (one or more consecutive conversions) keeps beyond the mid
    price, in the first leg's currency: the amount it received less the mid-price cost of what
    it delivered, rounded so the kept amount is never overstated. Never negative, because every
    quote is at or worse than mid for the customer."""
    mid = Fraction(1)
    for leg in run:
        assert leg.mid_factor is not None, leg
        mid *= leg.mid_factor
    received, delivered = run[0].amount_minor, run[-1].converted_minor
    cost = -(-delivered * mid.denominator // mid.numerator)  # ceil(delivered / mid)
    kept = received - cost
    assert kept >= 0, (run, kept)
    return kept


def _fx_bookings(
    run: Sequence[Leg], received_on: AccountKey, lookup: AccountLookup
) -> list[Booking]:
    """The bookings of a conversion between two legs (see the module docstring's table)."""
    provider = run[0].source.participant
    source, target = run[0].source.currency, run[-1].target.currency
    assert received_on.owner == provider and received_on.currency == source, (run, received_on)
    bookings: list[Booking] = []
    kept = kept_by_converter(run)
    if kept:
        bookings.append((received_on, AccountKey.fx_income(provider, source), kept, CODE_FX))
    issuance_in = AccountKey.issuance(provider, source)
    if lookup(issuance_in) is not None and run[0].amount_minor > kept:
        bookings.append((received_on, issuance_in, run[0].amount_minor - kept, CODE_FX))
    issuance_out = AccountKey.issuance(provider, target)
    if lookup(issuance_out) is not None:
        settlement = AccountKey.settlement(provider, target)
        bookings.append((issuance_out, settlement, run[-1].converted_minor, CODE_FX))
    return bookings


def _leg_bookings(
    kind: EdgeKind, source: str, target: str, currency: str, leg: Leg
) -> Sequence[Booking]:
    amount = leg.amount_minor
    if kind in (EdgeKind.SETTLEMENT_IN, EdgeKind.SETTLEMENT_OUT):
        return [
            (
                AccountKey.settlement(source, currency),
                AccountKey.settlement(target, currency),
                amount,
                CODE_PAYMENT,
            )
        ]
    if kind is EdgeKind.NOSTRO_DEBIT:  # source holds money on target's books
        return [
            (
                AccountKey.vostro(target, source, currency),
                AccountKey.settlement(target, currency),
                amount,
                CODE_PAYMENT,
            )
        ]
    if kind is EdgeKind.VOSTRO_CREDIT:  # target holds money on source's books
        return [
            (
                AccountKey.settlement(source, currency),
                AccountKey.vostro(source, target, currency),
                amount,
                CODE_PAYMENT,
            )
        ]
    if kind is EdgeKind.SWAP_LINE:  # source draws target's currency
        delivered = leg.target.currency
        return [
            (
                AccountKey.settlement(source, currency),
                AccountKey.swap_line(target, source, currency),
                amount,
                CODE_SWAP_DRAW,
            ),
            (
                AccountKey.swap_line(source, target, delivered),
                AccountKey.settlement(target, delivered),
                leg.converted_minor,
                CODE_SWAP_DRAW,
            ),
        ]
    raise PlanError(f"unknown leg kind {kind}")
