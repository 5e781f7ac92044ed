"""Seeded fault injection on the payment engine's write path: the process "dies" at a random
durable write (the payment intents, the ledger commit, the payment record), before or after the
write reaches the disk. After each death a new engine on the same files must hold every
acknowledged outcome, settle from the ledger what the death left unrecorded, and reconcile its
payment records with the ledger both ways. A failing seed is printed and replays alone:
``pytest tests/pipeline/test_fault_injection.py -k 'seed-17'``."""

from __future__ import annotations

import random

import pytest

from sco_settle.ledger import Ledger
from sco_settle.ledger.invariants import verify
from sco_settle.network.install import install_network
from sco_settle.payments.engine import PaymentEngine
from sco_settle.payments.model import Payment, PaymentStatus
from sco_settle.storage import SqliteStore
from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

SEEDS = 40
PAIRS = (
    ("HSBKKZKX", "KCJBKZKX", "KZT", "KZT"),
    ("KCJBKZKX", "HSBKKZKX", "KZT", "KZT"),
    ("HSBKKZKX", "BKCHCNBJ", "KZT", "CNY"),
    ("BKCHCNBJ", "HSBKKZKX", "CNY", "KZT"),
    ("KICBKG22", "ICBKCNBJ", "KGS", "CNY"),
)


class Death(BaseException):
    """The process dies here (not an ``Exception``: nothing may catch and carry on)."""


class Fate:
    """Counts durable writes; at the chosen one, dies before or after the write."""

    def __init__(self, rng: random.Random) -> None:
        self.at = rng.randrange(1, 60)
        self.after = rng.random() < 0.5
        self.writes = 0

    def write(self, do):  # type: ignore[no-untyped-def]
        self.writes += 1
        if self.writes != self.at:
            return do()
        if self.after:
            do()
        raise Death


class DyingStore:
    def __init__(self, inner: SqliteStore, fate: Fate) -> None:
        self.inner, self.fate = inner, fate

    def commit(self, changes):  # type: ignore[no-untyped-def]
        return self.fate.write(lambda: self.inner.commit(changes))

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


class DyingRecords(SqlitePaymentRecords):
    fate: Fate

    def begin(self, intents, at):  # type: ignore[no-untyped-def]
        intents = list(intents)
        return self.fate.write(lambda: SqlitePaymentRecords.begin(self, intents, at))

    def record(self, entries, at):  # type: ignore[no-untyped-def]
        entries = list(entries)
        return self.fate.write(lambda: SqlitePaymentRecords.record(self, entries, at))


def payments(rng: random.Random, start: int, count: int) -> list[Payment]:
    found = []
    for n in range(start, start + count):
        debtor, creditor, currency, to = PAIRS[rng.randrange(len(PAIRS))]
        amount = rng.choice((rng.randint(1_00, 90_000_00), 10**12))  # some wait in the queue
        found.append(Payment(f"{debtor}:F{n}", debtor, creditor, amount, currency, to))
    return found


@pytest.mark.parametrize("seed", range(SEEDS), ids=lambda s: f"seed-{s}")
def test_a_death_at_any_write_loses_nothing_acknowledged(seed, tmp_path, view):
    rng = random.Random(seed)
    ledger_path = tmp_path / "ledger.db"  # The payment records too, as in a deployment.
    ledger = Ledger(SqliteStore(ledger_path))
    install_network(ledger, view.network)
    ledger.close()
    acked: dict[str, PaymentStatus] = {}
    sent: list[Payment] = []
    for life in range(3):
        fate = Fate(rng)
        store = SqliteStore(ledger_path)
        ledger = Ledger(DyingStore(store, fate))  # type: ignore[arg-type]
        journal = DyingRecords(ledger_path)
        journal.fate = fate
        try:
            engine = PaymentEngine(ledger, view, journal)
            check_after_restart(engine, acked, life)
            while True:
                batch = payments(rng, len(sent), rng.randint(1, 6))
                sent.extend(batch)
                for payment, outcome in zip(batch, engine.submit_many(batch), strict=True):
                    acked[payment.payment_id] = outcome.status
        except Death:
            pass
        finally:
            store.close()  # Whatever was not committed is gone, as in a killed process.
            journal.connection.close()
    ledger = Ledger(SqliteStore(ledger_path))
    journal = SqlitePaymentRecords(ledger_path)
    try:
        engine = PaymentEngine(ledger, view, journal)
        check_after_restart(engine, acked, 3)
        assert verify(ledger.store).ok
    finally:
        ledger.close()
        journal.close()


def check_after_restart(engine: PaymentEngine, acked: dict[str, PaymentStatus], life: int) -> None:
    assert not engine.recovered.foreign, engine.recovered.foreign
    audit = engine.audit()
    assert audit.ok and audit.intents == 0, (life, audit.findings[:3])
    for payment_id, status in acked.items():
        now = engine.outcome(payment_id)
        assert now is not None, f"acknowledged {payment_id} lost after death {life}"
        if status in (PaymentStatus.SETTLED, PaymentStatus.REJECTED):
            assert now.status is status, (payment_id, status, now.status)
