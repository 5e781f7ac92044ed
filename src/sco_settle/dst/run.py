"""One seed's run: the node, its clients, the faults and the auditor, all driven by one
``random.Random(seed)`` and one simulated clock.

A run:

1. draws its settings and its fault profile from the seed, installs the network on a fresh disk
   (no faults), and drains most of each bank's liquidity back to its central bank, so that
   payments queue, offset and resolve gridlock;
2. runs ``steps`` steps: time passes; the disk may fill up or be freed; the node serves a group
   of client requests or runs its timer (a liquidity-saving or netting cycle). Answers that take
   longer than the client waits, or get lost, never reach it. The auditor checks after every step;
3. on a crash (or a node that must restart) the machine loses power: the unsynced tail of the
   disk is lost, kept or torn, and a new node starts on what survived (its recovery runs; it may
   crash again);
4. quiesces: faults off, the node restarts, time passes and every unanswered request is retried
   until all are answered and the queue is empty; the auditor checks the end state.

The run's trace (each step, answer and fault) and its digest make "same seed, same run" a test.
"""

from __future__ import annotations

import hashlib
import random
import traceback
from collections import Counter
from dataclasses import dataclass, field

from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.transfer import Transfer
from sco_settle.dst.auditor import Auditor, Violation
from sco_settle.dst.disk import (
    CLIENT_TIMEOUT,
    DISK_FULL,
    RESPONSE_LOST,
    RETRY,
    Crash,
    FaultProfile,
    Faults,
    SimClock,
    SimFile,
)
from sco_settle.dst.node import (
    EXPECTED_FAILURES,
    IdempotencyWiring,
    Node,
    Parts,
    Reply,
    Request,
)
from sco_settle.dst.workload import Clients
from sco_settle.dst.world import World, draw_settings, world
from sco_settle.ledger import Ledger
from sco_settle.network.install import install_network
from sco_settle.payments.network_view import NetworkView

STEPS = 30
RESTARTS_MAX = 12  # crashes while starting count too; beyond this a run is stuck: a failure
QUIESCE_ROUNDS_MAX = 12
DRAIN_ID_BASE = 1_000_000
TIMEOUTS_MS = (500, 2_000, 10_000, 60_000)  # how long a client waits for an answer
RESPONSE_LOST_RATE = 0.03
DEFAULT_PARTS = Parts()


@dataclass
class SeedResult:
    seed: int
    steps: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    writes: int = 0  # durable writes begun with faults on (the write boundaries are 3 each)
    requests: int = 0
    checks: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # the payments' at the end
    failure: str | None = None
    trace: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.trace).encode()).hexdigest()

    @property
    def ok(self) -> bool:
        return self.failure is None


def replay_command(seed: int, steps: int = STEPS, *, carry_on: bool = False) -> str:
    suffix = "" if steps == STEPS else f" --steps {steps}"
    return f"sco-settle dst --seed {seed}{suffix}{' --carry-on' if carry_on else ''}"


def run_seed(
    seed: int,
    wiring: IdempotencyWiring,
    *,
    steps: int = STEPS,
    parts: Parts = DEFAULT_PARTS,
    crash_at: tuple[int, str] | None = None,
    profile: FaultProfile | None = None,
    carry_on: bool = False,
) -> SeedResult:
    """Run one seed; never raises for what the run found (``SeedResult.failure``).
    ``carry_on``: the node runs on after a failed job, as the server does today (``Node``)."""
    run = _Run(seed, wiring, parts, crash_at=crash_at, profile=profile, carry_on=carry_on)
    with wiring.wall_clock(run.clock.wall):
        try:
            run.main(steps)
        except Violation as violation:
            run.fail(f"auditor: {violation}")
        except Exception as error:  # A bug escaped the write path: it is what a run is for.
            run.fail("".join(traceback.format_exception_only(error)).strip(), error)
    return run.result


