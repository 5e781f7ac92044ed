"""Settlement modes compared on one seed and one workload (``sco-settle simulate --compare``).

The same workload (same seed, days, scale and shares: ``sim.workload`` depends on nothing else)
runs through the engine in every settlement mode, then RTGS again with the liquidity-saving
mechanism off and with FIFO bypass (pairwise offsetting), then each stress scenario
(``sim.stress``) in every mode it applies to. Each run is reduced to its figures (``RunFigures``)
with the measures of ``sim.measures``, given for all payments, cross-border and domestic apart;
the BoF-PSS2 bounds are computed once, on the workload. ``sim.compare_report`` writes them.

Invariants:
- Every run sees the same payments (checked): differences between runs are the modes' and the
  stresses' alone.
- Deterministic: no clock, no unordered iteration into the figures (every mapping is built in
  sorted order); same options -> the same figures.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction

from sco_settle.network import Network, load_network
from sco_settle.payments.model import PaymentStatus
from sco_settle.payments.modes import Mode
from sco_settle.payments.union_config import UnionConfig, load_union
from sco_settle.sim.calibration import Calibration, Rates, load_calibration
from sco_settle.sim.measures import (
    Bounds,
    Liquidity,
    Scope,
    in_cny,
    liquidity_used,
    workload_bounds,
)
from sco_settle.sim.report import mechanism_of, percentile
from sco_settle.sim.run import (
    EPOCH_NS,
    NS_PER_SECOND,
    SimOptions,
    SimResult,
    UnionCreditUse,
    run_simulation,
)
from sco_settle.sim.stress import DEFAULT_STRESSES, Stress, parse_stress
from sco_settle.sim.workload import CROSS_BORDER, SimPayment

MODES = (Mode.RTGS, Mode.DNS, Mode.UNION)
# (run label, run number from 1, runs in all, simulated minutes done, minutes in all)
CompareProgress = Callable[[str, int, int, int, int], None]


class Lsm(enum.StrEnum):
    """The RTGS liquidity-saving mechanism in a run (``EngineSettings.liquidity_saving``)."""

    OFF = "off"  # a FIFO queue retried in order; nothing settles together
    ON = "on"  # gridlock resolution, cross-currency offsetting (the default; FIFO kept)
    ON_FIFO_BYPASS = "on-fifo-bypass"  # also pairwise offsetting out of FIFO order


@dataclass(frozen=True)
class CompareOptions:
    days: int = 1
    seed: int = 7
    scale: Fraction | None = None  # None: the calibration's default
    national_share: Fraction | None = None
    retail: bool = True
    modes: tuple[Mode, ...] = MODES
    stresses: tuple[str, ...] = DEFAULT_STRESSES
    lsm_variants: bool = True  # RTGS with the LSM off, and with FIFO bypass


@dataclass(frozen=True)
class RunPlan:
    label: str
    mode: Mode
    lsm: Lsm | None  # RTGS only
    stress: str  # the stress spec, "" for a baseline
    options: SimOptions


@dataclass(frozen=True, slots=True)
class Delays:
    """From arrival to settlement, seconds, over settled payments (nearest-rank percentiles)."""

    count: int
    mean_s: int  # floored
    p50_s: int
    p95_s: int


@dataclass(frozen=True, slots=True)
class Tally:
    count: int = 0
    value_cny_minor: int = 0

    def plus(self, value_cny_minor: int) -> Tally:
        return Tally(self.count + 1, self.value_cny_minor + value_cny_minor)


@dataclass(frozen=True)
class ScopeFigures:
    """One run's headline for one scope of payments."""

    submitted: Tally
    settled: Tally
    rejected: dict[str, Tally]  # ISO 20022 reason -> count and value
    delays: Delays
    liquidity: dict[str, Liquidity]  # currency -> gross, net, used (minor units)
    liquidity_cny: Liquidity  # the same added up in CNY fen


@dataclass(frozen=True, slots=True)
class SwapLineFigures:
    peak_drawn_cny_minor: int  # each line side's peak drawn, at mid, added up
    peak_bp_max: int  # the busiest side at its peak, in basis points of its agreed size
    tranches_drawn: int


@dataclass(frozen=True)
class RunFigures:
    label: str
    mode: Mode
    lsm: Lsm | None
    stress: str
    scopes: dict[Scope, ScopeFigures]
    directions: dict[str, tuple[Tally, Tally]]  # "CN>KZ" or "KZ domestic" -> submitted, settled
    swap_lines: SwapLineFigures
    union_credit: list[UnionCreditUse]
    carried_by: dict[str, Tally]  # cross-border settled, by what converted it (``mechanism_of``)
    ledger_verified: bool
    verify_text: str


