"""The simulated payment workload: seeded, deterministic, integer money.

For each simulated day and each corridor direction, payments are drawn until they carry the
calibrated daily value (``Calibration.daily_usd_cents``); the last payment takes the remainder, so
the day's value per direction is exact in US cents. Domestic interbank payments are added per
country in proportion to the cross-border value its banks pay and receive.

Invariants:
- Same (calibration, network, seed, day, scale, share) -> the same payments, in the same order.
- Randomness comes only from ``numpy.random.default_rng((seed, day))``; sizes are drawn as floats
  and turned into ``int`` US cents once, then into minor units with ``Fraction`` (``Rates``).
- Every amount is a positive ``int``; payments are sorted by (arrival second, payment id).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from sco_settle.domain.account_key import AccountKeyKind
from sco_settle.network import Network
from sco_settle.payments.model import AmountType, Party, Payment, Priority
from sco_settle.sim.calibration import Calibration, Rates, Workload
from sco_settle.sim.retail import CROSS_BORDER as RETAIL_CROSS_BORDER
from sco_settle.sim.retail import (
    RetailCycle,
    SettlementInstruction,
    check_flows,
    draw_retail_payments,
    retail_cycles,
)

SECONDS_PER_DAY = 86_400
DOMESTIC = "domestic"
CROSS_BORDER = "cross-border"
_DRAW_ROUNDS_MAX = 64


@dataclass(frozen=True, slots=True)
class SimPayment:
    """A payment with what the reports need to know about it."""

    payment: Payment
    day: int
    arrival_s: int  # seconds after the start of the run (day 0, 00:00)
    kind: str  # CROSS_BORDER or DOMESTIC
    payer_country: str
    payee_country: str
    corridor: str  # "CN-RU" (calibration order) or the country, for domestic payments
    group: str
    value_cny_minor: int  # the instructed amount in CNY fen, for aggregation across currencies
    provider: str = ""  # the payment-service provider whose net obligation it settles, if any


@dataclass(frozen=True, slots=True)
class Flow:
    """One direction of one corridor (or one country's domestic traffic) on one day."""

    payer_country: str
    payee_country: str
    corridor: str
    group: str
    kind: str
    usd_cents: int


def commercial_banks(
    network: Network, exclude: frozenset[str] = frozenset()
) -> dict[str, list[str]]:
    """Country -> BICs of its commercial banks (sorted): the simulated payers and payees, except
    ``exclude`` (the banks that take part only as payment-service providers' settlement banks)."""
    banks: dict[str, list[str]] = defaultdict(list)
    for participant in network.participants:
        if participant.kind.value == "commercial_bank" and participant.bic not in exclude:
            banks[participant.country].append(participant.bic)
    return {country: sorted(bics) for country, bics in sorted(banks.items())}


def held_currencies(network: Network) -> dict[str, frozenset[str]]:
    """BIC -> currencies it can pay in (its settlement accounts and the vostros kept for it)."""
    held: dict[str, set[str]] = defaultdict(set)
    for key in network.accounts_by_key:
        if key.kind in (AccountKeyKind.SETTLEMENT, AccountKeyKind.VOSTRO):
            held[key.owner].add(key.currency)
    return {bic: frozenset(codes) for bic, codes in held.items()}


def daily_flows(
    calibration: Calibration, scale: Fraction, share: Fraction | None, banks: dict[str, list[str]]
) -> list[Flow]:
    """Every flow of one day: corridor directions in file order, then domestic by country."""
    flows: list[Flow] = []
    touched: dict[str, int] = defaultdict(int)
    for corridor in calibration.corridors:
        if corridor.a not in banks or corridor.b not in banks:
            continue  # A side without commercial banks cannot pay or be paid.
        for payer, payee in ((corridor.a, corridor.b), (corridor.b, corridor.a)):
            cents = calibration.daily_usd_cents(corridor, payer, scale, share)
            flows.append(Flow(payer, payee, corridor.name, corridor.group, CROSS_BORDER, cents))
            touched[payer] += cents
            touched[payee] += cents
    ratio = calibration.workload.domestic_ratio
    for country in sorted(touched):
        if len(banks[country]) < 2:
            continue
        value = ratio * touched[country]
        cents = value.numerator // value.denominator
        flows.append(Flow(country, country, country, DOMESTIC, DOMESTIC, cents))
    return flows


def _sizes_usd_cents(rng: np.random.Generator, workload: Workload, target: int) -> list[int]:
    """Lognormal sizes (int cents, drawn once) adding up exactly to ``target``."""
    if target <= 0:
        return []
    median_cents = workload.size_median_usd * 100
    max_cents = workload.size_max_usd * 100
    mean_cents = median_cents * float(np.exp(workload.size_sigma**2 / 2))
    sizes: list[int] = []
    total = 0
    for _ in range(_DRAW_ROUNDS_MAX):
        remaining = target - total
        block = max(16, int(1.25 * remaining / mean_cents) + 1)
        draws = rng.lognormal(np.log(median_cents), workload.size_sigma, block)
        cents = np.clip(np.rint(draws), 100, max_cents).astype(np.int64)
        for size in cents.tolist():
            if total + size >= target:
                sizes.append(target - total)  # The last payment takes the remainder: exact total.
                return sizes
            sizes.append(size)
            total += size
    raise AssertionError(f"could not reach the daily target {target} in {_DRAW_ROUNDS_MAX} rounds")


def _arrival_seconds(rng: np.random.Generator, workload: Workload, count: int) -> np.ndarray:
    """Arrival seconds after midnight: two intraday peaks, truncated to business hours."""
    weights = np.array([float(peak.weight) for peak in workload.peaks])
    open_s, close_s = workload.open_minute * 60, workload.close_minute * 60
    which = rng.choice(len(workload.peaks), size=count, p=weights / weights.sum())
    centres = np.array([peak.minute * 60 for peak in workload.peaks])[which]
    spreads = np.array([peak.sd_minutes * 60 for peak in workload.peaks])[which]
    seconds = rng.normal(centres, spreads)
    for _ in range(_DRAW_ROUNDS_MAX):
        outside = (seconds < open_s) | (seconds >= close_s)
        if not outside.any():
            break
        seconds[outside] = rng.normal(centres[outside], spreads[outside])
    return np.clip(np.floor(seconds), open_s, close_s - 1).astype(np.int64)


def generate_day(
    calibration: Calibration,
    network: Network,
    rates: Rates,
    *,
    seed: int,
    day: int,
    scale: Fraction,
    share: Fraction | None = None,
) -> list[SimPayment]:
    """The payments of simulated day ``day`` (0-based), sorted by arrival then id."""
    assert seed >= 0 and day >= 0, (seed, day)
    rng = np.random.default_rng((seed, day))
    workload = calibration.workload
    retail = calibration.retail
    banks = commercial_banks(network, retail.settlement_only_banks if retail else frozenset())
    held = held_currencies(network)
    drafts: list[tuple[int, int, Flow, str, str, str, int, bool]] = []
    for flow in daily_flows(calibration, scale, share, banks):
        sizes = _sizes_usd_cents(rng, workload, flow.usd_cents)
        if not sizes:
            continue
        count = len(sizes)
        arrivals = _arrival_seconds(rng, workload, count)
        payer_index = rng.integers(0, len(banks[flow.payer_country]), count)
        if flow.kind == DOMESTIC:  # Never pay oneself: draw among the others.
            payee_index = rng.integers(0, len(banks[flow.payee_country]) - 1, count)
            payee_index = payee_index + (payee_index >= payer_index)
        else:
            payee_index = rng.integers(0, len(banks[flow.payee_country]), count)
        urgent = rng.random(count) < float(workload.urgent_share)
        same_currency = rng.random(count) < float(workload.same_currency_share)
        for i in range(count):
            payer = banks[flow.payer_country][int(payer_index[i])]
            payee = banks[flow.payee_country][int(payee_index[i])]
            payee_code = network.home_currency(payee)
            payer_code = network.home_currency(payer)
            if same_currency[i] and payee_code in held.get(payer, frozenset()):
                payer_code = payee_code
            drafts.append(
                (
                    int(arrivals[i]),
                    len(drafts),
                    flow,
                    payer,
                    payee,
                    payer_code,
                    sizes[i],
                    bool(urgent[i]),
                )
            )
    drafts.sort(key=lambda draft: (draft[0], draft[1]))
    return [_payment(draft, day, n, network, rates) for n, draft in enumerate(drafts)]


def _payment(
    draft: tuple[int, int, Flow, str, str, str, int, bool],
    day: int,
    number: int,
    network: Network,
    rates: Rates,
) -> SimPayment:
    second, _, flow, payer, payee, code, usd_cents, urgent = draft
    amount_minor = max(rates.usd_cents_to_minor(usd_cents, code), 1)
    payment_id = f"SIM-D{day:03d}-{number:06d}"
    role = ("customer", "customer") if flow.kind == DOMESTIC else ("importer", "exporter")
    payment = Payment(
        payment_id=payment_id,
        debtor_agent=payer,
        creditor_agent=payee,
        amount_minor=amount_minor,
        currency=code,
        creditor_currency=network.home_currency(payee),
        debtor=Party(f"{flow.payer_country} {role[0]} {number % 97:02d}"),
        creditor=Party(f"{flow.payee_country} {role[1]} {number % 89:02d}"),
        end_to_end_id=payment_id,
        remittance_info=f"corridor={flow.corridor} group={flow.group}",
        priority=Priority.URGENT if urgent else Priority.NORMAL,
    )
    return SimPayment(
        payment=payment,
        day=day,
        arrival_s=day * SECONDS_PER_DAY + second,
        kind=flow.kind,
        payer_country=flow.payer_country,
        payee_country=flow.payee_country,
        corridor=flow.corridor,
        group=flow.group,
        value_cny_minor=rates.to_cny_minor(amount_minor, code),
    )


def psp_settlement_payments(
    cycles: list[RetailCycle],
    network: Network,
    rates: Rates,
    corridors: dict[frozenset[str], str],
    cutoff_minute: int,
) -> list[SimPayment]:
    """The payment-service providers' settlement instructions of one day's cycles as interbank
    payments, all arriving at the cycle's cut-off; ``corridors``: country pair -> name."""
    found: list[SimPayment] = []
    for cycle in cycles:
        arrival_s = cycle.day * SECONDS_PER_DAY + cutoff_minute * 60
        for instruction in cycle.instructions:
            payment_id = f"PSP-D{cycle.day:03d}-{len(found):04d}"
            sim = _settlement_payment(payment_id, instruction, network, rates)
            found.append(replace(sim, day=cycle.day, arrival_s=arrival_s))
    return [replace(sim, corridor=_corridor_name(sim, corridors)) for sim in found]


def _corridor_name(sim: SimPayment, corridors: dict[frozenset[str], str]) -> str:
    if sim.kind == DOMESTIC:
        return sim.payer_country
    pair = frozenset((sim.payer_country, sim.payee_country))
    return corridors.get(pair, "-".join(sorted(pair)))


def _settlement_payment(
    payment_id: str, instruction: SettlementInstruction, network: Network, rates: Rates
) -> SimPayment:
    """The payment (day, arrival and corridor left for the caller to set)."""
    payer = network.participant(instruction.debtor_bank).country
    payee = network.participant(instruction.creditor_bank).country
    fixed_currency = (
        instruction.creditor_currency
        if instruction.amount_type is AmountType.RECEIVE
        else instruction.debtor_currency
    )
    payment = Payment(
        payment_id=payment_id,
        debtor_agent=instruction.debtor_bank,
        creditor_agent=instruction.creditor_bank,
        amount_minor=instruction.amount_minor,
        currency=instruction.debtor_currency,
        creditor_currency=instruction.creditor_currency,
        debtor=Party(f"{instruction.provider} settlement"),
        creditor=Party(f"{instruction.provider} settlement"),
        end_to_end_id=payment_id,
        remittance_info=f"psp={instruction.provider} scope={instruction.scope}",
        # An ASSUMPTION, as RTGS systems commonly do for ancillary systems' settlement (TARGET2
        # settles it "highly urgent"): ahead of the banks' normal payments in the queue.
        priority=Priority.URGENT,
        amount_type=instruction.amount_type,
    )
    return SimPayment(
        payment=payment,
        day=0,
        arrival_s=0,
        kind=CROSS_BORDER if instruction.scope == RETAIL_CROSS_BORDER else DOMESTIC,
        payer_country=payer,
        payee_country=payee,
        corridor="",
        group=f"psp:{instruction.provider}",
        value_cny_minor=rates.to_cny_minor(instruction.amount_minor, fixed_currency),
        provider=instruction.provider,
    )


@dataclass(frozen=True, slots=True)
class PspDay:
    """The payment-service providers' daily cycles and the interbank payments settling them."""

    cycles: list[RetailCycle]
    payments: list[SimPayment]


def psp_day(
    calibration: Calibration,
    network: Network,
    rates: Rates,
    *,
    seed: int,
    day: int,
    scale: Fraction,
    on: dt.date,
) -> PspDay:
    """Day ``day``'s retail payments (dated ``on``), netted per provider, as settlement payments
    arriving at the cycle's cut-off."""
    retail = calibration.retail
    assert retail is not None, "no retail flows in this calibration"
    check_flows(retail, network, on)
    drawn = draw_retail_payments(retail, network, rates, seed=seed, day=day, scale=scale)
    cycles = retail_cycles(day, drawn, network, rates)
    corridors = {frozenset((c.a, c.b)): c.name for c in calibration.corridors}
    cutoff = retail.cycle_cutoff_minute
    return PspDay(cycles, psp_settlement_payments(cycles, network, rates, corridors, cutoff))
