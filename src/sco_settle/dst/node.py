"""One simulated server process: its write path, driven directly, one step at a time.

A node is what ``server.service`` composes: a ``Ledger`` on the store, the payment records, the
``PaymentEngine`` (whose start-up runs ``recover``), and the server's idempotency records. It
serves a group of requests as the server's writer thread does, without HTTP and without threads:

1. Each request claims its idempotency key (``begin``); a stored answer is replayed at once, a key
   in use or reused for another request is refused (409, not stored).
2. The claimed requests run as writer jobs: all payments of the group in one ``submit_many``
   (group commit), each cancellation, return and liquidity transfer batch alone.
3. The answers are stored as idempotency records, in one transaction (as the writer merges the
   ``record`` jobs), and only then sent. A failed job answers 500, which is not stored.

Failure policy. By default a node stops at the first failed write, whatever wrote it (the
ledger, the payment records, the idempotency records), and must be restarted: restarting reads
back what survived on the disk and recovers. That is what ``server.service`` documents ("if a
commit fails ... the service stops taking writes"). With ``carry_on`` it does what
``LedgerService._guarded`` does: it stops when the ledger closed itself (a failed ledger
commit), the engine stopped itself (``EngineStopped``: any write failed inside an engine
operation), or the log refuses writes (a failed fsync), and otherwise runs on after a failed
job (a failed idempotency-record write, say). Before the engine stopped itself, running on left
its memory ahead of its records (see docs/dst.md, "Findings").

The simulation may not import ``server`` (only the command line does), so the idempotency records
come through ``IdempotencyWiring``, which ``cli.dst`` fills in with ``server.idempotency``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sco_settle.domain.transfer import Transfer
from sco_settle.dst.adapters import DiskPaymentRecords, DiskStateDb, DiskStore
from sco_settle.dst.disk import Faults, SimClock, SimFile
from sco_settle.dst.wal import Wal
from sco_settle.ledger import Ledger, LedgerClosedError
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.model import Payment, PaymentOutcome, RequestOutcome
from sco_settle.payments.network_view import NetworkView

PAY = "pay"
CANCEL = "cancel"
RETURN = "return"
LIQUIDITY = "liquidity"
MEDIA_TYPE = "application/json"
# What a job may fail with and the node survive (or restart from): the disk's faults, and the
# ledger refusing work after one of them. Anything else escaping the write path is a bug.
EXPECTED_FAILURES = (OSError, LedgerClosedError)


class StoredAnswer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...


class IdempotencyPort(Protocol):
    """What the simulation uses of ``server.idempotency.IdempotencyStore``."""

    def begin(self, scope: str, key: str, fingerprint: str) -> StoredAnswer | None: ...

    def save(self, records: list[tuple[str, str, Any]]) -> None: ...

    def release(self, scope: str, key: str) -> None: ...


@dataclass(frozen=True)
class IdempotencyWiring:
    """The server's idempotency records, handed in by the composition root (``cli.dst``).

    ``open`` makes the store over a node's ``DiskStateDb``; ``answer`` makes what ``save``
    stores from (fingerprint, status, media type, body); ``refused`` is what ``begin`` raises for
    a key in use or reused; ``wall_clock`` makes the store read the simulated clock (as
    ``time.time``) while the run lasts."""

    open: Callable[[DiskStateDb], IdempotencyPort]
    answer: Callable[[str, int, str, bytes], Any]
    refused: tuple[type[Exception], ...]
    wall_clock: Callable[[Callable[[], float]], AbstractContextManager[None]]


@dataclass(frozen=True)
class Parts:
    """The adapters a node is made of (a test swaps in a broken one to see it caught)."""

    store: Callable[[Wal, list[tuple[int, Any]]], DiskStore] = DiskStore
    records: Callable[[Wal, list[tuple[int, Any]]], DiskPaymentRecords] = DiskPaymentRecords
    state_db: Callable[[Wal, list[tuple[int, Any]]], DiskStateDb] = DiskStateDb


@dataclass(frozen=True)
class Request:
    """One client request: an idempotent write. ``payload`` by kind: ``PAY`` a ``Payment``;
    ``CANCEL`` (payment id, debtor agent); ``RETURN`` (payment id, creditor agent, return id);
    ``LIQUIDITY`` a tuple of ``Transfer``."""

    number: int
    kind: str
    scope: str
    key: str
    payload: Any

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.kind}\0{self.payload!r}".encode()).hexdigest()


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    replayed: bool = False
    # What the node answered, for the auditor: a ``PaymentOutcome`` (PAY), a ``RequestOutcome``
    # (CANCEL, RETURN), the ledger's results (LIQUIDITY); None for a replay or an error.
    answer: Any = None
    saved_at: int = 0  # where its idempotency record ends in the log (0: not stored)
    # The order the node ran the group's requests in: replays and refusals first, then the
    # payments (one group commit), then the other jobs, as the writer takes them by kind.
    order: int = 0


def encode(value: Any) -> bytes:
    """An answer's body: canonical JSON (sorted keys), so equal answers are equal bytes."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class Node:
    """One server process on the simulated disk. ``install`` runs on the fresh ledger before
    the engine starts (the network, at the first start)."""

    def __init__(
        self,
        disk: SimFile,
        faults: Faults,
        clock: SimClock,
        view: NetworkView,
        settings: EngineSettings,
        wiring: IdempotencyWiring,
        parts: Parts,
        *,
        install: Callable[[Ledger], None] | None = None,
        carry_on: bool = False,
    ) -> None:
        self.wiring = wiring
        self.carry_on = carry_on
        self.wal, records = Wal.open(disk, faults)
        self.store = parts.store(self.wal, records)
        self.ledger = Ledger(self.store, clock)
        if install is not None:
            install(self.ledger)
        self.records = parts.records(self.wal, records)
        self.db = parts.state_db(self.wal, records)
        try:
            self.idempotency = wiring.open(self.db)
            view.invalidate()  # Its graph was built on the ledger of the process that died.
            self.engine = PaymentEngine(self.ledger, view, self.records, settings)
        except BaseException:  # The start crashed or failed (its recovery writes).
            self.db.close()
            raise
        self.failures = 0  # jobs that failed since the node started
        # Told of the answers about to be stored (their record may outlive a crash in ``save``).
        self.storing: Callable[[list[tuple[Request, Reply]]], None] = lambda answers: None

    @property
    def must_restart(self) -> bool:
        stopped = self.failures > 0 and not self.carry_on
        engine_stopped = self.engine.stopped is not None  # as ``LedgerService._guarded``
        return stopped or engine_stopped or self.ledger.closed or self.wal.failed

    def close(self) -> None:
        self.db.close()

    # -- the writer -----------------------------------------------------------------------------

    def serve(self, group: list[Request]) -> list[Reply]:
        """Answer a group of requests as the server would (see the module's steps)."""
        replies: dict[int, Reply] = {}
        claimed: list[tuple[int, Request]] = []
        for position, request in enumerate(group):
            try:
                stored = self.idempotency.begin(request.scope, request.key, request.fingerprint)
            except self.wiring.refused as refusal:
                replies[position] = Reply(409, encode({"error": str(refusal)}))
                continue
            if stored is None:
                claimed.append((position, request))
            else:
                replies[position] = Reply(stored.status, bytes(stored.body), replayed=True)
        try:
            answered = self._run_jobs(claimed)
            replies.update(self._store_answers(claimed, answered))
        finally:
            for _, request in claimed:
                self.idempotency.release(request.scope, request.key)
        ran = sorted(replies, key=lambda position: (replies[position].order, position))
        for order, position in enumerate(ran):
            replies[position] = dataclasses.replace(replies[position], order=order)
        return [replies[position] for position in range(len(group))]

    def tick(self) -> bool:
        """The writer's timer: expire pending transfers, run a cycle while payments wait.
        False when it failed (the node may have to restart)."""
        try:
            self.ledger.expire_pending()
            if self.engine.queue or self.engine.warehouse:
                self.engine.run_cycle()
        except EXPECTED_FAILURES:
            self.failures += 1
            return False
        return True

    def _run_jobs(self, claimed: list[tuple[int, Request]]) -> dict[int, Reply]:
        answered: dict[int, Reply] = {}
        payments = [(position, r) for position, r in claimed if r.kind == PAY]
        jobs: list[list[tuple[int, Request]]] = [payments] if payments else []
        jobs += [[(position, r)] for position, r in claimed if r.kind != PAY]
        for number, job in enumerate(jobs, start=1):
            answered.update(
                (position, dataclasses.replace(reply, order=number))
                for position, reply in self._guarded(job).items()
            )
        return answered

    def _guarded(self, job: list[tuple[int, Request]]) -> dict[int, Reply]:
        """One writer job; a failure answers 500 for each of its requests."""
        if self.must_restart:  # The service stopped: the rest of the queue fails too.
            stopped = Reply(503, encode({"error": "stopped"}))
            return {position: stopped for position, _ in job}
        try:
            return dict(self._run_job(job))
        except EXPECTED_FAILURES as error:
            self.failures += 1
            failure = Reply(500, encode({"error": type(error).__name__}))
            return {position: failure for position, _ in job}

    def _run_job(self, job: list[tuple[int, Request]]) -> list[tuple[int, Reply]]:
        kind = job[0][1].kind
        if kind == PAY:
            payments: list[Payment] = [request.payload for _, request in job]
            outcomes = self.engine.submit_many(payments)
            return [
                (position, _payment_reply(outcome))
                for (position, _), outcome in zip(job, outcomes, strict=True)
            ]
        ((position, request),) = job
        if kind == CANCEL:
            payment_id, debtor_agent = request.payload
            answer = self.engine.cancel(payment_id, requested_by=debtor_agent)
        elif kind == RETURN:
            payment_id, creditor_agent, return_id = request.payload
            answer = self.engine.return_payment(
                payment_id, returned_by=creditor_agent, reason="AC04", return_id=return_id
            )
        else:
            assert kind == LIQUIDITY, kind
            transfers: tuple[Transfer, ...] = request.payload
            results = self.ledger.create_transfers(list(transfers))
            body = encode({"ids": [t.id for t in transfers], "results": results})
            return [(position, Reply(200, body, answer=tuple(results)))]
        return [(position, _request_reply(answer))]

    def _store_answers(
        self, claimed: list[tuple[int, Request]], answered: dict[int, Reply]
    ) -> dict[int, Reply]:
        """Store the answers that say what the request's content led to (not the 5xx), in one
        transaction; when that fails, the client gets a 500 although the work was done."""
        kept = [(position, r) for position, r in claimed if answered[position].status < 500]
        if not kept:
            return answered
        records = [
            (
                request.scope,
                request.key,
                self.wiring.answer(
                    request.fingerprint,
                    answered[position].status,
                    MEDIA_TYPE,
                    answered[position].body,
                ),
            )
            for position, request in kept
        ]
        self.storing([(request, answered[position]) for position, request in kept])
        try:
            self.idempotency.save(records)
        except EXPECTED_FAILURES as error:
            self.failures += 1
            body = encode({"error": type(error).__name__})
            failed = {
                position: dataclasses.replace(
                    answered[position], status=500, body=body, answer=None
                )
                for position, _ in kept
            }
            return {**answered, **failed}
        end = self.db.last_end
        return {
            **answered,
            **{
                position: dataclasses.replace(answered[position], saved_at=end)
                for position, _ in kept
            },
        }


def _payment_reply(outcome: PaymentOutcome) -> Reply:
    return Reply(200 if outcome.duplicate else 201, encode(outcome), answer=outcome)


def _request_reply(answer: RequestOutcome) -> Reply:
    # Accepted: 200; refused: 422, or 404 for a payment the caller may not act on.
    status = 200 if answer.accepted else 422 if answer.exists else 404
    return Reply(status, encode(answer), answer=answer)
