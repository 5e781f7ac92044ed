"""The netting of payment-service providers' retail payments conserves value (sim/retail.py).

Payments are drawn over the shipped network's providers, their settlement currencies and banks,
with any amounts: per provider and currency the net positions add up to zero; per provider and
pair, the gross paid to (collected from) the local side is what settlement carries into (out of)
the local currency plus what nets out; and the domestic settlement payments discharge every
bank's position except the principal bank's, whose customers' position stays on its own books.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from sco_settle.network import load_network
from sco_settle.payments.model import AmountType
from sco_settle.sim.calibration import Rates, load_calibration
from sco_settle.sim.retail import (
    CROSS_BORDER,
    DOMESTIC,
    RetailPayment,
    carried_local_minor,
    check_flows,
    draw_retail_payments,
    net_pairs,
    net_positions,
    settlement_instructions,
)

NETWORK = load_network("sco")
PROVIDERS = {psp.id: psp for psp in NETWORK.payment_service_providers}
AMOUNTS = st.integers(min_value=1, max_value=10**12)


@st.composite
def retail_payment(draw: st.DrawFn) -> RetailPayment:
    psp = PROVIDERS[draw(st.sampled_from(sorted(PROVIDERS)))]
    currencies = sorted({bank.currency for bank in psp.settlement_banks})
    payer_currency = draw(st.sampled_from(currencies))
    payee_currency = draw(st.sampled_from(currencies))
    return RetailPayment(
        provider=psp.id,
        payer_bank=draw(st.sampled_from(psp.banks_for(payer_currency))),
        payer_currency=payer_currency,
        payer_amount_minor=draw(AMOUNTS),
        payee_bank=draw(st.sampled_from(psp.banks_for(payee_currency))),
        payee_currency=payee_currency,
        payee_amount_minor=draw(AMOUNTS),
    )


PAYMENTS = st.lists(retail_payment(), max_size=60)


@settings(max_examples=100, deadline=None)
@given(PAYMENTS)
def test_net_positions_add_up_to_zero_per_provider_and_currency(payments) -> None:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for key, amount in net_positions(payments).items():
        totals[(key.provider, key.currency)] += amount
    assert all(total == 0 for total in totals.values()), totals
    gross = sum(p.payer_amount_minor + p.payee_amount_minor for p in payments)
    moved = sum(abs(amount) for amount in net_positions(payments).values())
    assert moved <= 2 * gross  # netting never creates obligations


@settings(max_examples=100, deadline=None)
@given(PAYMENTS)
def test_gross_is_what_settlement_carries_plus_what_nets_out(payments) -> None:
    instructions = settlement_instructions(payments, PROVIDERS, NETWORK)
    nettings = net_pairs(payments, PROVIDERS, NETWORK)
    for netting in nettings:
        own = [
            p for p in payments
            if p.provider == netting.provider
            and {p.payer_currency, p.payee_currency} == {netting.hub_currency,
                                                         netting.local_currency}
        ]  # fmt: skip
        paid = sum(p.payee_amount_minor for p in own if p.payee_currency == netting.local_currency)
        collected = sum(
            p.payer_amount_minor for p in own if p.payer_currency == netting.local_currency
        )
        into, out = carried_local_minor(instructions, netting)
        assert paid == into + netting.netted_local_minor
        assert collected == out + netting.netted_local_minor
        assert into == 0 or out == 0  # one payment per pair and cycle, in one direction
    # Exactly one cross-border payment per provider and pair that does not net to zero.
    cross = [i for i in instructions if i.scope == CROSS_BORDER]
    pairs = [(i.provider, frozenset((i.debtor_currency, i.creditor_currency))) for i in cross]
    assert len(pairs) == len(set(pairs))
    assert len(cross) == sum(1 for n in nettings if n.position_local_minor != 0)
    assert all(i.amount_minor > 0 for i in instructions)


@settings(max_examples=100, deadline=None)
@given(PAYMENTS)
def test_domestic_settlement_discharges_every_bank_but_the_principal(payments) -> None:
    remaining: dict[tuple[str, str, str], int] = defaultdict(int)
    for key, amount in net_positions(payments).items():
        if key.party != key.provider:
            remaining[(key.provider, key.party, key.currency)] = amount
    for instruction in settlement_instructions(payments, PROVIDERS, NETWORK):
        if instruction.scope != DOMESTIC:
            continue
        assert instruction.amount_type is AmountType.SEND
        assert instruction.debtor_currency == instruction.creditor_currency
        code, amount = instruction.debtor_currency, instruction.amount_minor
        remaining[(instruction.provider, instruction.creditor_bank, code)] -= amount
        remaining[(instruction.provider, instruction.debtor_bank, code)] += amount
    for (provider, bank, code), amount in remaining.items():
        if bank != PROVIDERS[provider].principal_bank(code):
            assert amount == 0, (provider, bank, code)


def test_drawn_retail_payments_are_deterministic_small_and_operating() -> None:
    calibration = load_calibration()
    retail = calibration.retail
    assert retail is not None
    check_flows(retail, NETWORK, dt.date(2026, 1, 5))
    rates = Rates.load(calibration.usd_cny)
    one = draw_retail_payments(retail, NETWORK, rates, seed=3, day=0, scale=Fraction(1))
    again = draw_retail_payments(retail, NETWORK, rates, seed=3, day=0, scale=Fraction(1))
    other = draw_retail_payments(retail, NETWORK, rates, seed=4, day=0, scale=Fraction(1))
    assert one == again and one != other
    assert len(one) == sum(flow.per_day for flow in retail.flows)
    # A small median: tens of USD (CNY 7.2 per USD in the calibration).
    values = sorted(rates.to_cny_minor(p.payee_amount_minor, p.payee_currency) for p in one)
    median_usd = Fraction(values[len(values) // 2], 720)
    assert 20 <= median_usd <= 100, median_usd
    assert max(values) <= retail.size_max_usd * 720 + 720
    # No provider carries anything in Kyrgyzstan (UnionPay exited, the MoUs do not operate).
    kgs = [p for p in one if "KGS" in (p.payer_currency, p.payee_currency)]
    assert not kgs
