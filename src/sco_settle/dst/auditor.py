"""The auditor: a model of what clients were told, checked against the node after every step.

The auditor sees every request and every answer the node produced (whether or not it reached the
client), and the disk's synced offset at every crash. From those alone it knows what must hold,
and raises ``Violation`` when the node disagrees:

- **Nothing acknowledged is lost.** Every payment outcome a client received is in the payment
  records, as that outcome or a legal successor of it (queued may become settled, rejected or
  cancelled; settled may become returned; a final outcome never changes), for the instruction
  first answered. Every liquidity transfer a client was told is ``ok``/``exists`` is in the
  ledger.
- **Nothing is applied twice.** No payment id is settled by more than one chain (gross legs, an
  LSM pair, a net cycle); a resubmitted payment is answered as a duplicate, never run again; the
  returns of a payment never exceed what it delivered, and its record counts exactly the returns
  that settled; ``verify`` replays the ledger's journal (each transfer id once) at each restart.
- **Every acknowledged answer is the answer a retry gets.** A replayed answer is one the node
  produced for that key; once its idempotency record is durable (stored in this process's life,
  or synced before the crash), every retry gets exactly it, byte for byte, and never runs again.
- **Per currency, debits equal credits**: ``LedgerState.check_totals`` after every step.
- **Payment records reconcile with the ledger**: ``PaymentEngine.audit`` after every step (chains
  of payments whose intent is still outstanding are left to the next start's recovery); a
  payment recorded as not settled has no chain; at every restart, recovery leaves no intent and
  finds no foreign chain; the engine's queue matches the records' queue while nothing failed.
- **PvP chains are whole**: no committed ledger batch ends inside a linked chain, and every
  leg of a settled payment's chain (both currency legs, every hop) was committed in one batch.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace

from sco_settle.domain.ids import is_engine_id
from sco_settle.domain.transfer import TransferFlags
from sco_settle.dst.node import CANCEL, LIQUIDITY, PAY, RETURN, Node, Reply, Request
from sco_settle.ledger import InvariantViolation
from sco_settle.ledger.invariants import verify
from sco_settle.payments import recovery
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentStatus, Reason
from sco_settle.payments.plan import leg_id, lsm_ids
from sco_settle.payments.recovery import NET_CYCLE_TEXT

_LINKED = int(TransferFlags.LINKED)
_NO_RECORD = re.compile(r"ledger transfer (\d+) \(code \d+\) has no record")
_SETTLED = (PaymentStatus.SETTLED, PaymentStatus.RETURNED)


class Violation(Exception):
    """A guarantee the auditor checks does not hold."""


@dataclass
class _Key:
    """One idempotency key: the answers the node tried to store under it, in order."""

    bodies: list[bytes] = field(default_factory=list)
    stored: bytes | None = None  # the answer that must be found: its record survives
    stored_at: int = 0  # where that record ends in the log


def same_instruction(first: Payment, other: Payment) -> bool:
    """The engine's rule: a resubmission may change the priority, nothing else."""
    return first == other or replace(first, priority=other.priority) == other


def successor_problem(told: PaymentOutcome, now: PaymentOutcome) -> str:
    """Why ``now`` cannot follow an outcome a client was ``told`` ("" if it can)."""
    status = told.status
    if status is PaymentStatus.QUEUED:
        return ""
    if status in _SETTLED:
        allowed = _SETTLED if status is PaymentStatus.SETTLED else (PaymentStatus.RETURNED,)
        if now.status not in allowed:
            return f"was {status}, now {now.status}"
        if (now.transfer_ids, now.amount_sent_minor, now.amount_delivered_minor) != (
            told.transfer_ids,
            told.amount_sent_minor,
            told.amount_delivered_minor,
        ):
            return "its settlement (legs or amounts) changed"
        return ""
    if now.status is not status or now.reason is not told.reason:
        return f"was {status} ({told.reason}), now {now.status} ({now.reason})"
    return ""


