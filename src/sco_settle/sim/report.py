"""Reports of a simulation run: tables (CSV), key metrics, and scenario-versus-baseline deltas.

Definitions (all integers; amounts in minor units of their currency, or CNY fen ("cny_minor") when
currencies are added up, converted with the exact mid rates of ``sim.calibration.Rates``):

- value: the instructed amount of a payment (its payer's currency).
- gross liquidity, per currency: the sum of the values of settled payments paid in it, i.e. what
  payers would have to fund if every payment settled on its own.
- peak liquidity, per currency: for each participant, the largest cumulative net debit over the
  day (payments settled at once, in one ledger chain, are netted together), summed over
  participants. In RTGS this is the intraday liquidity actually used with the queue and the
  liquidity-saving mechanism.
- net liquidity (DNS), per currency: for each settlement cycle, each participant's net debit in
  it, summed over participants and cycles.
- used = peak (RTGS) or net (DNS); saved = gross - used.
- delay: from submission (the end of the minute the payment arrived in) to settlement.

Reports are byte-identical for the same run: no wall-clock time, every table sorted.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

from sco_settle.network import Network
from sco_settle.payments.liquidity_use import SettledFlow, liquidity_by_day
from sco_settle.payments.model import REASON_TEXT, AmountType, PaymentStatus, Reason
from sco_settle.payments.modes import Mode
from sco_settle.sim.calibration import Calibration, Rates
from sco_settle.sim.retail import carried_local_minor
from sco_settle.sim.run import EPOCH_NS, NS_PER_SECOND, Final, SimResult
from sco_settle.sim.workload import CROSS_BORDER, DOMESTIC, SECONDS_PER_DAY, SimPayment

DAY_NS = SECONDS_PER_DAY * NS_PER_SECOND
TIERS = ("member", "partner")

Row = tuple[object, ...]


@dataclass
class Table:
    header: tuple[str, ...]
    rows: list[Row] = field(default_factory=list)


@dataclass
class Report:
    """Everything written for one run: CSV tables, metrics, and the series the plots draw."""

    tables: dict[str, Table]
    metrics: dict[str, int | str]
    corridor_values: list[tuple[str, int, int]]  # (label, settled cny, rejected cny)
    liquidity_cny: list[tuple[str, int, int]]  # (currency, gross cny, used cny), all days
    waited_delays_s: list[int]
    swap_lines: list[tuple[str, int, int, int]]  # (label, limit, peak drawn, eod drawn)
    mode: Mode


def percentile(sorted_values: list[int], percent: int) -> int:
    """Nearest-rank percentile of sorted integers (0 for none): exact, no interpolation."""
    if not sorted_values:
        return 0
    rank = max((percent * len(sorted_values) + 99) // 100, 1)
    return sorted_values[rank - 1]


def decimal_text(value: Fraction, places: int = 6) -> str:
    """A Fraction as a decimal string: exact when it terminates, else rounded half-even."""
    quantum = Decimal(1).scaleb(-places)
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return format(exact.quantize(quantum).normalize(), "f")


def build_report(
    result: SimResult, calibration: Calibration, network: Network, rates: Rates
) -> Report:
    meta = {sim.payment.payment_id: sim for sim in result.payments}
    assert set(meta) == set(result.finals), "every submitted payment must end settled or rejected"
    tables: dict[str, Table] = {}
    corridor_table, corridor_values, corridor_metrics = _corridors(result, meta)
    tables["corridors"] = corridor_table
    tables["tiers"] = _tiers(result, meta, network)
    tables["liquidity"], liquidity_cny, liquidity_metrics = _liquidity(result, meta, rates)
    tables["delays"], waited, delay_metrics = _delays(result, meta)
    tables["swap_lines"], swap_rows, swap_metrics = _swap_lines(result)
    tables["rejections"], rejection_metrics = _rejections(result, meta)
    tables["mechanisms"] = _mechanisms(result, meta, network)
    tables["fx_providers"] = _fx_providers(result, network)
    tables["tranches"] = _tranches(result)
    tables["facilities"] = _facilities(result)
    if result.options.mode is Mode.DNS:
        tables["cycles"] = _cycles(result)
    tables["calibration"] = _calibration(result, calibration)
    if result.retail_cycles:
        tables["psp"], psp_metrics = _psp(result, meta)
        tables["psp_pairs"] = _psp_pairs(result)
    else:
        psp_metrics = {}
    metrics = _headline(result, meta)
    for part in (liquidity_metrics, delay_metrics, swap_metrics, rejection_metrics):
        metrics.update(part)
    metrics.update(corridor_metrics)
    metrics.update(psp_metrics)
    tables["summary"] = Table(COLUMNS["summary"], [(k, v) for k, v in metrics.items()])
    return Report(
        tables=tables,
        metrics=metrics,
        corridor_values=corridor_values,
        liquidity_cny=liquidity_cny,
        waited_delays_s=waited,
        swap_lines=swap_rows,
        mode=result.options.mode,
    )


def _headline(result: SimResult, meta: dict[str, SimPayment]) -> dict[str, int | str]:
    options = result.options
    settled = [pid for pid, f in result.finals.items() if f.status is PaymentStatus.SETTLED]
    rejected = [pid for pid, f in result.finals.items() if f.status is PaymentStatus.REJECTED]
    return {
        "mode": options.mode.value,
        "days": options.days,
        "seed": options.seed,
        "scale": decimal_text(result.scale),
        "national_share": "calibration"
        if options.national_share is None
        else decimal_text(options.national_share),
        "scenario": " ".join(sorted(options.scenario_specs)) or "baseline",
        "payments_submitted": len(meta),
        "payments_settled": len(settled),
        "payments_rejected": len(rejected),
        "unsettled_at_close": sum(len(ids) for ids in result.unsettled_eod.values()),
        "submitted_value_cny_minor": sum(sim.value_cny_minor for sim in meta.values()),
        "settled_value_cny_minor": sum(meta[pid].value_cny_minor for pid in settled),
        "rejected_value_cny_minor": sum(meta[pid].value_cny_minor for pid in rejected),
        "ledger_verified": int(result.verify_ok),
        "overnight_operations": result.overnight_operations,
    }


def _status_counts(
    sims: Iterable[SimPayment], result: SimResult
) -> dict[str, list[int]]:  # status -> [count, value]
    counts: dict[str, list[int]] = {s: [0, 0] for s in ("submitted", "settled", "rejected")}
    for sim in sims:
        status = result.finals[sim.payment.payment_id].status.value
        for key in ("submitted", status):
            counts[key][0] += 1
            counts[key][1] += sim.value_cny_minor
    return counts


_COUNT_HEADER = (
    "submitted",
    "settled",
    "rejected",
    "submitted_value_cny_minor",
    "settled_value_cny_minor",
    "rejected_value_cny_minor",
)
# The columns of each CSV file the simulator writes (``sco-settle report`` reads them back).
COLUMNS: dict[str, tuple[str, ...]] = {
    "summary": ("metric", "value"),
    "corridors": ("corridor", "payer", "payee", "group", "kind", *_COUNT_HEADER),
    "tiers": ("tier_pair", *_COUNT_HEADER),
    "liquidity": (
        "day",
        "currency",
        "gross_minor",
        "peak_minor",
        "net_minor",
        "used_minor",
        "saved_minor",
        "saved_bp",
    ),
    "delays": ("population", "count", "p50_s", "p90_s", "p99_s", "max_s"),
    "swap_lines": (
        "drawer",
        "provider",
        "currency",
        "limit_minor",
        "peak_drawn_minor",
        "eod_drawn_minor",
        "peak_bp",
        "eod_bp",
    ),
    "rejections": ("reason", "text", "count", "value_cny_minor"),
    "mechanisms": ("corridor", "payer", "payee", "mechanism", "count", "value_cny_minor"),
    "fx_providers": ("provider", "role", "currency", "income_minor"),
    "tranches": (
        "day",
        "action",
        "drawer",
        "provider",
        "currency",
        "tranche",
        "principal_minor",
        "interest_minor_in_drawer_currency",
        "detail",
    ),
    "facilities": (
        "day",
        "drawer",
        "provider",
        "currency",
        "status",
        "size_minor",
        "drawn_minor",
        "drawn_bp",
        "facility_minor",
        "accrued_interest_minor_in_drawer_currency",
    ),
    "cycles": (
        "day",
        "time",
        "cycle",
        "settled",
        "deferred",
        "currency",
        "gross_minor",
        "net_minor",
    ),
    "psp": (
        "day",
        "provider",
        "retail_payments",
        "gross_value_cny_minor",
        "net_value_cny_minor",
        "netting_saving_cny_minor",
        "netting_saving_bp",
        "settlement_payments",
        "settled",
        "rejected",
        "net_settled_value_cny_minor",
    ),
    "psp_pairs": (
        "day",
        "provider",
        "hub_currency",
        "local_currency",
        "paid_local_minor",
        "collected_local_minor",
        "netted_local_minor",
        "settled_in_local_minor",
        "settled_out_of_local_minor",
    ),
    "calibration": (
        "corridor",
        "payer",
        "payee",
        "group",
        "trade_usd_bn",
        "paid_usd_bn",
        "national_share",
        "daily_usd_cents",
        "source",
        "uncertain",
    ),
}


def _count_cells(counts: dict[str, list[int]]) -> Row:
    keys = ("submitted", "settled", "rejected")
    return tuple(counts[k][0] for k in keys) + tuple(counts[k][1] for k in keys)


def _corridors(
    result: SimResult, meta: dict[str, SimPayment]
) -> tuple[Table, list[tuple[str, int, int]], dict[str, int | str]]:
    groups: dict[tuple[int, str, str, str, str, str], list[SimPayment]] = defaultdict(list)
    for sim in meta.values():
        order = 0 if sim.kind == CROSS_BORDER else 1
        key = (order, sim.corridor, sim.payer_country, sim.payee_country, sim.group, sim.kind)
        groups[key].append(sim)
    table = Table(COLUMNS["corridors"])
    values = []
    per_corridor: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key in sorted(groups):
        _, corridor, payer, payee, group, kind = key
        counts = _status_counts(groups[key], result)
        table.rows.append((corridor, payer, payee, group, kind, *_count_cells(counts)))
        label = f"{payer}>{payee}" if kind == CROSS_BORDER else f"{payer} domestic"
        values.append((label, counts["settled"][1], counts["rejected"][1]))
        per_corridor[corridor][0] += counts["settled"][0]
        per_corridor[corridor][1] += counts["settled"][1]
    metrics: dict[str, int | str] = {}
    for corridor, (count, value) in sorted(per_corridor.items()):
        metrics[f"settled_count[{corridor}]"] = count
        metrics[f"settled_value_cny_minor[{corridor}]"] = value
    return table, values, metrics


class Mechanism:
    """What carried a settled payment across currencies, named after the bank that converted
    it (the last conversion on its route decides when there are several)."""

    SAME_CURRENCY = "same_currency"  # no conversion: one currency end to end
    CORRESPONDENT = "correspondent"  # the payer's or payee's bank converted in its own books
    CLEARING_BANK = "rmb_clearing_bank"  # a designated clearing bank converted (fx_providers)
    FX_PROVIDER = "fx_provider"  # another bank's published quotes (fx_providers)
    SWAP_FACILITY = "swap_line_facility"  # a central bank's facility funded by a swap line


def mechanism_of(route: tuple[str, ...], network: Network) -> str:
    nodes = [node.split("/") for node in route]
    roles = {provider.bic: provider.role.value for provider in network.fx_providers}
    central_banks = set(network.settlement_agents.values())
    found = Mechanism.SAME_CURRENCY
    for (bank, source), (other, target) in pairwise(nodes):
        if bank != other or source == target:
            continue
        if bank in central_banks:
            found = Mechanism.SWAP_FACILITY
        elif bank in (nodes[0][0], nodes[-1][0]) and bank not in roles:
            found = Mechanism.CORRESPONDENT
        elif roles.get(bank) == "clearing_bank":
            found = Mechanism.CLEARING_BANK
        elif bank in roles:
            found = Mechanism.FX_PROVIDER
        else:
            found = Mechanism.CORRESPONDENT
    return found


def _mechanisms(result: SimResult, meta: dict[str, SimPayment], network: Network) -> Table:
    """Per cross-border direction, how much value each mechanism carried."""
    groups: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for payment_id, final in result.finals.items():
        sim = meta[payment_id]
        if sim.kind != CROSS_BORDER or final.status is not PaymentStatus.SETTLED:
            continue
        key = (
            sim.corridor,
            sim.payer_country,
            sim.payee_country,
            mechanism_of(final.route, network),
        )
        groups[key][0] += 1
        groups[key][1] += sim.value_cny_minor
    table = Table(COLUMNS["mechanisms"])
    for key in sorted(groups):
        table.rows.append((*key, *groups[key]))
    return table


def _fx_providers(result: SimResult, network: Network) -> Table:
    roles = {provider.bic: provider.role.value for provider in network.fx_providers}
    table = Table(COLUMNS["fx_providers"])
    for (bic, code), income in sorted(result.fx_income.items()):
        table.rows.append((bic, roles.get(bic, "central_bank_facility"), code, income))
    return table


def _tranches(result: SimResult) -> Table:
    table = Table(COLUMNS["tranches"])
    for event in result.tranche_events:
        table.rows.append(
            (
                event.day,
                event.action,
                event.drawer,
                event.provider,
                event.currency,
                event.tranche_id,
                event.principal_minor,
                event.interest_minor,
                event.detail,
            )
        )
    return table


def _facilities(result: SimResult) -> Table:
    table = Table(COLUMNS["facilities"])
    for line in result.line_days:
        drawn_bp = line.drawn_minor * 10_000 // line.size_minor if line.size_minor else 0
        table.rows.append(
            (
                line.day,
                line.drawer,
                line.provider,
                line.currency,
                line.status,
                line.size_minor,
                line.drawn_minor,
                drawn_bp,
                line.facility_minor,
                line.accrued_interest_minor,
            )
        )
    return table


def _tiers(result: SimResult, meta: dict[str, SimPayment], network: Network) -> Table:
    def tier(country: str) -> str:
        return network.country(country).sco_status.tier

    groups: dict[str, list[SimPayment]] = {
        "-".join(pair): [] for pair in (("member", "member"), ("member", "partner"))
    }
    groups["partner-partner"] = []
    for sim in meta.values():
        if sim.kind == DOMESTIC:
            key = f"domestic {tier(sim.payer_country)}"
        else:
            key = "-".join(sorted((tier(sim.payer_country), tier(sim.payee_country))))
        groups.setdefault(key, []).append(sim)
    table = Table(COLUMNS["tiers"])
    for key in sorted(groups):
        table.rows.append((key, *_count_cells(_status_counts(groups[key], result))))
    return table


def _settled_groups(result: SimResult) -> Iterable[tuple[int, list[str]]]:
    """(day, payment ids) per ledger chain, in settlement order: one payment in RTGS (or many for
    offsetting and gridlock), one cycle in DNS."""
    group: list[str] = []
    for pid in result.settled_order:
        if group and result.finals[group[0]].settled_at != result.finals[pid].settled_at:
            yield (result.finals[group[0]].at_ns - EPOCH_NS) // DAY_NS, group
            group = []
        group.append(pid)
    if group:
        yield (result.finals[group[0]].at_ns - EPOCH_NS) // DAY_NS, group


def _liquidity_by_day(
    result: SimResult, meta: dict[str, SimPayment]
) -> dict[tuple[int, str], list[int]]:
    """(day, currency) -> [gross, peak, net], as ``payments.liquidity_use`` defines them."""
    settled = (
        SettledFlow(
            day,
            result.finals[pid].settled_at,
            meta[pid].payment.debtor_agent,
            meta[pid].payment.currency,
            _paid_minor(meta[pid], result.finals[pid]),
            meta[pid].payment.creditor_agent,
            meta[pid].payment.creditor_currency,
            result.finals[pid].delivered_minor,
        )
        for day, group in _settled_groups(result)
        for pid in group
    )
    return {
        key: [use.gross_minor, use.peak_minor, use.net_minor]
        for key, use in liquidity_by_day(settled).items()
    }


def _paid_minor(sim: SimPayment, final: Final) -> int:
    """What the debtor agent paid: the amount, or for a fixed received amount what was sent."""
    if sim.payment.amount_type is AmountType.RECEIVE:
        return final.sent_minor
    return sim.payment.amount_minor


def _liquidity(
    result: SimResult, meta: dict[str, SimPayment], rates: Rates
) -> tuple[Table, list[tuple[str, int, int]], dict[str, int | str]]:
    dns = result.options.mode is Mode.DNS
    cells = _liquidity_by_day(result, meta)
    table = Table(COLUMNS["liquidity"])
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (day, code), (gross, peak, net) in sorted(cells.items()):
        used = net if dns else peak
        table.rows.append(_liquidity_row(str(day), code, gross, peak, net if dns else "", used))
        for i, value in enumerate((gross, peak, net)):
            totals[code][i] += value
    series = []
    cny = [0, 0, 0]
    for code, (gross, peak, net) in sorted(totals.items()):
        used = net if dns else peak
        table.rows.append(_liquidity_row("all", code, gross, peak, net if dns else "", used))
        converted = [rates.to_cny_minor(v, code) for v in (gross, peak, net)]
        series.append((code, converted[0], converted[2] if dns else converted[1]))
        cny = [a + b for a, b in zip(cny, converted, strict=True)]
    used_cny = cny[2] if dns else cny[1]
    net_cny = cny[2] if dns else ""
    table.rows.append(_liquidity_row("all", "CNY-equivalent", cny[0], cny[1], net_cny, used_cny))
    metrics: dict[str, int | str] = {
        "liquidity_gross_cny_minor": cny[0],
        "liquidity_used_cny_minor": used_cny,
        "liquidity_saved_cny_minor": cny[0] - used_cny,
        "liquidity_saved_bp": (cny[0] - used_cny) * 10_000 // cny[0] if cny[0] else 0,
    }
    return table, series, metrics


def _liquidity_row(day: str, code: str, gross: int, peak: int, net: object, used: int) -> Row:
    saved = gross - used
    return (day, code, gross, peak, net, used, saved, saved * 10_000 // gross if gross else 0)


def _delays(
    result: SimResult, meta: dict[str, SimPayment]
) -> tuple[Table, list[int], dict[str, int | str]]:
    populations: dict[str, list[int]] = {"all": [], "waited": [], "urgent": [], "normal": []}
    for pid, final in result.finals.items():
        if final.status is not PaymentStatus.SETTLED:
            continue
        sim = meta[pid]
        submitted_ns = EPOCH_NS + (sim.arrival_s // 60 + 1) * 60 * NS_PER_SECOND
        delay_s = max(final.at_ns - submitted_ns, 0) // NS_PER_SECOND
        populations["all"].append(delay_s)
        if delay_s > 0:
            populations["waited"].append(delay_s)
        populations[sim.payment.priority.value].append(delay_s)
    table = Table(COLUMNS["delays"])
    for name, values in populations.items():
        values.sort()
        table.rows.append(
            (
                name,
                len(values),
                percentile(values, 50),
                percentile(values, 90),
                percentile(values, 99),
                values[-1] if values else 0,
            )
        )
    every, waited = populations["all"], populations["waited"]
    metrics: dict[str, int | str] = {
        "payments_waited": len(waited),
        "delay_p50_s": percentile(every, 50),
        "delay_p99_s": percentile(every, 99),
        "waited_delay_p50_s": percentile(waited, 50),
        "waited_delay_p99_s": percentile(waited, 99),
    }
    return table, waited, metrics


def _swap_lines(
    result: SimResult,
) -> tuple[Table, list[tuple[str, int, int, int]], dict[str, int | str]]:
    table = Table(COLUMNS["swap_lines"])
    rows = []
    peak_bp_max = 0
    for use in result.swap_lines:
        if use.limit_minor <= 0:
            continue  # No agreed size in that currency: nothing can be drawn.
        peak_bp = use.peak_drawn_minor * 10_000 // use.limit_minor
        eod_bp = use.eod_drawn_minor * 10_000 // use.limit_minor
        peak_bp_max = max(peak_bp_max, peak_bp)
        table.rows.append(
            (
                use.drawer,
                use.provider,
                use.currency,
                use.limit_minor,
                use.peak_drawn_minor,
                use.eod_drawn_minor,
                peak_bp,
                eod_bp,
            )
        )
        label = f"{use.drawer[4:6]} draws {use.currency}"
        rows.append((label, use.limit_minor, use.peak_drawn_minor, use.eod_drawn_minor))
    return table, rows, {"swap_line_peak_bp_max": peak_bp_max}


def _rejections(
    result: SimResult, meta: dict[str, SimPayment]
) -> tuple[Table, dict[str, int | str]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for pid, final in result.finals.items():
        if final.status is PaymentStatus.REJECTED:
            counts[final.reason][0] += 1
            counts[final.reason][1] += meta[pid].value_cny_minor
    table = Table(COLUMNS["rejections"])
    metrics: dict[str, int | str] = {}
    for reason, (count, value) in sorted(counts.items()):
        text = REASON_TEXT[Reason(reason)] if reason in Reason.__members__ else ""
        table.rows.append((reason, text, count, value))
        metrics[f"rejected[{reason}]"] = count
    return table, metrics


def _cycles(result: SimResult) -> Table:
    table = Table(COLUMNS["cycles"])
    for day, minute, report in result.cycles:
        gross: dict[str, int] = report["gross_minor"]
        net: dict[str, int] = report["net_minor"]
        time = f"{minute // 60:02d}:{minute % 60:02d}"
        head = (day, time, report["cycle"], report["settled"], report["deferred"])
        if not gross:
            table.rows.append((*head, "", 0, 0))
        for code in sorted(gross):
            table.rows.append((*head, code, gross[code], net.get(code, 0)))
    return table


def _psp(result: SimResult, meta: dict[str, SimPayment]) -> tuple[Table, dict[str, int | str]]:
    """Per day and payment-service provider: its retail payments, their gross value, what its
    settlement payments carried (net) and what netting saved, and how those payments ended."""
    settlements: dict[tuple[int, str], list[SimPayment]] = defaultdict(list)
    for sim in meta.values():
        if sim.provider:
            settlements[(sim.day, sim.provider)].append(sim)
    table = Table(COLUMNS["psp"])
    totals: dict[str, int] = defaultdict(int)
    for cycle in result.retail_cycles:
        own = settlements.get((cycle.day, cycle.provider), [])
        counts = _status_counts(own, result)
        net = counts["submitted"][1]
        saving = cycle.gross_value_cny_minor - net
        gross = cycle.gross_value_cny_minor
        saving_bp = saving * 10_000 // gross if gross else 0
        outcomes = (len(own), counts["settled"][0], counts["rejected"][0], counts["settled"][1])
        table.rows.append(
            (cycle.day, cycle.provider, cycle.payments, gross, net, saving, saving_bp, *outcomes)
        )
        totals["psp_retail_payments"] += cycle.payments
        totals["psp_gross_value_cny_minor"] += cycle.gross_value_cny_minor
        totals["psp_settlement_payments"] += len(own)
        totals["psp_settlement_settled"] += counts["settled"][0]
        totals["psp_net_settled_value_cny_minor"] += counts["settled"][1]
    return table, dict(totals)


def _psp_pairs(result: SimResult) -> Table:
    """Per day, provider and currency pair: the local side's gross, what netted out, and what
    the cycle's cross-border settlement payment carried into or out of the local currency."""
    table = Table(COLUMNS["psp_pairs"])
    for cycle in result.retail_cycles:
        for netting in cycle.nettings:
            carried_in, carried_out = carried_local_minor(cycle.instructions, netting)
            table.rows.append(
                (
                    cycle.day,
                    cycle.provider,
                    netting.hub_currency,
                    netting.local_currency,
                    netting.paid_local_minor,
                    netting.collected_local_minor,
                    netting.netted_local_minor,
                    carried_in,
                    carried_out,
                )
            )
    return table