class _Run:
    def __init__(
        self,
        seed: int,
        wiring: IdempotencyWiring,
        parts: Parts,
        *,
        crash_at: tuple[int, str] | None,
        profile: FaultProfile | None,
        carry_on: bool,
    ) -> None:
        self.carry_on = carry_on
        self.rng = random.Random(seed)
        self.world: World = world()
        self.view: NetworkView = self.world.view()
        self.clock = SimClock()
        self.settings = draw_settings(self.rng)
        drawn = FaultProfile.draw(self.rng)
        self.faults = Faults(self.rng, profile or drawn, self.clock, crash_at=crash_at)
        self.disk = SimFile(self.faults)
        self.wiring, self.parts = wiring, parts
        self.clients = Clients(self.rng, self.world, self.view, self.clock)
        self.auditor = Auditor()
        self.result = SeedResult(seed)
        self.step = 0
        self.node: Node | None = None
        self._faults_logged = 0

    def trace(self, line: str) -> None:
        for fault in self.faults.log[self._faults_logged :]:
            self.result.trace.append(f"{self.step} ! {fault}")
        self._faults_logged = len(self.faults.log)
        self.result.trace.append(f"{self.step} {line}")

    def fail(self, text: str, error: BaseException | None = None) -> None:
        self.trace(f"FAILED {text}")
        detail = ""
        if error is not None:
            frames = traceback.extract_tb(error.__traceback__)[-6:]
            detail = " at " + " -> ".join(
                f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames
            )
        self.result.failure = f"step {self.step}: {text}{detail}"
        self._finish()

    def _finish(self) -> None:
        self.result.steps = self.step
        self.result.faults = self.faults.counts
        self.result.writes = self.faults.writes
        self.result.requests = self.clients.sent
        self.result.checks = self.auditor.checks

    # -- the run --------------------------------------------------------------------------------

    def main(self, steps: int) -> None:
        settings = self.settings
        policy = "carry on" if self.carry_on else "stop"
        self.trace(f"{settings.mode} fifo_bypass={settings.fifo_bypass}, on failure: {policy}")
        self.node = self._start(install=True)
        self.faults.enabled = True
        for self.step in range(1, steps + 1):
            try:
                self._one_step()
                if self.node.must_restart:
                    self.trace("node stopped: restart")
                    self._restart()
            except Crash:
                self._restart()
        self._quiesce()
        self._finish()

    def _one_step(self) -> None:
        assert self.node is not None
        self.clock.advance_ms(self.rng.choice((0, 10, 1_000, 15_000, 60_000, 600_000)))
        if self.rng.random() < self.faults.profile.disk_full_per_step and self.faults.enabled:
            self.disk.fill(self.rng.randrange(0, 4_096))
            self.faults.note(DISK_FULL)
        elif self.disk.capacity is not None and self.rng.random() < 0.3:
            self.disk.free()
        if self.rng.random() < 0.2:
            ok = self.node.tick()
            self.trace(f"tick {'ok' if ok else 'failed'}")
        else:
            self._serve(self.clients.group())
        self.auditor.check(self.node)

    def _serve(self, group: list[Request]) -> None:
        assert self.node is not None
        for request in group:
            if request.key in self.clients.outstanding:
                self.faults.note(RETRY, request.key)
        waits_ms = [self.rng.choice(TIMEOUTS_MS) for _ in group]
        started = self.clock()
        replies = self.node.serve(group)
        elapsed_ms = (self.clock() - started) // 1_000_000
        answers = list(zip(group, replies, waits_ms, strict=True))
        for request, reply, wait_ms in sorted(answers, key=lambda answer: answer[1].order):
            delivered = self._delivered(request, elapsed_ms, wait_ms)
            self.auditor.answered(request, reply, delivered=delivered)
            self.clients.answer(request, reply if delivered else None)
            self.trace(_answer_line(request, reply, delivered))

    def _delivered(self, request: Request, elapsed_ms: int, wait_ms: int) -> bool:
        if not self.faults.enabled:
            return True
        if elapsed_ms > wait_ms:
            self.faults.note(CLIENT_TIMEOUT, request.key)
            return False
        if self.rng.random() < RESPONSE_LOST_RATE:
            self.faults.note(RESPONSE_LOST, request.key)
            return False
        return True

    # -- starts and crashes ---------------------------------------------------------------------

    def _start(self, *, install: bool = False) -> Node:
        node = Node(
            self.disk,
            self.faults,
            self.clock,
            self.view,
            self.settings,
            self.wiring,
            self.parts,
            install=self._install if install else None,
            carry_on=self.carry_on,
        )
        node.storing = self.auditor.storing
        return node

    def _restart(self) -> None:
        for _ in range(RESTARTS_MAX):
            self.result.restarts += 1
            synced = self.disk.synced
            torn = self.faults.profile.torn_on_crash if self.faults.enabled else 0.0
            fate = self.disk.lose_power(self.rng, torn) if self.faults.enabled else "clean"
            self.auditor.crashed(synced)
            if self.node is not None:
                self.node.close()
                self.node = None
            self.trace(f"restart after power loss: {fate}")
            try:
                self.node = self._start()
            except Crash:
                continue
            except EXPECTED_FAILURES as error:
                # A start that cannot write (a full disk, a failed fsync) exits; the operator
                # frees space and starts it again.
                self.trace(f"start failed: {type(error).__name__}: {error}")
                self.disk.free()
                continue
            self.trace(f"recovered: {self.node.engine.recovered.summary()}")
            self.auditor.restarted(self.node)
            return
        raise Violation(f"the node did not start after {RESTARTS_MAX} attempts")

    def _install(self, ledger: Ledger) -> None:
        """The network, then most of each bank's liquidity back to its central bank."""
        install_network(ledger, self.world.network)
        drains = []
        for number, bic in enumerate(self.world.banks):
            currency = self.world.home[bic]
            agent = self.world.network.currency_settlement_agent(currency)
            settlement = self.view.account_id(AccountKey.settlement(bic, currency))
            issuance = self.view.account_id(AccountKey.issuance(agent, currency))
            assert settlement is not None and issuance is not None, bic
            state = ledger.lookup_account(settlement)
            assert state is not None, bic
            left = 10 ** self.rng.randint(5, 9)
            balance = state.credits_posted - state.debits_posted
            if balance > left:
                drains.append(
                    Transfer(DRAIN_ID_BASE + number, settlement, issuance, balance - left)
                )
        assert all(result == "ok" for result in ledger.create_transfers(drains))

    # -- the end --------------------------------------------------------------------------------

    def _quiesce(self) -> None:
        """Faults off; retry until every request is answered and nothing waits."""
        self.step += 1
        self.faults.enabled = False
        self.disk.free()
        self._restart()
        assert self.node is not None
        for _ in range(QUIESCE_ROUNDS_MAX):
            if not self.clients.outstanding and not (
                self.node.engine.queue or self.node.engine.warehouse
            ):
                break
            self.clock.advance_ms(15 * 60_000)
            self.trace(f"tick {'ok' if self.node.tick() else 'failed'}")
            for key in sorted(self.clients.outstanding):
                self._serve([self.clients.outstanding[key]])
            self.auditor.check(self.node)
        if self.clients.outstanding:
            raise Violation(f"requests never answered: {sorted(self.clients.outstanding)[:5]}")
        if self.node.engine.queue or self.node.engine.warehouse:
            raise Violation("payments still wait after the queue timeout")
        self.auditor.restarted(self.node)  # The end state replays and reconciles in full.
        self.result.statuses.update(self.node.records.counts())
        self.trace(f"quiesced: {sorted(self.result.statuses.items())}")


def _answer_line(request: Request, reply: Reply, delivered: bool) -> str:
    body = hashlib.sha256(reply.body).hexdigest()[:12]
    notes = (" replay" if reply.replayed else "") + ("" if delivered else " undelivered")
    return f"{request.number}/{request.kind}/{request.key} -> {reply.status} {body}{notes}"