class Auditor:
    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], _Key] = {}
        self.told: dict[str, PaymentOutcome] = {}  # payment id -> the latest outcome answered
        self.instructions: dict[str, Payment] = {}  # payment id -> the instruction answered
        self.transfers: set[int] = set()  # liquidity transfers answered ok/exists
        self.checks = 0
        self._batch_of: dict[int, int] = {}  # engine transfer id -> its committed batch
        self._batches_seen = 0

    # -- what happened ----------------------------------------------------------------------------

    def storing(self, answers: list[tuple[Request, Reply]]) -> None:
        """The node is about to store these answers (the record may survive even if the store
        never returns)."""
        for request, reply in answers:
            self.keys.setdefault((request.scope, request.key), _Key()).bodies.append(reply.body)

    def answered(self, request: Request, reply: Reply, *, delivered: bool) -> None:
        """The node answered ``request``; ``delivered``: the client received it."""
        key = self.keys.get((request.scope, request.key))
        where = f"request {request.number} ({request.kind}, key {request.key})"
        if reply.replayed:
            if key is None or reply.body not in key.bodies:
                raise Violation(f"{where}: replayed an answer the node never gave for its key")
            if key.stored is not None and reply.body != key.stored:
                raise Violation(f"{where}: replayed another answer than the one stored")
            if key.stored is None:  # Read back from the disk at a start: durable from now on.
                key.stored, key.stored_at = reply.body, 0
            return  # A replay repeats the first answer: it says nothing new about the payment.
        if reply.status == 409:
            return  # In progress: refused, nothing ran.
        if key is not None and key.stored is not None:
            raise Violation(f"{where}: its stored answer was lost and the request ran again")
        if reply.saved_at and key is not None:
            key.stored, key.stored_at = reply.body, reply.saved_at
        if delivered and reply.status < 500:
            self._learn(request, reply, where)

    def crashed(self, synced: int) -> None:
        """The machine died with ``synced`` bytes of the log durable: idempotency records past
        that may be gone, which a retry may then find out."""
        for key in self.keys.values():
            if key.stored is not None and key.stored_at > synced:
                key.stored = None

    def _learn(self, request: Request, reply: Reply, where: str) -> None:
        answer = reply.answer
        if request.kind == PAY:
            self._paid(request.payload, answer, where)
        elif request.kind == CANCEL and answer.accepted and answer.payment is not None:
            self._advance(request.payload[0], answer.payment, where)
        elif request.kind == RETURN and answer.accepted and answer.payment is not None:
            self._advance(answer.payment.payment_id, answer.payment, where)
        elif request.kind == LIQUIDITY:
            for transfer, result in zip(request.payload, answer, strict=True):
                if result in ("ok", "exists"):
                    self.transfers.add(transfer.id)

    def _paid(self, payment: Payment, outcome: PaymentOutcome, where: str) -> None:
        payment_id = payment.payment_id
        first = self.instructions.get(payment_id)
        if outcome.duplicate and outcome.reason is Reason.DUPL:
            if first is not None and same_instruction(first, payment):
                raise Violation(f"{where}: the same instruction was refused DUPL")
            return  # Another instruction under a used id: refused, as it must be.
        if first is not None and not same_instruction(first, payment):
            raise Violation(f"{where}: a second instruction was accepted under {payment_id}")
        if first is not None and not outcome.duplicate:
            raise Violation(f"{where}: {payment_id} was answered before and ran again")
        self.instructions.setdefault(payment_id, payment)
        self._advance(payment_id, outcome, where)

    def _advance(self, payment_id: str, outcome: PaymentOutcome, where: str) -> None:
        told = self.told.get(payment_id)
        if told is not None:
            problem = successor_problem(told, outcome)
            if problem:
                raise Violation(f"{where}: {payment_id} answered inconsistently: {problem}")
        self.told[payment_id] = outcome

    # -- what must hold -----------------------------------------------------------------------

    def restarted(self, node: Node) -> None:
        """After a start: recovery left nothing to do, and the journal replays."""
        recovered = node.engine.recovered
        if recovered.foreign:
            raise Violation(f"recovery found chains of other payments: {recovered.foreign[:2]}")
        if node.records.intents():
            raise Violation(f"{len(node.records.intents())} intents outstanding after recovery")
        report = verify(node.store)
        if not report.ok:
            raise Violation(f"the ledger's journal does not replay: {report.violation}")
        self._batch_of.clear()
        self._batches_seen = 0
        self.check(node)

    def check(self, node: Node) -> None:
        self.checks += 1
        try:
            node.ledger.state.check_totals()
        except InvariantViolation as error:
            raise Violation(f"debits differ from credits: {error}") from error
        self._nothing_lost(node)
        # After a failed write, until the next start recovers, the ledger may hold chains the
        # records do not know yet: those of outstanding intents, and of queued payments the
        # liquidity-saving mechanism settled. Everything else must hold at once.
        clean = not node.failures
        intents = self._intent_chains(node)
        self._reconciles(node, intents, clean=clean)
        self._applied_once(node, intents, clean=clean)
        self._chains_whole(node)
        if clean and not intents:
            self._queue_matches(node)

    def _nothing_lost(self, node: Node) -> None:
        records = node.records
        for payment_id, told in self.told.items():
            found = records.get(payment_id)
            if found is None:
                raise Violation(f"acknowledged payment {payment_id} ({told.status}) was lost")
            problem = successor_problem(told, found[1])
            if problem:
                raise Violation(f"acknowledged payment {payment_id}: {problem}")
            first = self.instructions.get(payment_id)
            if first is not None and not same_instruction(first, found[0]):
                raise Violation(f"{payment_id}: the records hold another instruction")
        missing = self.transfers - set(node.store.get_transfers(self.transfers))
        if missing:
            raise Violation(f"acknowledged liquidity transfers lost: {sorted(missing)[:3]}")

    def _intent_chains(self, node: Node) -> set[int]:
        """The ledger transfers of payments whose intent is outstanding (a failed step the node
        ran on; the next start records them)."""
        found: set[int] = set()
        for payment, kind in node.records.intents():
            if recovery.parse_cycle_intent(kind) is not None:
                continue
            try:
                chain = recovery.find_chain(payment.payment_id, node.store.get_transfers)
            except recovery.ForeignChain as error:
                raise Violation(f"an outstanding intent's chain is broken: {error}") from error
            if chain is not None:
                found.update(chain.ids)
        return found

    def _reconciles(self, node: Node, intents: set[int], *, clean: bool) -> None:
        report = node.engine.audit()
        for finding in report.findings:
            orphan = _NO_RECORD.fullmatch(finding.problem)
            if orphan and (not clean or int(orphan.group(1)) in intents):
                continue
            raise Violation(f"records and ledger disagree: {finding.payment_id} {finding.problem}")

    def _applied_once(self, node: Node, intents: set[int], *, clean: bool) -> None:
        records = list(node.records.records())
        probes: dict[int, str] = {}
        for payment, _ in records:
            probes[leg_id(payment.payment_id, 0)] = payment.payment_id
            probes[lsm_ids(payment.payment_id)[0]] = payment.payment_id
        chains: dict[str, int] = defaultdict(int)
        for transfer_id in node.store.get_transfers(list(probes)):
            chains[probes[transfer_id]] += 1
        returned: dict[str, int] = defaultdict(int)
        for payment, outcome in records:
            payment_id = payment.payment_id
            settled = chains[payment_id] + outcome.reason_text.startswith(NET_CYCLE_TEXT)
            if settled > 1:
                raise Violation(f"{payment_id} settled {settled} times")
            pending = leg_id(payment_id, 0) in intents or lsm_ids(payment_id)[0] in intents
            waited = outcome.status is PaymentStatus.QUEUED and not clean
            if chains[payment_id] and outcome.status not in _SETTLED and not (pending or waited):
                raise Violation(f"{payment_id} is {outcome.status} but its chain is in the ledger")
            if payment.returns and outcome.status is PaymentStatus.SETTLED:
                returned[payment.returns] += payment.amount_minor
        for payment, outcome in records:
            expected = returned.get(payment.payment_id, 0)
            if outcome.amount_returned_minor != expected:
                raise Violation(
                    f"{payment.payment_id}: records {outcome.amount_returned_minor} returned,"
                    f" its settled returns {expected}"
                )
            if expected > outcome.amount_delivered_minor:
                raise Violation(f"{payment.payment_id}: returned more than it delivered")

    def _chains_whole(self, node: Node) -> None:
        batches = node.store.batches
        for number in range(self._batches_seen, len(batches)):
            batch = batches[number]
            if batch[-1].flags & _LINKED:
                raise Violation(f"ledger batch {number} ends inside a linked chain")
            for transfer in batch:
                if is_engine_id(transfer.id):
                    self._batch_of[transfer.id] = number
        self._batches_seen = len(batches)
        for payment, outcome in node.records.records():
            if outcome.status not in _SETTLED or outcome.reason_text.startswith(NET_CYCLE_TEXT):
                continue
            legs = {self._batch_of.get(i) for i in outcome.transfer_ids}
            if len(legs) != 1 or None in legs:
                raise Violation(
                    f"{payment.payment_id}: its chain was not committed whole in one batch"
                )

    def _queue_matches(self, node: Node) -> None:
        engine = node.engine
        waiting = set(engine.queue) | set(engine.warehouse)
        recorded = {payment.payment_id for payment, _ in node.records.queued()}
        if waiting != recorded:
            raise Violation(
                f"the engine's queue and the records' differ: {sorted(waiting ^ recorded)[:3]}"
            )
