"""Deterministic simulation testing of the whole write path (issue 12, section 1).

Every seed runs the ledger, the payment engine, the payment records and the server's idempotency
records on a simulated disk whose faults the seed decides, with clients that time out and retry,
and an auditor checking after every step (``sco_settle.dst``, docs/dst.md). A failing seed is
printed with the command that replays it alone: ``sco-settle dst --seed N``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from typer.testing import CliRunner

from sco_settle.cli import dst as dst_cli
from sco_settle.cli.main import app
from sco_settle.dst import FAULT_KINDS, FaultProfile, Parts, SeedResult, replay_command, run_seed
from sco_settle.dst.adapters import DiskPaymentRecords, DiskStore
from sco_settle.dst.disk import BOUNDARIES, CRASH
from sco_settle.dst.node import IdempotencyWiring

SEEDS = 200
CHUNK = 25
SLOW_SEEDS = range(1_000, 2_200)


def failures(results: list[SeedResult], **replay: bool) -> str:
    return "\n".join(
        f"seed {r.seed}: {r.failure}\n  replay: {replay_command(r.seed, **replay)}"
        for r in results
        if not r.ok
    )


@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK), ids=lambda first: f"seeds-{first}")
def test_seeds_keep_every_guarantee(first, wiring):
    results = [run_seed(seed, wiring) for seed in range(first, first + CHUNK)]
    assert not failures(results), failures(results)
    assert all(result.checks > result.steps for result in results)  # audited after each step


@pytest.mark.slow
def test_a_thousand_seeds_and_more_keep_every_guarantee(wiring):
    results = [run_seed(seed, wiring) for seed in SLOW_SEEDS]
    assert not failures(results), failures(results)


def test_every_kind_of_fault_is_injected(wiring):
    injected: Counter[str] = Counter()
    restarts = 0
    for seed in range(40):
        result = run_seed(seed, wiring)
        injected.update(result.faults)
        restarts += result.restarts
    assert set(FAULT_KINDS) <= set(injected), set(FAULT_KINDS) - set(injected)
    assert injected[CRASH] >= 20 and restarts > injected[CRASH]


def test_the_same_seed_makes_the_same_run(wiring):
    first = run_seed(11, wiring)
    run_seed(12, wiring)  # Nothing of one seed's run may leak into the next.
    again = run_seed(11, wiring)
    assert again.trace == first.trace and again.digest == first.digest
    assert run_seed(12, wiring).digest != first.digest
    assert len(first.trace) > first.steps  # The trace records every answer and fault.


def test_a_seed_replays_alike_in_another_process_and_hash_seed(wiring):
    """The command a failure prints must replay the run, whatever ``PYTHONHASHSEED`` is."""
    expected = f"seed 3 digest {run_seed(3, wiring).digest}"
    for hash_seed in ("0", "4242"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-m", "sco_settle", "dst", "--seed", "3"],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert expected in done.stdout, done.stdout


def test_a_crash_at_every_write_boundary_loses_nothing(wiring):
    """Exhaustive, on one short run: the process dies before each write, after it, and after
    its fsync, one boundary per run; every run must still keep every guarantee."""
    quiet = FaultProfile()  # No other fault: each run is the same up to its crash.
    base = run_seed(5, wiring, steps=10, profile=quiet)
    assert base.ok and base.writes >= 10, (base.failure, base.writes)
    crashed = 0
    for write in range(1, base.writes + 1):
        for where in BOUNDARIES:
            result = run_seed(5, wiring, steps=10, profile=quiet, crash_at=(write, where))
            assert result.ok, (write, where, result.failure)
            crashed += result.faults[CRASH]
    # Before and after every write; after the fsync of the synced ones (not the intents).
    assert 2 * base.writes < crashed <= 3 * base.writes


# -- the auditor has teeth: broken components are caught ------------------------------------------


class AcknowledgesBeforeDurable(DiskStore):
    """A ledger store that answers before its commit is on disk."""

    sync = False


class RecordsBeforeDurable(DiskPaymentRecords):
    """Payment records that answer before their writes are on disk."""

    sync = False


class ForgetsPayments(DiskPaymentRecords):
    """Payment records whose batch lookup never finds a payment (resubmissions run again)."""

    def get_many(self, payment_ids):
        return {}


def forgetful_idempotency(wiring: IdempotencyWiring) -> IdempotencyWiring:
    """The server's idempotency records, except that ``begin`` never finds a stored answer."""

    class Forgetful:
        def __init__(self, inner):
            self.inner = inner

        def begin(self, scope, key, fingerprint):
            self.inner.begin(scope, key, fingerprint)
            self.inner.release(scope, key)
            return None

        def save(self, records):
            self.inner.save(records)

        def release(self, scope, key):
            return None

    return IdempotencyWiring(
        open=lambda db: Forgetful(wiring.open(db)),
        answer=wiring.answer,
        refused=wiring.refused,
        wall_clock=wiring.wall_clock,
    )


@pytest.mark.parametrize(
    ("parts", "found"),
    [
        (Parts(store=AcknowledgesBeforeDurable), "lost"),
        (Parts(records=RecordsBeforeDurable), "lost"),
        (Parts(records=ForgetsPayments), "ran again"),
    ],
    ids=["store-acks-before-durable", "records-ack-before-durable", "records-forget"],
)
def test_the_auditor_catches_a_broken_component(parts, found, wiring):
    results = [run_seed(seed, wiring, parts=parts) for seed in range(30)]
    caught = [result.failure for result in results if not result.ok]
    assert caught, "the auditor missed a broken component"
    assert any(found in failure for failure in caught), caught


def test_the_auditor_catches_idempotency_records_that_forget(wiring):
    results = [run_seed(seed, forgetful_idempotency(wiring)) for seed in range(10)]
    caught = [result.failure for result in results if not result.ok]
    assert len(caught) >= 5 and all("stored answer was lost" in f for f in caught), caught


# -- the command ----------------------------------------------------------------------------------


def test_the_command_runs_seeds_and_prints_one_summary_line():
    result = CliRunner().invoke(app, ["dst", "--seeds", "3", "--seed", "20"])
    assert result.exit_code == 0, result.output
    summary = [line for line in result.output.splitlines() if line.startswith("dst: ")]
    assert len(summary) == 1 and "3 seeds" in summary[0] and "failures 0" in summary[0]


def test_the_command_prints_a_failing_seed_with_its_replay_and_exits_1(monkeypatch):
    broken = Parts(store=AcknowledgesBeforeDurable)
    real = dst_cli.run_seed
    monkeypatch.setattr(
        dst_cli,
        "run_seed",
        lambda seed, wiring, **options: real(seed, wiring, parts=broken, **options),
    )
    result = CliRunner().invoke(app, ["dst", "--seeds", "8"])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "replay: sco-settle dst --seed " in result.output
    assert "failures 0" not in result.output