def _calibration(result: SimResult, calibration: Calibration) -> Table:
    table = Table(COLUMNS["calibration"])
    for corridor in calibration.corridors:
        share = calibration.national_share(corridor, result.options.national_share)
        for payer, payee in ((corridor.a, corridor.b), (corridor.b, corridor.a)):
            table.rows.append(
                (
                    corridor.name,
                    payer,
                    payee,
                    corridor.group,
                    decimal_text(corridor.trade_usd_bn),
                    decimal_text(corridor.paid_usd_bn(payer)),
                    decimal_text(share),
                    calibration.daily_usd_cents(
                        corridor, payer, result.scale, result.options.national_share
                    ),
                    corridor.source,
                    corridor.uncertain,
                )
            )
    return table


def scenario_delta(baseline: Report, scenario: Report) -> Table:
    """metric, baseline, scenario, delta for every integer metric either run has."""
    table = Table(("metric", "baseline", "scenario", "delta"))
    keys = list(baseline.metrics)
    for key in scenario.metrics:  # A new key goes after the last one of its family ("x[").
        if key in baseline.metrics:
            continue
        family = key.split("[")[0]
        same = [i for i, k in enumerate(keys) if k.split("[")[0] == family and k < key]
        at = (
            same[-1] + 1
            if same
            else next((i for i, k in enumerate(keys) if k.split("[")[0] == family), len(keys))
        )
        keys.insert(at, key)
    for key in keys:
        before, after = baseline.metrics.get(key, 0), scenario.metrics.get(key, 0)
        if isinstance(before, str) or isinstance(after, str):
            if before != after:
                table.rows.append((key, before, after, ""))
            continue
        table.rows.append((key, before, after, after - before))
    return table


def write_csv(table: Table, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(table.header)
        writer.writerows(table.rows)


def write_tables(report: Report, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in report.tables.items():
        path = directory / f"{name}.csv"
        write_csv(table, path)
        written.append(path)
    return written
