"""Run the simulator: a simulated clock drives the payment engine through business days.

Timeline of a day (minutes after 00:00 of the simulated clock, from the calibration):
- each minute from opening to closing, the payments that arrived in that minute are submitted as
  one batch (``submit_many``) at the end of the minute;
- RTGS: the liquidity-saving mechanism runs every ``lsm_interval_minutes`` (the engine also runs it
  after every batch that settled something); DNS: a settlement cycle runs at each
  ``dns_cycle_minutes`` (the last one at closing);
- after closing, what is still queued or held is counted as unsettled at end of day, then the clock
  moves on by the queue timeout so that the engine rejects it (TM01).

Invariants:
- The engine never reads the wall clock: the ledger, the payment records and the engine get
  ``SimClock``. Same options and seed -> the same ledger, the same records, the same result.
- Money is conserved: the run ends by replaying the ledger (``ledger.invariants.verify``) and
  checking per-currency totals (``LedgerState.check_totals``); the result carries both verdicts.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from sco_settle.domain.account_key import AccountKeyKind
from sco_settle.domain.participants import BicError, CountryError, parse_bic, parse_country
from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.ledger.invariants import verify
from sco_settle.ledger.state_machine import InvariantViolation
from sco_settle.network import Network, load_network
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.fx import RateTable
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentStatus
from sco_settle.payments.modes import Mode
from sco_settle.payments.network_view import (
    NetworkView,
    Scenario,
    load_rates,
    swap_line_utilisation,
)
from sco_settle.payments.plan import leg_id
from sco_settle.payments.records import PaymentEvent, PaymentRecords, RecordEntry
from sco_settle.payments.swap_lines import SwapLineDesk
from sco_settle.payments.union import ClearingUnion
from sco_settle.payments.union_config import UnionConfig
from sco_settle.sim.calibration import Calibration, Rates, load_calibration
from sco_settle.sim.fx_shock import FxShock, shocked
from sco_settle.sim.liquidity import (
    LineDay,
    SwapLineOperator,
    TrancheEvent,
    overnight_operations,
    reserve_levels,
)
from sco_settle.sim.retail import RetailCycle
from sco_settle.sim.workload import SECONDS_PER_DAY, SimPayment, generate_day, psp_day

NS_PER_SECOND = 1_000_000_000
# The simulated clock starts at 2026-01-05T00:00:00Z (a Monday), as ns since the Unix epoch.
EPOCH_NS = 1_767_571_200 * NS_PER_SECOND
DAYS_MAX = 366

Progress = Callable[[int, int], None]


class ScenarioError(ValueError):
    """A ``--scenario`` spec is malformed or names something the network lacks."""


@dataclass(frozen=True)
class SimOptions:
    days: int = 1
    seed: int = 7
    mode: Mode = Mode.RTGS
    scale: Fraction | None = None  # None: the calibration's default scale
    national_share: Fraction | None = None  # None: per corridor, from the calibration
    db: Path | None = None  # None: in-memory ledger and payment records
    scenario: Scenario = field(default_factory=Scenario)
    scenario_specs: tuple[str, ...] = ()
    retail: bool = True  # the payment-service providers' retail flows (calibration ``retail``)
    # What a comparison varies on the same workload (``sim/compare.py``); defaults: the engine's.
    liquidity_saving: bool = True  # RTGS: offsetting and gridlock resolution in LSM cycles
    fifo_bypass: bool = False  # RTGS: pairwise offsetting may settle out of FIFO order
    net_debit_caps: Mapping[tuple[str, str], int] = field(default_factory=dict)  # DNS
    union: UnionConfig | None = None  # None: the shipped reference_data/union.yaml
    fx_shock: FxShock | None = None  # every quote of one currency moved (a stress scenario)
    # The engine's fast paths (incremental routing-graph rebuilds: ``NetworkView(incremental=
    # True)``). They never change a result; False runs the reference paths (the baseline of
    # benchmarks/simulate_bench.py; tests/sim/test_sim_speed_equivalence.py).
    fast_paths: bool = True


class SimClock:
    """Simulated time in ns since the Unix epoch; only the run loop moves it."""

    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def set(self, ns: int) -> None:
        assert ns >= self.now_ns, (ns, self.now_ns)  # Simulated time never goes back.
        self.now_ns = ns


@dataclass(frozen=True, slots=True)
class Final:
    """How a payment ended, and when (simulated ns)."""

    status: PaymentStatus
    reason: str
    at_ns: int
    settled_at: int  # ledger timestamp of the settling chain: payments sharing one settled at once
    delivered_minor: int  # in the creditor currency
    route: tuple[str, ...]
    sent_minor: int = 0  # debited from the debtor agent, in the payment's currency
    # Settled by a chain of its own (gross), not with others (an LSM chain, a netting cycle):
    # payments of one ``submit_many`` batch share ``settled_at`` yet settled one after another.
    alone: bool = False


class RecordingRecords:
    """The engine's payment records (any ``PaymentRecords``), which also keep, in order, every
    final outcome they are given."""

    def __init__(self, inner: PaymentRecords) -> None:
        self.inner = inner
        self.finals: dict[str, Final] = {}
        self.settled_order: list[str] = []

    def record(self, entries: Iterable[RecordEntry], at: int) -> None:
        entries = list(entries)
        self.inner.record(entries, at)
        for payment, outcome, _, _ in entries:
            self._keep(payment, outcome, at)

    def get(self, payment_id: str) -> tuple[Payment, PaymentOutcome, int | None] | None:
        return self.inner.get(payment_id)

    def get_many(
        self, payment_ids: Sequence[str]
    ) -> dict[str, tuple[Payment, PaymentOutcome, int | None]]:
        return self.inner.get_many(payment_ids)

    def begin(self, intents: Iterable[tuple[Payment, str]], at: int) -> None:
        self.inner.begin(intents, at)

    def intents(self) -> list[tuple[Payment, str]]:
        return self.inner.intents()

    def drop_intents(self, payment_ids: Iterable[str]) -> None:
        self.inner.drop_intents(payment_ids)

    def queued(self) -> Iterator[tuple[Payment, int]]:
        return self.inner.queued()

    def events(self, payment_id: str, *, limit: int | None = None) -> list[PaymentEvent]:
        return self.inner.events(payment_id, limit=limit)

    def records(self) -> Iterator[tuple[Payment, PaymentOutcome]]:
        return self.inner.records()

    def counts(self) -> dict[str, int]:
        return self.inner.counts()

    def close(self) -> None:
        self.inner.close()

    def _keep(self, payment: Payment, outcome: PaymentOutcome, at: int) -> None:
        if not outcome.status.final or outcome.duplicate:
            return
        assert payment.payment_id not in self.finals, payment.payment_id  # Final means final.
        reason = outcome.reason.value if outcome.reason else ""
        self.finals[payment.payment_id] = Final(
            outcome.status,
            reason,
            at,
            outcome.settled_at,
            outcome.amount_delivered_minor,
            outcome.route,
            outcome.amount_sent_minor,
            alone=outcome.transfer_ids[:1] == (leg_id(payment.payment_id, 0),),
        )
        if outcome.status is PaymentStatus.SETTLED:
            self.settled_order.append(payment.payment_id)


@dataclass
class SwapLineUse:
    drawer: str
    provider: str
    currency: str
    limit_minor: int
    peak_drawn_minor: int = 0
    eod_drawn_minor: int = 0


@dataclass(frozen=True, slots=True)
class UnionCreditUse:
    """A clearing-union member's largest union credit used (minus its position) at any cycle's
    end, against its swing limit, in minor units of the unit of account."""

    member: str
    unit: str
    swing_limit_minor: int
    peak_used_minor: int


@dataclass
class SimResult:
    options: SimOptions
    scale: Fraction
    payments: list[SimPayment]
    finals: dict[str, Final]
    settled_order: list[str]
    # (day, minute, engine cycle report: ``CycleReport.as_dict()``)
    cycles: list[tuple[int, int, dict[str, Any]]]
    unsettled_eod: dict[int, list[str]]  # day -> ids still queued or held at closing
    swap_lines: list[SwapLineUse]
    verify_ok: bool
    verify_text: str
    rejections_engine: dict[str, int]
    tranche_events: list[TrancheEvent] = field(default_factory=list)
    line_days: list[LineDay] = field(default_factory=list)
    # (provider BIC, currency) -> what it kept on its conversions (spread and rounding), minor
    fx_income: dict[tuple[str, str], int] = field(default_factory=dict)
    overnight_operations: int = 0  # central banks' nightly repo/deposit operations booked
    retail_cycles: list[RetailCycle] = field(default_factory=list)  # providers' daily cycles
    union_credit: list[UnionCreditUse] = field(default_factory=list)  # union mode only


def parse_scenario(specs: tuple[str, ...] | list[str], network: Network) -> Scenario:
    """``bank-failure:BIC``, ``swapline-exhausted:CN-KZ``, ``corridor-cut:CN-KZ`` -> Scenario."""
    suspended: set[str] = set()
    cuts: set[tuple[str, str]] = set()
    exhausted: set[tuple[str, str]] = set()
    for spec in specs:
        kind, _, argument = spec.partition(":")
        if kind == "bank-failure":
            try:
                bic = parse_bic(argument)
            except BicError as error:
                raise ScenarioError(f"{spec}: {error}") from error
            if bic not in network.participants_by_bic:
                raise ScenarioError(f"{spec}: {bic} is not a participant of {network.name}")
            suspended.add(bic)
        elif kind in ("corridor-cut", "swapline-exhausted"):
            pair = _country_pair(spec, argument, network)
            (cuts if kind == "corridor-cut" else exhausted).add(pair)
        else:
            raise ScenarioError(
                f"{spec}: expected bank-failure:BIC, swapline-exhausted:XX-YY or corridor-cut:XX-YY"
            )
    return Scenario(frozenset(suspended), frozenset(cuts), frozenset(exhausted))


def _country_pair(spec: str, argument: str, network: Network) -> tuple[str, str]:
    parts = argument.upper().split("-")
    if len(parts) != 2 or parts[0] == parts[1]:
        raise ScenarioError(f"{spec}: expected two different ISO 3166 codes, e.g. CN-KZ")
    for code in parts:
        try:
            parse_country(code)
        except CountryError as error:
            raise ScenarioError(f"{spec}: {error}") from error
        if code not in network.countries_by_code:
            raise ScenarioError(f"{spec}: {code} is not a country of {network.name}")
    first, second = sorted(parts)
    return (first, second)


def run_simulation(
    options: SimOptions,
    calibration: Calibration | None = None,
    progress: Progress | None = None,
) -> SimResult:
    """Generate the workload, run it through a fresh ledger and engine, verify the ledger."""
    if not 1 <= options.days <= DAYS_MAX:
        raise ValueError(f"days must be in 1 .. {DAYS_MAX}")
    calibration = calibration or load_calibration()
    scale = options.scale if options.scale is not None else calibration.workload.default_scale
    network = load_network("sco")
    rates = Rates.load(calibration.usd_cny)
    clock = SimClock(EPOCH_NS)
    ledger, records = _open(options.db, clock)
    try:
        _install(ledger, network, calibration.workload.opening_balance_share)
        quotes = load_rates()
        if options.fx_shock is not None:
            quotes = shocked(quotes, options.fx_shock)
        view = NetworkView(network, quotes, incremental=options.fast_paths)
        engine = PaymentEngine(
            ledger,
            view,
            records,
            EngineSettings(
                mode=options.mode,
                queue_timeout_ns=calibration.workload.queue_timeout_minutes * 60 * NS_PER_SECOND,
                liquidity_saving=options.liquidity_saving,
                fifo_bypass=options.fifo_bypass,
                net_debit_caps=dict(options.net_debit_caps),
            ),
            scenario=options.scenario,
        )
        if options.union is not None and options.mode is Mode.UNION:
            engine.mode = ClearingUnion(options.union)  # Before any payment: governance varied.
        operator = SwapLineOperator(
            SwapLineDesk(ledger, view),
            frozenset(frozenset((c.a, c.b)) for c in calibration.corridors),
        )
        loop = _Loop(options, calibration, engine, clock, progress, quotes, operator)
        payments: list[SimPayment] = []
        cycles: list[RetailCycle] = []
        for day in range(options.days):
            todays = generate_day(
                calibration,
                network,
                rates,
                seed=options.seed,
                day=day,
                scale=scale,
                share=options.national_share,
            )
            if options.retail and calibration.retail is not None:
                on = _date(EPOCH_NS + day * SECONDS_PER_DAY * NS_PER_SECOND)
                psp = psp_day(
                    calibration, network, rates, seed=options.seed, day=day, scale=scale, on=on
                )
                cycles.extend(psp.cycles)
                todays = sorted([*todays, *psp.payments], key=lambda sim: sim.arrival_s)
            payments.extend(todays)
            loop.run_day(day, todays)
        verify_ok, verify_text = _verify(ledger)
        return SimResult(
            options=options,
            scale=scale,
            payments=payments,
            finals=dict(records.finals),
            settled_order=list(records.settled_order),
            cycles=loop.cycles,
            unsettled_eod=loop.unsettled_eod,
            swap_lines=sorted(
                loop.swap_lines.values(), key=lambda s: (s.drawer, s.provider, s.currency)
            ),
            verify_ok=verify_ok,
            verify_text=verify_text,
            rejections_engine=dict(sorted(engine.stats.rejections.items())),
            tranche_events=operator.events,
            line_days=operator.days,
            fx_income=_fx_income(view, ledger),
            overnight_operations=loop.overnight_operations,
            retail_cycles=cycles,
            union_credit=loop.union_credit(),
        )
    finally:
        records.close()
        ledger.close()


def _date(day_start_ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(
        days=day_start_ns // (SECONDS_PER_DAY * NS_PER_SECOND)
    )


def _open(db: Path | None, clock: SimClock) -> tuple[Ledger, RecordingRecords]:
    """In memory; or the ledger and its payment records in the SQLite file ``db``, made afresh."""
    from sco_settle.storage import MemoryStore, SqliteStore
    from sco_settle.storage.payment_records_memory import MemoryPaymentRecords
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    if db is None:
        return Ledger(MemoryStore(), clock=clock), RecordingRecords(MemoryPaymentRecords())
    refusal = replace_refusal(db)
    if refusal:
        raise ValueError(refusal)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    ledger = Ledger(SqliteStore(db), clock=clock)  # First: it lays the file out.
    return ledger, RecordingRecords(SqlitePaymentRecords(db, durable=False))


def replace_refusal(db: Path) -> str:
    """Why the simulator must not replace the SQLite file ``db`` ("" when it may): a process
    holds its writer lock (a server, another simulation), or it is a server's database (it has
    the server's ``api_meta`` table), which a simulation would destroy."""
    lock_path = db.with_name(db.name + ".lock")
    if lock_path.exists():
        descriptor = os.open(lock_path, os.O_RDWR)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return f"{db} is in use by another process (it holds the writer lock)"
        finally:
            os.close(descriptor)  # Closing releases the lock if it was taken.
    if db.exists():
        try:
            connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                found = connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_meta'"
                ).fetchall()
            finally:
                connection.close()
        except sqlite3.DatabaseError:
            return f"{db} exists and is not an SQLite database: not replaced"
        if found:
            return (
                f"{db} is a server's database: a simulation would replace it; choose another file"
            )
    return ""


