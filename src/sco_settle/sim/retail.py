"""Retail flows of the payment-service providers, and their netting into settlement payments.

A provider (``payment_service_providers`` in the network file) carries many small card or wallet
payments: a cardholder or wallet user pays a merchant abroad, in the merchant's currency. The
payments themselves never touch the interbank network: the payer's bank collects from its
customer, the merchant's bank credits the merchant. What crosses the network is the provider's
settlement of each daily cycle (``settlement_instructions``):

- per provider and currency pair (its home currency, the hub, and a local one), the local side
  nets: what local merchants were paid against what local payers were charged. The remainder
  moves in ONE interbank payment between the provider's principal settlement banks of the two
  currencies: into the local currency for exactly the shortfall (a fixed received amount), or out
  of it for exactly the surplus (a fixed sent amount). What the hub side costs or yields is the
  provider's own FX result, not modelled;
- per provider and currency, each other settlement bank of that currency settles its own net
  position with the principal bank in one domestic payment.

Invariants (``tests/sim/test_psp_netting.py`` checks them with hypothesis):
- Per provider and currency, the net positions of the banks and the provider's own add up to 0.
- Per provider and pair: gross paid to local merchants = what settlement delivers into the local
  currency + what nets out; gross collected from local payers = what settlement sends out of it
  + what nets out.
- Pure and deterministic: integers only; randomness only in ``draw_retail_payments``, from
  ``numpy.random.default_rng((seed, day, RETAIL_STREAM))``, a stream apart from the trade
  workload's, so switching retail flows on leaves the trade payments as they were.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from sco_settle.network.model import Network, PaymentServiceProvider
from sco_settle.payments.model import AmountType
from sco_settle.sim.calibration import Rates, RetailCalibration, RetailFlow

RETAIL_STREAM = 1  # the trade workload draws from (seed, day); retail from (seed, day, 1)
CROSS_BORDER = "cross-border"
DOMESTIC = "domestic"


class RetailError(ValueError):
    """The retail calibration names a provider, country or currency the network cannot carry."""


@dataclass(frozen=True, slots=True)
class RetailPayment:
    """One card or wallet payment: ``payer_amount_minor`` charged by the payer's bank,
    ``payee_amount_minor`` (the merchant's currency, the fixed side) credited by the payee's."""

    provider: str
    payer_bank: str
    payer_currency: str
    payer_amount_minor: int
    payee_bank: str
    payee_currency: str
    payee_amount_minor: int


@dataclass(frozen=True, slots=True)
class PositionKey:
    provider: str
    party: str  # a settlement bank's BIC, or the provider's id for its own position
    currency: str


@dataclass(frozen=True, slots=True)
class PairNetting:
    """One provider's netting of one currency pair in one cycle (local-currency minor units)."""

    provider: str
    hub_currency: str
    local_currency: str
    paid_local_minor: int  # gross paid to local merchants
    collected_local_minor: int  # gross charged to local payers

    @property
    def netted_local_minor(self) -> int:
        """What offsets within the pair and never crosses the network."""
        return min(self.paid_local_minor, self.collected_local_minor)

    @property
    def position_local_minor(self) -> int:
        """The provider's local position after netting: > 0 a surplus to send out, < 0 a
        shortfall to bring in."""
        return self.collected_local_minor - self.paid_local_minor


@dataclass(frozen=True, slots=True)
class SettlementInstruction:
    """An interbank payment that settles a provider's net obligation."""

    provider: str
    scope: str  # CROSS_BORDER (a pair's net) or DOMESTIC (a bank with its principal bank)
    debtor_bank: str
    debtor_currency: str
    creditor_bank: str
    creditor_currency: str
    amount_minor: int  # in the debtor's currency (SEND) or the creditor's (RECEIVE)
    amount_type: AmountType


@dataclass(frozen=True, slots=True)
class RetailCycle:
    """What one provider's daily cycle carried and how it nets: the report's figures."""

    day: int
    provider: str
    payments: int
    # What merchants were paid, per currency totalled and then valued in CNY fen at the mid.
    gross_value_cny_minor: int
    nettings: tuple[PairNetting, ...]
    instructions: tuple[SettlementInstruction, ...]


def hub_and_local(
    provider: PaymentServiceProvider, network: Network, pair: Iterable[str]
) -> tuple[str, str]:
    """The pair as (hub, local): the provider's home currency is the hub; in a pair without it,
    the alphabetically first currency is."""
    first, second = sorted(pair)
    home = network.country(provider.country).currency
    return (second, first) if second == home else (first, second)


def check_flows(retail: RetailCalibration, network: Network, day: dt.date) -> None:
    """Every flow names a provider of the network that operates in both countries on ``day``
    (its home country counts as operating) and settles both currencies."""
    providers = {psp.id: psp for psp in network.payment_service_providers}
    for flow in retail.flows:
        psp = providers.get(flow.provider)
        if psp is None:
            raise RetailError(f"retail flow {flow}: no payment-service provider {flow.provider!r}")
        for country in (flow.payer, flow.payee):
            if country != psp.country and not psp.operating_in(country, day):
                raise RetailError(
                    f"retail flow {flow}: {psp.id} does not operate in {country} on {day}"
                )
            code = network.country(country).currency
            if not psp.banks_for(code):
                raise RetailError(f"retail flow {flow}: {psp.id} has no settlement bank in {code}")


def draw_retail_payments(
    retail: RetailCalibration,
    network: Network,
    rates: Rates,
    *,
    seed: int,
    day: int,
    scale: Fraction,
) -> list[RetailPayment]:
    """The retail payments of day ``day``'s cycle, flow by flow in calibration order."""
    assert seed >= 0 and day >= 0 and scale > 0, (seed, day, scale)
    rng = np.random.default_rng((seed, day, RETAIL_STREAM))
    providers = {psp.id: psp for psp in network.payment_service_providers}
    payments: list[RetailPayment] = []
    for flow in retail.flows:
        count = flow.per_day * scale.numerator // scale.denominator
        if count > 0:
            payments.extend(
                _flow_payments(rng, retail, providers[flow.provider], flow, count, network, rates)
            )
    return payments


def _flow_payments(
    rng: np.random.Generator,
    retail: RetailCalibration,
    psp: PaymentServiceProvider,
    flow: RetailFlow,
    count: int,
    network: Network,
    rates: Rates,
) -> Iterable[RetailPayment]:
    payer_code = network.country(flow.payer).currency
    payee_code = network.country(flow.payee).currency
    payer_banks, payee_banks = psp.banks_for(payer_code), psp.banks_for(payee_code)
    draws = rng.lognormal(np.log(retail.size_median_usd * 100), retail.size_sigma, count)
    cents = np.clip(np.rint(draws), 1, retail.size_max_usd * 100).astype(np.int64).tolist()
    payer_index = rng.integers(0, len(payer_banks), count).tolist()
    payee_index = rng.integers(0, len(payee_banks), count).tolist()
    for usd_cents, payer_at, payee_at in zip(cents, payer_index, payee_index, strict=True):
        payee_minor = max(rates.usd_cents_to_minor(int(usd_cents), payee_code), 1)
        yield RetailPayment(
            provider=psp.id,
            payer_bank=payer_banks[payer_at],
            payer_currency=payer_code,
            payer_amount_minor=max(rates.convert_minor(payee_minor, payee_code, payer_code), 1),
            payee_bank=payee_banks[payee_at],
            payee_currency=payee_code,
            payee_amount_minor=payee_minor,
        )


def net_positions(payments: Iterable[RetailPayment]) -> dict[PositionKey, int]:
    """Each party's net position per provider and currency (> 0: it is owed). The payer's bank
    owes the provider what it charged; the provider owes the payee's bank what it credited."""
    positions: dict[PositionKey, int] = defaultdict(int)
    for p in payments:
        positions[PositionKey(p.provider, p.payer_bank, p.payer_currency)] -= p.payer_amount_minor
        positions[PositionKey(p.provider, p.provider, p.payer_currency)] += p.payer_amount_minor
        positions[PositionKey(p.provider, p.payee_bank, p.payee_currency)] += p.payee_amount_minor
        positions[PositionKey(p.provider, p.provider, p.payee_currency)] -= p.payee_amount_minor
    return dict(sorted(positions.items(), key=lambda item: _position_order(item[0])))


def _position_order(key: PositionKey) -> tuple[str, str, str]:
    return (key.provider, key.currency, key.party)


def net_pairs(
    payments: Iterable[RetailPayment],
    providers: Mapping[str, PaymentServiceProvider],
    network: Network,
) -> list[PairNetting]:
    """Per provider and currency pair, the local side's gross paid and collected."""
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for p in payments:
        if p.payer_currency == p.payee_currency:
            continue  # One currency: it settles through the domestic positions alone.
        pair = (p.payer_currency, p.payee_currency)
        hub, local = hub_and_local(providers[p.provider], network, pair)
        cell = cells[(p.provider, hub, local)]
        if p.payee_currency == local:
            cell[0] += p.payee_amount_minor
        else:
            cell[1] += p.payer_amount_minor
    return [PairNetting(*key, paid, collected) for key, (paid, collected) in sorted(cells.items())]


def settlement_instructions(
    payments: Sequence[RetailPayment],
    providers: Mapping[str, PaymentServiceProvider],
    network: Network,
) -> list[SettlementInstruction]:
    """The cycle's interbank payments: one per provider, pair and direction, then one per other
    settlement bank and currency with the principal bank."""
    found = [
        instruction
        for netting in net_pairs(payments, providers, network)
        if (instruction := _pair_instruction(netting, providers[netting.provider])) is not None
    ]
    for key, amount in net_positions(payments).items():
        psp = providers[key.provider]
        if key.party == psp.id or amount == 0:
            continue
        principal = psp.principal_bank(key.currency)
        if key.party == principal:
            continue  # Its customers' position is on its own books.
        debtor, creditor = (principal, key.party) if amount > 0 else (key.party, principal)
        found.append(
            SettlementInstruction(
                psp.id,
                DOMESTIC,
                debtor,
                key.currency,
                creditor,
                key.currency,
                abs(amount),
                AmountType.SEND,
            )
        )
    return found


def _pair_instruction(
    netting: PairNetting, psp: PaymentServiceProvider
) -> SettlementInstruction | None:
    position = netting.position_local_minor
    if position == 0:
        return None
    hub_bank = psp.principal_bank(netting.hub_currency)
    local_bank = psp.principal_bank(netting.local_currency)
    if position < 0:  # A shortfall: exactly that much local currency must arrive.
        return SettlementInstruction(
            psp.id, CROSS_BORDER, hub_bank, netting.hub_currency,
            local_bank, netting.local_currency, -position, AmountType.RECEIVE,
        )  # fmt: skip
    return SettlementInstruction(
        psp.id, CROSS_BORDER, local_bank, netting.local_currency,
        hub_bank, netting.hub_currency, position, AmountType.SEND,
    )  # fmt: skip


def carried_local_minor(
    instructions: Iterable[SettlementInstruction], netting: PairNetting
) -> tuple[int, int]:
    """(into, out of) the pair's local currency: what its cross-border settlement instructions
    fix there (a received amount into it, a sent amount out of it)."""
    into = out = 0
    for instruction in instructions:
        if instruction.scope != CROSS_BORDER or instruction.provider != netting.provider:
            continue
        if instruction.creditor_currency == netting.local_currency and (
            instruction.debtor_currency == netting.hub_currency
        ):
            into += instruction.amount_minor
        elif instruction.debtor_currency == netting.local_currency and (
            instruction.creditor_currency == netting.hub_currency
        ):
            out += instruction.amount_minor
    return into, out


def gross_value_cny_minor(payments: Iterable[RetailPayment], rates: Rates) -> int:
    """What merchants were paid, totalled per currency, then valued in CNY fen (one rounding per
    currency, like the settlement payments' values, so a flow that nets nothing saves 0)."""
    paid: dict[str, int] = defaultdict(int)
    for payment in payments:
        paid[payment.payee_currency] += payment.payee_amount_minor
    return sum(rates.to_cny_minor(total, code) for code, total in sorted(paid.items()))


def retail_cycles(
    day: int,
    payments: Sequence[RetailPayment],
    network: Network,
    rates: Rates,
) -> list[RetailCycle]:
    """Day ``day``'s cycle of every provider that carried payments, in provider id order."""
    providers = {psp.id: psp for psp in network.payment_service_providers}
    by_provider: dict[str, list[RetailPayment]] = defaultdict(list)
    for payment in payments:
        by_provider[payment.provider].append(payment)
    cycles = []
    for provider_id in sorted(by_provider):
        own = by_provider[provider_id]
        cycles.append(
            RetailCycle(
                day=day,
                provider=provider_id,
                payments=len(own),
                gross_value_cny_minor=gross_value_cny_minor(own, rates),
                nettings=tuple(net_pairs(own, providers, network)),
                instructions=tuple(settlement_instructions(own, providers, network)),
            )
        )
    return cycles