@dataclass
class Comparison:
    options: CompareOptions
    scale: Fraction
    bounds: dict[Scope, dict[str, Bounds]]
    bounds_cny: dict[Scope, Bounds]
    runs: list[RunFigures] = field(default_factory=list)

    def baseline(self, mode: Mode, lsm: Lsm | None = None) -> RunFigures | None:
        wanted = lsm if lsm is not None else (Lsm.ON if mode is Mode.RTGS else None)
        return next(
            (r for r in self.runs if r.mode is mode and not r.stress and r.lsm == wanted), None
        )


def plan_runs(options: CompareOptions, network: Network, union: UnionConfig) -> list[RunPlan]:
    """Every run of the comparison, baselines first (so each stress has its baseline)."""
    base = SimOptions(
        days=options.days,
        seed=options.seed,
        scale=options.scale,
        national_share=options.national_share,
        retail=options.retail,
    )
    plans = [
        RunPlan(
            mode.value, mode, Lsm.ON if mode is Mode.RTGS else None, "", replace(base, mode=mode)
        )
        for mode in options.modes
    ]
    if Mode.RTGS in options.modes and options.lsm_variants:
        rtgs = replace(base, mode=Mode.RTGS)
        plans.append(
            RunPlan("rtgs lsm-off", Mode.RTGS, Lsm.OFF, "", replace(rtgs, liquidity_saving=False))
        )
        plans.append(
            RunPlan(
                "rtgs lsm-on-fifo-bypass",
                Mode.RTGS,
                Lsm.ON_FIFO_BYPASS,
                "",
                replace(rtgs, fifo_bypass=True),
            )
        )
    for spec in options.stresses:
        stress = parse_stress(spec, network, union)
        plans += _stressed(stress, options.modes, base, network, union)
    return plans


def _stressed(
    stress: Stress, modes: Iterable[Mode], base: SimOptions, network: Network, union: UnionConfig
) -> list[RunPlan]:
    return [
        RunPlan(
            f"{mode.value} {stress.spec}",
            mode,
            Lsm.ON if mode is Mode.RTGS else None,
            stress.spec,
            stress.apply(replace(base, mode=mode), network, union),
        )
        for mode in modes
        if stress.applies_to(mode)
    ]


def run_comparison(
    options: CompareOptions,
    progress: CompareProgress | None = None,
    calibration: Calibration | None = None,
) -> Comparison:
    """Run every plan and reduce each run to its figures (a run's payments are not kept)."""
    calibration = calibration or load_calibration()
    network = load_network("sco")
    rates = Rates.load(calibration.usd_cny)
    union = load_union()
    plans = plan_runs(options, network, union)
    comparison: Comparison | None = None
    workload_ids: list[str] = []
    for number, plan in enumerate(plans, start=1):

        def step(done: int, total: int, label: str = plan.label, number: int = number) -> None:
            if progress is not None:
                progress(label, number, len(plans), done, total)

        result = run_simulation(plan.options, calibration, step)
        ids = [sim.payment.payment_id for sim in result.payments]
        if comparison is None:
            comparison = _with_bounds(options, result, rates)
            workload_ids = ids
        assert ids == workload_ids, f"{plan.label}: the workload differs from the first run's"
        comparison.runs.append(figures_of(plan, result, rates, network, union.unit.code))
    assert comparison is not None, "a comparison runs at least one mode"
    return comparison


def _with_bounds(options: CompareOptions, result: SimResult, rates: Rates) -> Comparison:
    bounds = {scope: workload_bounds(result.payments, rates, scope) for scope in Scope}
    return Comparison(
        options,
        result.scale,
        bounds,
        {scope: bounds_in_cny(found, rates) for scope, found in bounds.items()},
    )


def bounds_in_cny(bounds: dict[str, Bounds], rates: Rates) -> Bounds:
    return Bounds(
        in_cny({c: b.gross_minor for c, b in bounds.items()}, rates),
        in_cny({c: b.lower_minor for c, b in bounds.items()}, rates),
        in_cny({c: b.upper_minor for c, b in bounds.items()}, rates),
    )


def liquidity_in_cny(liquidity: dict[str, Liquidity], rates: Rates) -> Liquidity:
    return Liquidity(
        in_cny({c: v.gross_minor for c, v in liquidity.items()}, rates),
        in_cny({c: v.net_minor for c, v in liquidity.items()}, rates),
        in_cny({c: v.used_minor for c, v in liquidity.items()}, rates),
        in_cny({c: v.upper_minor for c, v in liquidity.items()}, rates),
    )


