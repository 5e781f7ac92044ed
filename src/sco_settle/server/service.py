"""The ledger service: one process, one writer thread, many readers.

The ledger keeps balances in memory and is single-writer, so every change goes through one
thread that owns the store, the ``Ledger``, the ``PaymentEngine`` and the payment records. Request
handlers hand it *jobs* through a bounded queue and await their futures.

Group commit: when jobs wait in the queue, the writer takes several of one kind at once. Transfer
batches of different requests are concatenated into one ledger batch (one durable commit, one
fsync) and the results are sliced back per request; payments of different requests go through
one ``submit_many`` (one records commit). The answer is the same as if the requests had run one
after another in queue order, because:

- a linked chain never spans two requests: a request whose last transfer is still ``linked`` is
  the last one of its group, so its open chain ends where it would have ended alone;
- results and ``exists`` checks are per event, in order, exactly as for sequential batches.

Reads never wait for the writer. Account balances come from ``PublishedLedger``, which the writer
updates *after* each commit is durable (a decorator around the store's ``commit``), so a reader
never sees a balance that could still be lost; history (transfers, statements) comes from
read-only store sessions; payments from read-only sessions of the payment records
(``PaymentReader``).

Failure: if a commit fails or an invariant breaks, the service stops taking writes (503
``ledger_unavailable``, ``/health`` 503) and must be restarted; restarting recovers exactly the
committed state (see ``ledger.ledger``). It does not try to carry on.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sco_settle.audit.chain import AuditKind
from sco_settle.audit.sql import append_entry
from sco_settle.audit.verify import CYCLE_FIELDS
from sco_settle.domain.account import Account, AccountKind
from sco_settle.domain.calendar import load_calendars
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.ledger import Ledger
from sco_settle.ledger.state_machine import Changes
from sco_settle.ledger.store import Store
from sco_settle.network import Network
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.fx import RateTable
from sco_settle.payments.model import Payment, Priority
from sco_settle.payments.queue import Selection
from sco_settle.payments.quote_desk import FxQuoteRequest, quote_status
from sco_settle.payments.records import RecordEntry
from sco_settle.payments.routing import RouteResult, find_routes
from sco_settle.server.auth import Principal
from sco_settle.server.config import DatabaseKind, ServerConfig
from sco_settle.server.db import StateDb
from sco_settle.server.end_of_day import EndOfDay
from sco_settle.server.errors import ApiError, QueueFullError, ServiceUnavailableError
from sco_settle.server.fairness import FairQueue, WriteQuota
from sco_settle.server.keys import Role, audit_tables
from sco_settle.server.payment_reads import PaymentReader
from sco_settle.storage.payment_records_sql import SqlPaymentRecords

# Accounts a participant's own key may not debit in a transfer batch, though it owns them: a
# central bank's issuance account (debiting it creates money), its swap-line accounts (drawing
# on another central bank's currency is a payment's leg, not a free transfer) and clearing
# accounts (LSM and netting chains). Only the payment engine and the network operator move them.
ENGINE_ONLY_KINDS = frozenset(
    {
        AccountKind.ISSUANCE.value,
        AccountKind.SWAP_LINE.value,
        AccountKind.SUSPENSE.value,
        # What providers keep on conversions, and interest on tranches: only the payment engine
        # and the swap-line desk book them, so they are the FX result and nothing else.
        AccountKind.FX_INCOME.value,
        AccountKind.SWAP_INTEREST.value,
    }
)
# An account id that never exists: a participant's reference to an account (or pending transfer)
# it may not use is replaced by it, so the ledger answers exactly as for one that does not exist.
UNUSABLE_ID = ID_MAX - 1
_RESOLVE = int(TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_STOP = object()
LSM_INTERVAL_SECONDS = 5.0
RECORDS_PER_COMMIT_MAX = 1000
JOBS_PER_ROUND_MAX = 4096
logger = logging.getLogger("sco_settle.server")


class PublishedLedger:
    """Committed accounts and balances, for readers; written only by the writer thread.

    Each balance is one tuple replaced whole, so a reader sees an account's four counters from
    one commit. Account maps are copied on write (new accounts are rare), so readers may iterate
    them without a lock.
    """

    def __init__(self) -> None:
        self.accounts: dict[int, Account] = {}
        self.balances: dict[int, tuple[int, int, int, int]] = {}
        self.by_ref: dict[str, int] = {}
        self.sorted_ids: tuple[int, ...] = ()
        self.by_participant: dict[str, tuple[int, ...]] = {}
        # What a participant key may debit in a transfer batch: its accounts but the kinds
        # only the engine (or the network operator) moves (``ENGINE_ONLY_KINDS``).
        self.debitable_by_participant: dict[str, frozenset[int]] = {}
        self.last_timestamp = 0
        self.commits = 0

    def load(self, ledger: Ledger) -> None:
        self._add_accounts(
            [state.account for state in ledger.accounts()],
            {state.id: state.balance_tuple() for state in ledger.accounts()},
        )
        self.last_timestamp = ledger.state.last_timestamp

    def on_commit(self, changes: Changes) -> None:
        if changes.accounts_created:
            self._add_accounts(
                changes.accounts_created, {a.id: (0, 0, 0, 0) for a in changes.accounts_created}
            )
        balances = self.balances
        for account_id, dp, dpo, cp, cpo in changes.balances:
            balances[account_id] = (dp, dpo, cp, cpo)
        self.last_timestamp = max(self.last_timestamp, changes.last_timestamp)
        self.commits += 1

    def _add_accounts(
        self, created: Sequence[Account], balances: dict[int, tuple[int, int, int, int]]
    ) -> None:
        accounts = {**self.accounts, **{account.id: account for account in created}}
        merged = {**self.balances, **balances}
        by_participant: dict[str, list[int]] = {}
        debitable: dict[str, list[int]] = {}
        for account_id in sorted(accounts):
            account = accounts[account_id]
            by_participant.setdefault(account.participant, []).append(account_id)
            if account.kind not in ENGINE_ONLY_KINDS:
                debitable.setdefault(account.participant, []).append(account_id)
        self.balances = merged
        self.by_ref = {account.ref: account.id for account in accounts.values() if account.ref}
        self.sorted_ids = tuple(sorted(accounts))
        self.by_participant = {bic: tuple(ids) for bic, ids in by_participant.items()}
        self.debitable_by_participant = {bic: frozenset(ids) for bic, ids in debitable.items()}
        self.accounts = accounts  # Last: a reader finding an account also finds its balance.

    def get(self, account_id: int) -> tuple[Account, tuple[int, int, int, int]] | None:
        account = self.accounts.get(account_id)
        if account is None:
            return None
        return account, self.balances[account_id]


class PublishingStore:
    """The store, plus: after each durable commit, publish the new balances to readers."""

    def __init__(self, inner: Store, published: PublishedLedger) -> None:
        self.inner = inner
        self.published = published

    def commit(self, changes: Changes) -> None:
        self.inner.commit(changes)
        self.published.on_commit(changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class PublishingRecords:
    """The payment records, plus: after each durable ``record``, tell the listeners (the
    dashboard's live updates) which payments it wrote. Listeners run on the writer thread: they
    must only hand the news on, never block; one that fails is logged, the write stands."""

    def __init__(self, inner: Any, listeners: list[Callable[[list[Payment]], None]]) -> None:
        self.inner = inner
        self.listeners = listeners

    def record(self, entries: Iterable[RecordEntry], at: int) -> None:
        entries = list(entries)
        self.inner.record(entries, at)
        payments = [entry[0] for entry in entries] if self.listeners else []
        for listener in self.listeners:
            try:
                listener(payments)
            except Exception:
                logger.exception("record listener failed", extra={"event": "listener_failed"})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ReadStores:
    """Read-only store sessions for history reads: one per thread (SQLite), or a small pool
    (PostgreSQL sessions are costlier)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._pool: queue.Queue[Any] = queue.Queue()
        self._opened: list[Any] = []
        self._slots = threading.BoundedSemaphore(config.read_connections_max)
        self._lock = threading.Lock()

    @contextmanager
    def store(self) -> Iterator[Any]:
        database = self.config.database
        if database.kind is DatabaseKind.SQLITE:
            from sco_settle.storage import SqliteStore

            store = getattr(self._local, "store", None)
            if store is None:
                assert database.path is not None
                store = SqliteStore(database.path, readonly=True)
                self._local.store = store
            yield store
            return
        with self._slots:
            try:
                store = self._pool.get_nowait()
            except queue.Empty:
                from sco_settle.storage.postgres import PostgresStore

                store = PostgresStore(database.dsn, schema=database.schema, readonly=True)
                with self._lock:
                    self._opened.append(store)
            try:
                yield store
            finally:
                self._pool.put(store)

    def close(self) -> None:
        with self._lock:
            for store in self._opened:
                store.close()
            self._opened.clear()


@dataclass
class _Job:
    kind: str
    payload: Any
    future: Future[Any] = field(default_factory=Future)
    size: int = 1
    principal: Principal | None = None
    chain_open: bool = False  # transfers: the last one is linked (its chain is still open)
    # Fairness (``FairQueue``): whose queue the job waits in ("" for jobs of no participant) and
    # what it costs the writer, in units (``ServerConfig``, "Fairness limits").
    participant: str = ""
    units: int = 0
    # A payments job is handed to the writer in parts of whole payments (``take``), each a job of
    # its own; this job's future is answered once every part is, with their outcomes in order.
    item_units: int = 0  # units per payment; 0: never split
    handed: int = 0  # payments handed over in parts so far
    parts: list[_Job] = field(default_factory=list)
    part: bool = False  # a part of a bigger job (``take``): answering it answers no request

    def sliceable(self) -> bool:
        return self.kind == "payments" and self.item_units > 0 and self.size > 1

    def remaining_units(self) -> int:
        return self.item_units * (self.size - self.handed) if self.sliceable() else self.units

    def settled(self) -> bool:
        return self.future.done()

    def take(self, units: int) -> _Job | None:
        """The next ``units`` worth of payments (at least one) as a job of its own, or the whole
        job if none was handed over yet and ``units`` covers it."""
        count = min(self.size - self.handed, units // self.item_units)
        if count <= 0:
            return None
        if self.handed == 0 and count == self.size:
            self.handed = self.size
            return self
        start, self.handed = self.handed, self.handed + count
        part = _Job(
            "payments",
            self.payload[start : start + count],
            size=count,
            principal=self.principal,
            participant=self.participant,
            units=count * self.item_units,
            part=True,
        )
        self.parts.append(part)
        part.future.add_done_callback(self._part_done)
        return part

    def _part_done(self, _: Future[Any]) -> None:
        if self.future.done():
            return
        for part in self.parts:
            if part.future.done() and part.future.exception() is not None:
                self.future.set_exception(part.future.exception())
                self.parts = []  # No cycle (part -> callback -> self -> part) left to collect.
                return
        if self.handed == self.size and all(part.future.done() for part in self.parts):
            self.future.set_result([out for part in self.parts for out in part.future.result()])
            self.parts = []


class _AwaitedRecords:
    """The idempotency records the writer expects next, within one round.

    Every write a client makes through the API is followed, once answered, by the record of its
    answer (``idempotency``), which the handler queues back to the writer a moment later. If the
    writer went straight on to another participant's slice, that record (and so the answer to
    the client) would wait for the whole slice. So after answering client writes, the writer
    waits up to ``seconds`` for their records before the next group of the round (they come
    within a millisecond or two: the wait ends as soon as they are in); other work that may not
    wait for the round (``FairQueue.interim``) is taken meanwhile. A slice of a big batch is not
    counted: its record comes with the batch's last slice.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expected = 0
        self.deadline: float | None = None

    def answered(self, group: list[_Job]) -> None:
        self.expected += sum(1 for job in group if job.principal is not None and not job.part)

    def wait(self) -> float:
        """How long the writer may wait now for interim work."""
        if self.expected <= 0 or self.seconds <= 0:
            return 0.0
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.seconds
        left = self.deadline - now
        if left <= 0:  # They did not come (an answer that is not stored, a closed connection).
            self.expected, self.deadline = 0, None
            return 0.0
        return left

    def arrived(self, tiers: list[list[Any]]) -> None:
        records = sum(1 for tier in tiers for job in tier if getattr(job, "kind", "") == "record")
        self.expected = max(0, self.expected - records)
        if self.expected == 0:
            self.deadline = None


_frozen_at_start = threading.Event()


def _share_the_interpreter(config: ServerConfig) -> None:
    """Process-wide settings that keep request handlers responsive while the writer thread is
    CPU-bound (``ServerConfig``, "Fairness limits"): a short GIL switch interval, or handlers
    wait up to 5 ms for the GIL at every socket operation; rarer young-generation garbage
    collections, or a backlog's many live objects make full collections (which stop every
    thread) frequent; and everything loaded at start (the network, the ledger's accounts, the
    modules: about 100,000 objects that live as long as the process) moved out of the
    collector's sight (``gc.freeze``, once per process), so that a full collection, when it
    comes, walks only what was made since."""
    if config.writer_switch_interval_seconds > 0:
        sys.setswitchinterval(config.writer_switch_interval_seconds)
    threshold = config.writer_gc_young_threshold
    if threshold > 0 and gc.get_threshold()[0] < threshold:
        gc.set_threshold(threshold, *gc.get_threshold()[1:])
    if config.writer_gc_freeze_at_start and not _frozen_at_start.is_set():
        _frozen_at_start.set()
        gc.collect()
        gc.freeze()


_QUOTA_KINDS = frozenset({"transfers", "payments", "iso", "waiting", "return"})


def _quota_names(job: _Job) -> list[str]:
    """The write-quota buckets a job draws on: its participant's and its key's."""
    if job.principal is None or job.kind not in _QUOTA_KINDS:
        return []
    return [f"participant:{job.principal.participant}", f"key:{job.principal.key_id}"]


@dataclass(frozen=True)
class SwapLineRequest:
    """``action``: state (every line), draw, repay or rollover; ``on``: the day (default: the
    ledger clock's UTC day)."""

    action: str
    drawer: str = ""
    provider: str = ""
    amount_minor: int = 0
    months: int = 3
    interest_rate: Decimal = Decimal(0)
    tranche_id: str = ""
    on: dt.date | None = None


@dataclass(frozen=True)
class QuoteRequest:
    debtor_agent: str
    creditor_agent: str
    amount_minor: int
    currency: str
    creditor_currency: str
    routes_max: int


class LedgerService:
    def __init__(self, config: ServerConfig, network: Network, rates: RateTable) -> None:
        self.config = config
        self.network = network
        self.rates = rates
        self.published = PublishedLedger()
        self.read_stores = ReadStores(config)
        self.payment_reader = PaymentReader(
            lambda: _open_payment_records(config, readonly=True),
            per_thread=_payment_records_kind(config) is DatabaseKind.SQLITE,
            sessions_max=config.read_connections_max,
        )
        self.failure: BaseException | None = None
        self._queue = FairQueue(
            jobs_max=config.write_queue_max,
            lane_jobs_max=config.write_queue_participant_max,
            lane_units_max=config.write_queue_participant_units_max,
            quantum=config.write_quantum_units,
            round_jobs_max=JOBS_PER_ROUND_MAX,
        )
        self.quota = WriteQuota(
            config.write_units_per_second, config.write_units_burst, config.write_rate_buckets_max
        )
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sco-settle-writer", daemon=True)
        self._cycle_lock = threading.Lock()
        self.state_db: StateDb | None = None  # set by the app: cycles are recorded there
        self.end_of_day: EndOfDay | None = None  # with ``operating_day``, once state_db is set
        self.idempotency: Any = None  # set by the app: its records are written here
        self.started_at = time.time()
        # Called after each durable record of payment outcomes (``PublishingRecords``).
        self.record_listeners: list[Callable[[list[Payment]], None]] = []

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=60)
        self.read_stores.close()
        self.payment_reader.close()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # -- jobs (called from request handlers) -------------------------------------------------

    def _submit(self, job: _Job) -> Future[Any]:
        """Queue a job. A participant's write first takes its units from the participant's and
        the key's write quotas (``WriteQuota``), then waits in the participant's own queue
        (``FairQueue``); either may refuse it with ``RateLimitedError`` (429)."""
        if self.failure is not None:
            raise ServiceUnavailableError()
        if job.kind == "record":  # Answers a request already admitted: never refused.
            self._queue.put_internal(job)
            return job.future
        names = _quota_names(job)
        self.quota.take(names, job.units)
        try:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise QueueFullError(f"{self.config.write_queue_max} writes are waiting") from None
        except BaseException:
            self.quota.give_back(names, job.units)
            raise
        return job.future

    def admit(self, principal: Principal) -> None:
        """Refuse (``RateLimitedError``) a write of ``principal`` that ``_submit`` would refuse
        whatever its size: its participant or key is out of quota, or its queue is full. Cheap,
        so a route can ask before it reads and validates the body."""
        self.quota.admits([f"participant:{principal.participant}", f"key:{principal.key_id}"])
        self._queue.admits(principal.participant)

    def transfers(self, principal: Principal, batch: list[Transfer]) -> Future[Any]:
        chain_open = bool(batch) and bool(batch[-1].flags & _LINKED)
        return self._submit(
            _Job(
                "transfers",
                batch,
                size=len(batch),
                principal=principal,
                chain_open=chain_open,
                participant=principal.participant,
                units=max(1, len(batch)),
            )
        )

    def payments(
        self, payments: list[Payment], *, principal: Principal | None = None
    ) -> Future[Any]:
        """``principal``: the caller, whose quota the payments use and whose queue they wait in
        (None: an internal caller, no quota, a queue of its own)."""
        unit = self.config.write_units_per_payment
        return self._submit(
            _Job(
                "payments",
                payments,
                size=len(payments),
                principal=principal,
                participant=principal.participant if principal else "",
                units=unit * max(1, len(payments)),
                item_units=unit,
            )
        )

    def iso_message(
        self,
        data: bytes,
        sender_bic: str,
        caller_bic: str,
        *,
        principal: Principal | None = None,
    ) -> Future[Any]:
        """``caller_bic``: the authenticated participant; the message grants nothing more.
        ``principal`` as for ``payments``; a message costs one payment per transaction."""
        transactions = max(1, data.count(b"TxInf>") // 2)  # Opening and closing tags.
        return self._submit(
            _Job(
                "iso",
                (data, sender_bic, caller_bic),
                principal=principal,
                participant=principal.participant if principal else "",
                units=self.config.write_units_per_payment * transactions,
            )
        )

    def record(self, scope: str, key: str, response: Any) -> Future[Any]:
        """Store an idempotency record (on this thread, merged with others into one commit)."""
        return self._submit(_Job("record", (scope, key, response)))

    def quote(self, request: QuoteRequest) -> Future[Any]:
        return self._submit(
            _Job(
                "quote",
                request,
                participant=request.debtor_agent,
                units=self.config.write_units_per_payment,
            )
        )

    def fx_quote(self, request: FxQuoteRequest, principal: Principal) -> Future[Any]:
        """A firm FX quote (``FxQuote``) or its refusal (a rejected ``PaymentOutcome``)."""
        return self._submit(
            _Job(
                "fx_quote",
                request,
                principal=principal,
                participant=principal.participant,
                units=self.config.write_units_per_payment,
            )
        )

    def swap_line(self, request: SwapLineRequest, principal: Principal) -> Future[Any]:
        """A central bank's action on a swap line (``SwapLineRequest``), or the lines' state:
        the answer is the action's result or the ``DrawRefused`` that refused it."""
        return self._submit(
            _Job(
                "swap_line",
                request,
                principal=principal,
                participant=principal.participant,
                units=self.config.write_units_per_payment,
            )
        )

    def fx_quote_found(self, quote_id: str, principal: Principal) -> Future[Any]:
        """``(FxQuote, QuoteStatus)`` or None: read on the writer, which owns the quotes."""
        return self._submit(
            _Job("fx_quote_read", quote_id, principal=principal, participant=principal.participant)
        )

    def change_waiting(
        self, payment_id: str, priority: Priority | None, principal: Principal
    ) -> Future[Any]:
        """Cancel (``priority`` None) or re-prioritise the caller's own waiting payment; the
        answer is a ``RequestOutcome``."""
        return self._submit(
            _Job(
                "waiting",
                (payment_id, priority, principal.participant),
                principal=principal,
                participant=principal.participant,
                units=self.config.write_units_per_payment,
            )
        )

    def return_payment(
        self, payment_id: str, return_id: str, amount: tuple[int, str] | None, reason: str,
        principal: Principal,
    ) -> Future[Any]:  # fmt: skip
        """Return (part of) a payment the caller received: a payment back (``RequestOutcome``)."""
        return self._submit(
            _Job(
                "return",
                (payment_id, return_id, amount, reason, principal.participant),
                principal=principal,
                participant=principal.participant,
                units=self.config.write_units_per_payment,
            )
        )

    def cycle(self, currencies: frozenset[str] | None, requested_by: str) -> Future[Any]:
        return self._submit(
            _Job(
                "cycle",
                (currencies, requested_by),
                participant=requested_by,
                units=self.config.write_quantum_units,
            )
        )

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as error:
            self._startup_error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        finally:
            self._shut()

    def _open(self) -> None:
        from sco_settle.payments.network_view import NetworkView

        self.store = _open_store(self.config)
        records = None
        try:
            self.ledger = Ledger(PublishingStore(self.store, self.published))
            if not self.ledger.accounts():
                from sco_settle.network.install import install_network

                install_network(self.ledger, self.network)
            self.records = records = _open_payment_records(self.config)
            self.view = NetworkView(self.network, self.rates)
            calendars = load_calendars() if self.config.operating_day else None
            self.engine = PaymentEngine(
                self.ledger,
                self.view,
                PublishingRecords(self.records, self.record_listeners),
                EngineSettings(mode=self.config.mode, calendars=calendars),
            )
            recovered = self.engine.recovered
            logger.log(
                logging.ERROR if recovered.foreign else logging.INFO,
                "payment records reconciled with the ledger: %s",
                recovered.summary(),
                extra={"event": "payments_recovered"},
            )
            for problem in recovered.foreign:
                logger.error(problem, extra={"event": "payment_inconsistent"})
        except BaseException:
            if records is not None:
                records.close()
            self.store.close()
            raise
        self.published.load(self.ledger)
        assert UNUSABLE_ID not in self.published.accounts
        self._last_tick = self._last_lsm = time.monotonic()

    def _shut(self) -> None:
        if self.failure is not None:
            self._fail_queued(self.failure)
        self.records.close()
        if self.ledger.closed:  # Closed by a failed commit: the store is still open.
            self.store.close()
        else:
            self.ledger.close()

    def _loop(self) -> None:
        _share_the_interpreter(self.config)
        while True:
            tiers = self._drain()
            stop = any(job is _STOP for tier in tiers for job in tier)
            if time.monotonic() - self._last_tick >= self.config.tick_seconds:
                stop = self._guarded([], self._tick) or stop
            pending = deque(self._tier_groups(tiers))
            awaited = _AwaitedRecords(self.config.writer_record_wait_seconds)
            ran = False
            while pending:
                if ran:  # Between groups: what must not wait for the rest of the round.
                    urgent = self._queue.interim(awaited.wait())
                    awaited.arrived(urgent)
                    pending.extendleft(reversed(self._tier_groups(urgent)))
                group = pending.popleft()
                ran = True
                if self.failure is not None:
                    for job in group:
                        job.future.set_exception(ServiceUnavailableError())
                    continue
                stop = self._guarded(group, functools.partial(self._execute, group)) or stop
                awaited.answered(group)
            if stop:
                return

    def _tier_groups(self, tiers: list[list[Any]]) -> list[list[_Job]]:
        return [
            group
            for tier in tiers
            for group in self._groups([job for job in tier if job is not _STOP])
        ]

    def _drain(self) -> list[list[Any]]:
        """The next round of waiting jobs (at most ``JOBS_PER_ROUND_MAX``), fair between
        participants: tiers to run in order (``FairQueue.round``); ``[]`` if nothing came
        within ``tick_seconds``. After the stop marker: everything still waiting."""
        return self._queue.round(self.config.tick_seconds)

    def _groups(self, jobs: list[_Job]) -> list[list[_Job]]:
        """The jobs of one round as groups that share a commit, kinds in order of arrival.

        Jobs waiting together are concurrent requests (none has been answered yet), so any
        order among them is one the clients could have seen; within a kind, arrival order is
        kept. A transfer job whose chain is still open ends its group.
        """
        limits = {
            "transfers": self.config.group_events_max,
            "payments": self.config.group_payments_max,
            "record": RECORDS_PER_COMMIT_MAX,
        }
        by_kind: dict[str, list[list[_Job]]] = {}
        sizes: dict[str, int] = {}  # events in the kind's last group
        for job in jobs:
            groups = by_kind.setdefault(job.kind, [])
            limit = limits.get(job.kind)
            if (
                limit is None
                or not groups
                or groups[-1][-1].chain_open
                or sizes[job.kind] + job.size > limit
            ):
                groups.append([job])
                sizes[job.kind] = job.size
            else:
                groups[-1].append(job)
                sizes[job.kind] += job.size
        return [group for groups in by_kind.values() for group in groups]

    def _guarded(self, group: list[_Job], work: Callable[[], None]) -> bool:
        """Run ``work``; a failure fails the group's futures. True: a write fault (a failed
        ledger commit or payment-records write, which stops the engine: ``EngineStopped``) or a
        broken invariant means the writer must stop; a restart recovers the durable state.
        (Found by deterministic simulation: running on after a failed records write returned a
        payment twice; ``tests/dst/test_findings.py``.)"""
        try:
            work()
        except Exception as error:
            for job in group:
                if not job.future.done():
                    job.future.set_exception(error)
            engine_stopped = self.engine is not None and self.engine.stopped is not None
            if self.ledger.closed or engine_stopped or isinstance(error, AssertionError):
                self.failure = error
                logger.critical(
                    "ledger service stopped; restart it to recover the committed state",
                    exc_info=error,
                    extra={"event": "service_failed"},
                )
                self._fail_queued(error)
                return True
            logger.error("writer job failed", exc_info=error, extra={"event": "job_failed"})
        return False

    def _fail_queued(self, error: BaseException) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                job.future.set_exception(ServiceUnavailableError())

    def _execute(self, group: list[_Job]) -> None:
        kind = group[0].kind
        if kind == "transfers":
            self._run_transfers(group)
        elif kind == "payments":
            self._run_payments(group)
        elif kind == "record":
            assert self.idempotency is not None
            self.idempotency.save([job.payload for job in group])
            for job in group:
                job.future.set_result(None)
        elif kind == "iso":
            self._run_iso(group[0])
        elif kind == "quote":
            group[0].future.set_result(self._run_quote(group[0].payload))
        elif kind == "swap_line":
            group[0].future.set_result(self._run_swap_line(group[0].payload))
        elif kind == "fx_quote":
            group[0].future.set_result(self.engine.quote_fx(group[0].payload))
        elif kind == "fx_quote_read":
            found = self.engine.quotes.get_quote(group[0].payload)
            status = None if found is None else quote_status(self.engine, found)
            group[0].future.set_result(None if found is None else (found, status))
        elif kind == "cycle":
            group[0].future.set_result(self._run_cycle(*group[0].payload))
        elif kind == "return":
            payment_id, return_id, amount, reason, participant = group[0].payload
            answer = self.engine.return_payment(
                payment_id, returned_by=participant, reason=reason, amount=amount,
                return_id=return_id,
            )  # fmt: skip
            group[0].future.set_result(answer)
        elif kind == "waiting":
            payment_id, priority, participant = group[0].payload
            if priority is None:
                answer = self.engine.cancel(payment_id, requested_by=participant)
            else:
                answer = self.engine.reprioritise(payment_id, priority, requested_by=participant)
            group[0].future.set_result(answer)
        else:
            raise AssertionError(f"unknown job kind {kind}")

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        self.ledger.expire_pending()
        if self.end_of_day is None and self.config.operating_day and self.state_db is not None:
            calendars = self.engine.settings.calendars
            assert calendars is not None  # set with operating_day (``_open``)
            self.end_of_day = EndOfDay(
                self.engine, calendars, self.state_db, self.config.statements_dir
            )
        if self.end_of_day is not None:
            self.end_of_day.run_due(dt.datetime.now(dt.UTC))
        if (
            self.engine.mode.runs_when_idle
            and self.engine.queue
            and self._last_tick - self._last_lsm >= LSM_INTERVAL_SECONDS
        ):
            self._last_lsm = self._last_tick
            self.engine.run_cycle()

    # -- transfers --------------------------------------------------------------------------

    def _run_transfers(self, group: list[_Job]) -> None:
        """One ledger batch for the group's jobs. A job whose own transfers cannot be prepared
        fails alone (its future), before anything is applied: the others go on without it."""
        from sco_settle.domain.transfer import check_text
        from sco_settle.ledger.jsonl import BatchFormatError

        batch: list[Transfer] = []
        bounds = []
        ready = []
        created_pending: dict[int, Transfer] = {}  # by the group's earlier jobs, not yet stored
        for job in group:
            assert job.principal is not None
            try:
                for transfer in job.payload:  # Text no store can keep would fail the commit.
                    if type(transfer.ref) is str:
                        check_text(transfer.ref)
                items = self._usable_transfers(job.principal, job.payload, created_pending)
            except AssertionError:
                raise  # A bug, not bad input: the writer stops (``_guarded``).
            except (ValueError, TypeError, OverflowError) as error:  # This job's own input.
                logger.warning(
                    "transfer batch refused by the writer",
                    exc_info=error,
                    extra={"event": "job_refused"},
                )
                job.future.set_exception(
                    BatchFormatError(f"a transfer cannot be applied ({type(error).__name__})")
                )
                continue
            except Exception as error:
                logger.error("writer job failed", exc_info=error, extra={"event": "job_failed"})
                job.future.set_exception(error)
                continue
            for transfer in items:
                if transfer.flags & _PENDING and not transfer.flags & _RESOLVE:
                    created_pending.setdefault(transfer.id, transfer)
            bounds.append((len(batch), len(items)))
            batch.extend(items)
            ready.append(job)
        if not ready:
            return
        results = self.ledger.create_transfers(batch)
        assert len(results) == len(batch)
        for job, (start, count) in zip(ready, bounds, strict=True):
            job.future.set_result(results[start : start + count])

    def _usable_transfers(
        self,
        principal: Principal,
        batch: list[Transfer],
        created_pending: dict[int, Transfer],
    ) -> list[Transfer]:
        """A participant's batch with every account and pending transfer it may not debit
        replaced by ``UNUSABLE_ID``: the ledger then answers ``debit_account_not_found`` or
        ``pending_transfer_not_found``, exactly as for ids that do not exist, and a failure
        inside a linked chain fails the chain as usual.

        A pending transfer is judged by the transfer the ledger will resolve: the stored one,
        else the first one created earlier in this group (merged requests), else the first one
        earlier in this batch; exactly the order in which the ledger itself would find it.
        """
        if principal.role is Role.NETWORK_OPERATOR:
            return batch
        assert principal.role is Role.PARTICIPANT, principal.role
        own = self.published.debitable_by_participant.get(principal.participant, frozenset())
        # Only ids a store can hold (as ``Ledger._prefetch``): any other is not found anyway.
        resolving = [
            t.pending_id
            for t in batch
            if t.flags & _RESOLVE and type(t.pending_id) is int and 0 < t.pending_id < ID_MAX
        ]
        stored = self.ledger.store.get_transfers(resolving) if resolving else {}
        pending = {**created_pending, **stored}
        usable = []
        for transfer in batch:
            if transfer.flags & _RESOLVE:
                found = pending.get(transfer.pending_id)
                if found is not None and found.debit_account not in own:
                    transfer = transfer._replace(pending_id=UNUSABLE_ID)
                if transfer.debit_account and transfer.debit_account not in own:
                    transfer = transfer._replace(debit_account=UNUSABLE_ID)
            elif transfer.debit_account not in own and transfer.debit_account != 0:
                same = transfer.credit_account == transfer.debit_account
                transfer = transfer._replace(
                    debit_account=UNUSABLE_ID,
                    credit_account=UNUSABLE_ID if same else transfer.credit_account,
                )
            if transfer.flags & _PENDING and not transfer.flags & _RESOLVE:
                pending.setdefault(transfer.id, transfer)  # A later item may resolve it.
            usable.append(transfer)
        return usable

    # -- payments ---------------------------------------------------------------------------

    def _run_payments(self, group: list[_Job]) -> None:
        payments = [payment for job in group for payment in job.payload]
        outcomes = self.engine.submit_many(payments)
        start = 0
        for job in group:
            job.future.set_result(outcomes[start : start + job.size])
            start += job.size

    def _run_iso(self, job: _Job) -> None:
        from sco_settle.gateway.iso import SenderNotPermitted, submit_message

        data, sender_bic, caller_bic = job.payload
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        try:
            reply = submit_message(
                data,
                self.engine,
                now=now,
                sender_bic=sender_bic,
                caller_bic=caller_bic,
                refuse_foreign=True,
            )
        except SenderNotPermitted:
            job.future.set_exception(
                ApiError(
                    "debtor_agent_not_permitted",
                    f"this key sends only as {caller_bic}: debtor agent of its payments,"
                    " returning (creditor) agent of its returns",
                )
            )
            return
        job.future.set_result(reply)

    def _run_quote(self, request: QuoteRequest) -> RouteResult:
        graph = self.view.graph(self.ledger, self.engine.scenario)
        return find_routes(
            graph,
            request.debtor_agent,
            request.creditor_agent,
            request.amount_minor,
            request.currency,
            request.creditor_currency,
            self.view.rates_at(self.engine.clock()),
            k=request.routes_max,
            hop_charge_minor=self.engine.settings.hop_charge_minor,
        )

    # -- swap lines -------------------------------------------------------------------------

    def _run_swap_line(self, request: SwapLineRequest) -> Any:
        from sco_settle.payments.swap_lines import DrawRefused, SwapLineDesk

        desk = SwapLineDesk(self.ledger, self.view)
        on = request.on or dt.datetime.fromtimestamp(self.engine.clock() // 10**9, dt.UTC).date()
        try:
            if request.action == "state":
                return [desk.state(side, on) for side in desk.sides()]
            if request.action == "draw":
                return desk.draw(
                    request.drawer, request.provider, request.amount_minor, on, request.months,
                    request.interest_rate, self.view.rates_at(self.engine.clock()),
                )  # fmt: skip
            if request.action == "repay":
                return desk.repay(request.drawer, request.provider, request.tranche_id, on)
            assert request.action == "rollover", request.action
            return desk.rollover(
                request.drawer, request.provider, request.tranche_id, on, request.months,
                request.interest_rate, self.view.rates_at(self.engine.clock()),
            )  # fmt: skip
        except DrawRefused as refused:
            return refused

    # -- netting cycles ---------------------------------------------------------------------

    def _run_cycle(self, currencies: frozenset[str] | None, requested_by: str) -> dict[str, Any]:
        """One cycle of the settlement mode (DNS: net and settle the held payments; RTGS: the
        liquidity-saving mechanism). With ``currencies``, only payments entirely in those
        currencies take part; the others are not touched."""
        started_at = time.time_ns()
        report = self.engine.run_cycle(Selection(currencies=currencies))
        return self._record_cycle(
            self.engine.mode.cycle_kind, currencies, requested_by, started_at, report.as_dict()
        )

    def _record_cycle(
        self,
        kind: str,
        currencies: frozenset[str] | None,
        requested_by: str,
        started_at: int,
        report: dict[str, Any],
    ) -> dict[str, Any]:
        assert self.state_db is not None
        report.pop("cycle", None)  # The engine's own counter restarts with the process.
        finished_at = time.time_ns()
        codes = sorted(currencies) if currencies is not None else None
        with self.state_db.transaction(durable=True) as execute:
            rows = execute("SELECT coalesce(max(cycle_id), 0) FROM api_netting_cycles")
            cycle_id = int(rows[0][0]) + 1
            execute(
                "INSERT INTO api_netting_cycles (cycle_id, kind, currencies, requested_by,"
                " started_at, finished_at, report) VALUES (?,?,?,?,?,?,?)",
                (
                    cycle_id,
                    kind,
                    json.dumps(codes),
                    requested_by,
                    started_at,
                    finished_at,
                    json.dumps(report, sort_keys=True),
                ),
            )
            fields = (cycle_id, kind, codes, requested_by, started_at, finished_at, report)
            cycle = dict(zip(CYCLE_FIELDS, fields, strict=True))  # The audit chain's entry.
            tables = audit_tables(self.state_db, execute)
            append_entry(execute, tables, AuditKind.NETTING_CYCLE, requested_by, cycle)
        return cycle_json(
            (cycle_id, kind, json.dumps(codes), requested_by, started_at, finished_at, report)
        )


def cycle_json(row: Sequence[Any]) -> dict[str, Any]:
    cycle_id, kind, currencies, requested_by, started_at, finished_at, report = row
    if isinstance(report, str):
        report = json.loads(report)
    return {
        "cycle_id": int(cycle_id),
        "kind": kind,
        "currencies": json.loads(currencies) if isinstance(currencies, str) else currencies,
        "requested_by": requested_by,
        "started_at": int(started_at),
        "finished_at": int(finished_at),
        "settled": int(report.get("settled", 0)),
        "deferred": int(report.get("deferred", 0)),
        "rejected": int(report.get("rejected", 0)),
        "gross_minor": {k: int(v) for k, v in report.get("gross_minor", {}).items()},
        "net_minor": {k: int(v) for k, v in report.get("net_minor", {}).items()},
    }


def _open_store(config: ServerConfig) -> Any:
    database = config.database
    if database.kind is DatabaseKind.SQLITE:
        from sco_settle.storage import SqliteStore

        assert database.path is not None
        return SqliteStore(database.path)
    from sco_settle.storage.postgres import PostgresStore

    store = PostgresStore(database.dsn, schema=database.schema)
    # psycopg prepares a statement after five runs, and PostgreSQL may then keep a generic plan
    # for ``id = ANY($1)``: a sequential scan comparing each row with the whole array, seconds
    # for one batch of thousands of ids once the table has grown. Plan each run for its array.
    store.connection.execute("SET plan_cache_mode = force_custom_plan")
    return store


def _payment_records_kind(config: ServerConfig) -> DatabaseKind:
    """Where the payment records live: in the ledger's database, unless a SQLite file of their
    own was configured (``payment_records_path``)."""
    if config.payment_records_path is not None:
        return DatabaseKind.SQLITE
    return config.database.kind


def _open_payment_records(config: ServerConfig, *, readonly: bool = False) -> SqlPaymentRecords:
    """The payment records' writer (or a read-only session): a connection of their own, beside
    the ledger store's, in the same database."""
    database = config.database
    if _payment_records_kind(config) is DatabaseKind.SQLITE:
        from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

        path = config.payment_records_path or database.path
        assert path is not None
        # In the ledger's own file the ledger's fsync makes each intent durable (one WAL).
        shared = config.payment_records_path is None and database.kind is DatabaseKind.SQLITE
        return SqlitePaymentRecords(path, readonly=readonly, shares_wal_with_ledger=shared)
    from sco_settle.storage.payment_records_postgres import PostgresPaymentRecords

    return PostgresPaymentRecords(database.dsn, schema=database.schema, readonly=readonly)
