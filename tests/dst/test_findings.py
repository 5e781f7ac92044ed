"""What deterministic simulation found, reduced to scripted reproductions (docs/dst.md,
"Findings"), now regression tests of the fix.

Both came from the server running on after a failed payment-records write: the ledger commit
succeeded, so ``LedgerService._guarded`` kept the writer going, with the engine's memory and
the ledger ahead of the records (``sco-settle dst --carry-on`` found them from seeds 37, 120,
462 and 788). The fix: any failure escaping an engine operation stops the engine
(``EngineStopped``: it takes no more work) and the server's writer with it; a restart recovers
exactly the durable state."""

from __future__ import annotations

import errno

import pytest

from sco_settle.dst.disk import SimClock
from sco_settle.dst.world import world
from sco_settle.ledger import Ledger
from sco_settle.network.install import install_network
from sco_settle.payments import recovery
from sco_settle.payments.engine import EngineStopped, PaymentEngine
from sco_settle.payments.model import Payment, PaymentStatus
from sco_settle.storage import MemoryStore
from sco_settle.storage.payment_records_memory import MemoryPaymentRecords

PAYER, PAYEE = "HSBKKZKX", "KCJBKZKX"


class RecordsOnAFullDisk(MemoryPaymentRecords):
    """Payment records whose next ``record`` fails, as on a full disk, writing nothing."""

    full = False

    def record(self, entries, at):
        if self.full:
            self.full = False
            raise OSError(errno.ENOSPC, "no space left on device")
        super().record(entries, at)


@pytest.fixture
def node():
    clock = SimClock()
    ledger = Ledger(MemoryStore(), clock)
    install_network(ledger, world().network)
    records = RecordsOnAFullDisk()
    view = world().view()
    return clock, ledger, view, records, PaymentEngine(ledger, view, records)


def test_a_payment_is_not_returned_twice_after_a_failed_records_write(node):
    _, ledger, view, records, engine = node
    payment = Payment(f"{PAYER}:F1", PAYER, PAYEE, 1_000_00, "KZT", "KZT")
    delivered = engine.submit(payment).amount_delivered_minor
    records.full = True
    with pytest.raises(OSError):  # The first return's chain commits; its record does not.
        engine.return_payment(payment.payment_id, returned_by=PAYEE, reason="AC04", return_id="R1")
    assert not ledger.closed  # The ledger committed; the engine must not run on regardless.
    with pytest.raises(EngineStopped):
        engine.return_payment(payment.payment_id, returned_by=PAYEE, reason="AC04", return_id="R2")
    restarted = PaymentEngine(ledger, view, records)  # The next start records the first return.
    second = restarted.return_payment(
        payment.payment_id, returned_by=PAYEE, reason="AC04", return_id="R2"
    )
    assert not second.accepted  # Fully returned by R1 already.
    returns = [
        recovery.find_chain(f"{PAYEE}:{rid}:{payment.payment_id}", ledger.store.get_transfers)
        for rid in ("R1", "R2")
    ]
    paid_back = sum(chain.amount_delivered_minor for chain in returns if chain is not None)
    assert paid_back <= delivered, f"{paid_back} paid back of {delivered} received"
    assert restarted.audit().ok


def test_a_payment_whose_money_moved_is_not_recorded_rejected(node):
    clock, ledger, view, records, engine = node
    deadline = clock() + 60 * 10**9
    payment = Payment(f"{PAYER}:F2", PAYER, PAYEE, 1_000_00, "KZT", "KZT", settle_till=deadline)
    records.full = True
    with pytest.raises(OSError):  # Its chain commits; its record does not.
        engine.submit(payment)
    assert recovery.find_chain(payment.payment_id, ledger.store.get_transfers) is not None
    clock.advance_ms(120_000)
    with pytest.raises(EngineStopped):
        engine.submit(payment)  # The client retries after the deadline: the engine stopped.
    restarted = PaymentEngine(ledger, view, records)  # Recovery settles it from the ledger.
    retry = restarted.submit(payment)
    assert (retry.status, restarted.outcome(payment.payment_id).status) == (
        PaymentStatus.SETTLED,
        PaymentStatus.SETTLED,
    ), retry.reason_text
    assert restarted.audit().ok