def figures_of(
    plan: RunPlan, result: SimResult, rates: Rates, network: Network, unit: str
) -> RunFigures:
    return RunFigures(
        label=plan.label,
        mode=plan.mode,
        lsm=plan.lsm,
        stress=plan.stress,
        scopes={scope: _scope_figures(result, rates, scope) for scope in Scope},
        directions=_directions(result),
        swap_lines=_swap_lines(result, rates),
        union_credit=list(result.union_credit),
        carried_by=_carriers(result, network, unit),
        ledger_verified=result.verify_ok,
        verify_text=result.verify_text,
    )


def _scope_figures(result: SimResult, rates: Rates, scope: Scope) -> ScopeFigures:
    submitted, settled = Tally(), Tally()
    rejected: dict[str, Tally] = defaultdict(Tally)
    delays: list[int] = []
    for sim in result.payments:
        if not scope.includes(sim):
            continue
        final = result.finals[sim.payment.payment_id]
        submitted = submitted.plus(sim.value_cny_minor)
        if final.status is PaymentStatus.SETTLED:
            settled = settled.plus(sim.value_cny_minor)
            delays.append(_delay_s(sim, final.at_ns))
        else:
            rejected[final.reason] = rejected[final.reason].plus(sim.value_cny_minor)
    liquidity = liquidity_used(result, rates, scope)
    return ScopeFigures(
        submitted,
        settled,
        dict(sorted(rejected.items())),
        _delays(delays),
        liquidity,
        liquidity_in_cny(liquidity, rates),
    )


def _delay_s(sim: SimPayment, settled_ns: int) -> int:
    arrival_ns = EPOCH_NS + sim.arrival_s * NS_PER_SECOND
    return max(settled_ns - arrival_ns, 0) // NS_PER_SECOND


def _delays(values: list[int]) -> Delays:
    values.sort()
    mean = sum(values) // len(values) if values else 0
    return Delays(len(values), mean, percentile(values, 50), percentile(values, 95))


def direction_of(sim: SimPayment) -> str:
    """ "CN>KZ" for a cross-border payment, "KZ domestic" for a domestic one."""
    if sim.kind == CROSS_BORDER:
        return f"{sim.payer_country}>{sim.payee_country}"
    return f"{sim.payer_country} domestic"


def _directions(result: SimResult) -> dict[str, tuple[Tally, Tally]]:
    found: dict[str, tuple[Tally, Tally]] = {}
    for sim in result.payments:
        key = direction_of(sim)
        submitted, settled = found.get(key, (Tally(), Tally()))
        submitted = submitted.plus(sim.value_cny_minor)
        if result.finals[sim.payment.payment_id].status is PaymentStatus.SETTLED:
            settled = settled.plus(sim.value_cny_minor)
        found[key] = (submitted, settled)
    return dict(sorted(found.items()))


def _swap_lines(result: SimResult, rates: Rates) -> SwapLineFigures:
    sized = [use for use in result.swap_lines if use.limit_minor > 0]
    return SwapLineFigures(
        sum(rates.to_cny_minor(use.peak_drawn_minor, use.currency) for use in sized),
        max((use.peak_drawn_minor * 10_000 // use.limit_minor for use in sized), default=0),
        sum(1 for event in result.tranche_events if event.action == "draw"),
    )


CLEARING_UNION = "clearing_union"  # converted by the clearing union (its unit on the route)


def _carriers(result: SimResult, network: Network, unit: str) -> dict[str, Tally]:
    found: dict[str, Tally] = defaultdict(Tally)
    for sim in result.payments:
        final = result.finals[sim.payment.payment_id]
        if sim.kind != CROSS_BORDER or final.status is not PaymentStatus.SETTLED:
            continue
        on_unit = any(node.endswith(f"/{unit}") for node in final.route)
        mechanism = CLEARING_UNION if on_unit else mechanism_of(final.route, network)
        found[mechanism] = found[mechanism].plus(sim.value_cny_minor)
    return dict(sorted(found.items()))


def position_bp(used_minor: int, bounds: Bounds) -> int | None:
    """Where ``used_minor`` falls between the bounds: 0 at the lower, 10,000 at the upper
    (below 0 or above 10,000 outside them); None when the bounds coincide."""
    span = bounds.upper_minor - bounds.lower_minor
    if span <= 0:
        return None
    return (used_minor - bounds.lower_minor) * 10_000 // span
