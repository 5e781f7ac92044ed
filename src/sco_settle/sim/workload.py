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

from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from sco_settle.domain.account_key import AccountKeyKind
from sco_settle.network import Network
from sco_settle.payments.model import Party, Payment, Priority
from sco_settle.sim.calibration import Calibration, Rates, Workload

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


@dataclass(frozen=True, slots=True)
class Flow:
    """One direction of one corridor (or one country's domestic traffic) on one day."""

    payer_country: str
    payee_country: str
    corridor: str
    group: str
    kind: str
    usd_cents: int


def commercial_banks(network: Network) -> dict[str, list[str]]:
    """Country -> BICs of its commercial banks (sorted): the simulated payers and payees."""
    banks: dict[str, list[str]] = defaultdict(list)
    for participant in network.participants:
        if participant.kind.value == "commercial_bank":
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
    banks = commercial_banks(network)
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
