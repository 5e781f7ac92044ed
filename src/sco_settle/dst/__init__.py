"""Deterministic simulation testing (DST) of the whole write path, in the manner of
TigerBeetle's VOPR.

One seed drives everything: a simulated clock, a simulated disk whose faults a seeded
``random.Random`` decides (crashes at write boundaries, torn and short writes, fsync failures,
a full disk, a slow disk), clients that time out and retry with their idempotency keys, and the
node under test: the ledger, the payment engine, the payment records and the server's idempotency
records, driven directly (no HTTP, no threads). An auditor checks after every step that nothing
acknowledged was lost, nothing was applied twice, every acknowledged answer is the one a retry
gets, debits equal credits, the records reconcile with the ledger and PvP chains are whole.

Layers: ``disk`` (file, clock, faults) -> ``wal`` (framed records) -> ``adapters`` (the ports on
the log) -> ``node`` (one server process) -> ``workload`` (clients) and ``auditor`` -> ``run``
(one seed). See docs/dst.md; ``sco-settle dst`` runs seeds.
"""

from sco_settle.dst.auditor import Auditor, Violation
from sco_settle.dst.disk import FAULT_KINDS, FaultProfile
from sco_settle.dst.node import IdempotencyWiring, Parts
from sco_settle.dst.run import SeedResult, replay_command, run_seed

__all__ = [
    "FAULT_KINDS",
    "Auditor",
    "FaultProfile",
    "IdempotencyWiring",
    "Parts",
    "SeedResult",
    "Violation",
    "replay_command",
    "run_seed",
]