def _install(ledger: Ledger, network: Network, share: Fraction) -> None:
    """The network's accounts, funded with ``share`` of its opening balances (at least 1 unit).

    The network file funds each commercial bank with about USD 300 m so that demos never run dry;
    the simulator funds a share of that, so that intraday liquidity binds and the queue works.
    FX providers (``fx_providers``) keep their whole opening balances: a dealer's book is its
    business, and it deals for a whole country's banks (an ASSUMPTION of the simulation).
    """
    assert 0 < share <= 1, share
    accounts = network.ledger_accounts()
    for start in range(0, len(accounts), BATCH_EVENTS_MAX):
        created = ledger.create_accounts(accounts[start : start + BATCH_EVENTS_MAX])
        assert all(result == "ok" for result in created), created  # A fresh ledger.
    dealers = {provider.bic for provider in network.fx_providers}
    owners = {account.id: account.participant for account in accounts}
    transfers = [
        transfer
        if owners[transfer.credit_account] in dealers
        else transfer._replace(
            amount=max(transfer.amount * share.numerator // share.denominator, 1)
        )
        for transfer in network.opening_transfers()
    ]
    for start in range(0, len(transfers), BATCH_EVENTS_MAX):
        results = ledger.create_transfers(transfers[start : start + BATCH_EVENTS_MAX])
        assert all(result == "ok" for result in results), results


def _fx_income(view: NetworkView, ledger: Ledger) -> dict[tuple[str, str], int]:
    found = {}
    for key, account in view.accounts.items():
        if key.kind is AccountKeyKind.FX_INCOME:
            state = ledger.lookup_account(account.id)
            if state is not None and state.credits_posted:
                found[(key.owner, key.currency)] = state.credits_posted - state.debits_posted
    return dict(sorted(found.items()))


def _verify(ledger: Ledger) -> tuple[bool, str]:
    """Replay the ledger's journal (every guarantee) and check per-currency totals in memory."""
    report = verify(ledger.store)
    try:
        ledger.state.check_totals()
        totals = "totals OK"
    except InvariantViolation as error:  # Report it, never hide it.
        return False, f"check_totals FAILED: {error}"
    if not report.ok:
        return False, f"verify FAILED: {report.violation}"
    return True, (
        f"verify OK: {report.accounts} accounts, {report.transfers} transfers; debits = credits"
        f" in {len(report.currencies)} currencies; {totals}"
    )


class _Loop:
    """The minute-by-minute driver of one run."""

    def __init__(
        self,
        options: SimOptions,
        calibration: Calibration,
        engine: PaymentEngine,
        clock: SimClock,
        progress: Progress | None,
        quotes: RateTable,
        operator: SwapLineOperator,
    ) -> None:
        self.options = options
        self.quotes, self.operator = quotes, operator
        # Each bank's reserves as the run opens: the level the central banks' overnight
        # operations restore every night (``sim/liquidity.py``).
        self.opening_reserves = reserve_levels(engine.ledger, engine.view.network)
        self.overnight_operations = 0
        self.workload = calibration.workload
        self.engine = engine
        self.clock = clock
        self.progress = progress
        self.cycles: list[tuple[int, int, dict[str, Any]]] = []
        self.unsettled_eod: dict[int, list[str]] = {}
        self.swap_lines: dict[tuple[str, str, str], SwapLineUse] = {}
        self.minutes_total = options.days * (self.workload.close_minute - self.workload.open_minute)
        self.minutes_done = 0
        self.union_peaks: dict[str, int] = {}

    def run_day(self, day: int, payments: list[SimPayment]) -> None:
        workload = self.workload
        day_start_ns = EPOCH_NS + day * SECONDS_PER_DAY * NS_PER_SECOND
        by_minute: dict[int, list[Payment]] = {}
        for sim in payments:
            minute = (sim.arrival_s - day * SECONDS_PER_DAY) // 60
            by_minute.setdefault(minute, []).append(sim.payment)
        # A mode with governed cycle times (the clearing union's) runs on them; else calibration.
        governed = getattr(self.engine.mode, "cycle_minutes", None)
        cycle_minutes = governed or workload.cycle_minutes(self.engine.mode.name)
        self._open_day(day, day_start_ns)
        for minute in range(workload.open_minute, workload.close_minute):
            end = minute + 1
            self.clock.set(day_start_ns + end * 60 * NS_PER_SECOND)
            batch = by_minute.get(minute)
            if batch:
                self.engine.submit_many(batch)
            if end in cycle_minutes:
                self.cycles.append((day, end, self.engine.run_cycle().as_dict()))
                self._sample_union()
            self._sample_swap_lines()
            self.minutes_done += 1
            if self.progress is not None:
                self.progress(self.minutes_done, self.minutes_total)
        self._close_day(day, day_start_ns)

    def _close_day(self, day: int, day_start_ns: int) -> None:
        """Closing (after the day's last cycle): count what is left, then let the queue time
        out (a cycle past the timeout expires every queued payment; nothing is left to settle)."""
        close_ns = day_start_ns + self.workload.close_minute * 60 * NS_PER_SECOND
        self.unsettled_eod[day] = self.engine.queue.ids()
        timeout_ns = self.engine.settings.queue_timeout_ns
        self.clock.set(max(self.clock(), close_ns + timeout_ns))
        self.engine.run_cycle()
        assert not self.engine.queue, sorted(self.engine.queue)[:5]
        self.operator.close_day(day, _date(day_start_ns), self.engine.view.rates)
        self.overnight_operations += overnight_operations(
            self.engine.ledger, self.engine.view.network, self.opening_reserves, day
        )
        self.engine.view.invalidate()
        self._sample_swap_lines(end_of_day=True)

    def _open_day(self, day: int, day_start_ns: int) -> None:
        """Opening: the FX providers publish the day's quotes (firm for the day: yesterday's
        are stale), then the central banks draw where their facilities run low."""
        open_ns = day_start_ns + self.workload.open_minute * 60 * NS_PER_SECOND
        self.clock.set(max(self.clock(), open_ns))
        opening = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            microseconds=open_ns // 1000
        )
        view = self.engine.view
        view.rates = self.quotes.published(opening, dt.timedelta(days=1))
        view.invalidate()
        self.operator.open_day(day, _date(day_start_ns), view.rates)

    def _sample_union(self) -> None:
        """Each union member's largest credit used so far (positions move only in cycles)."""
        mode = self.engine.mode
        if not isinstance(mode, ClearingUnion):
            return
        book = mode.book(self.engine)
        for bic in book.members:
            used = max(-book.position_minor(self.engine, bic), 0)
            self.union_peaks[bic] = max(self.union_peaks.get(bic, 0), used)

    def union_credit(self) -> list[UnionCreditUse]:
        mode = self.engine.mode
        if not isinstance(mode, ClearingUnion):
            return []
        book = mode.book(self.engine)
        limits = book.config.swing_limits_minor()
        return [
            UnionCreditUse(bic, book.unit, limits[bic], self.union_peaks.get(bic, 0))
            for bic in sorted(book.members)
        ]

    def _sample_swap_lines(self, *, end_of_day: bool = False) -> None:
        view, ledger = self.engine.view, self.engine.ledger
        for key, balances in swap_line_utilisation(view, ledger):
            assert key.counterparty is not None, key  # The provider.
            line = (key.owner, key.counterparty, key.currency)
            use = self.swap_lines.get(line)
            if use is None:
                use = self.swap_lines[line] = SwapLineUse(*line, balances.credit_limit)
            use.peak_drawn_minor = max(use.peak_drawn_minor, balances.drawn_minor)
            if end_of_day:
                use.eod_drawn_minor = balances.drawn_minor
