"""TARGET2's queue rules (issue 9, review D4): no payment of a payer settles while an earlier
payment of the same or a higher priority of that payer is queued; urgent payments are strictly
FIFO; the LSM keeps the same rule."""

from __future__ import annotations

from sco_settle.domain.transfer import Transfer
from sco_settle.payments.model import Payment, PaymentStatus, Priority

from .conftest import balance

HALYK, CENTER = "HSBKKZKX", "KCJBKZKX"
URGENT, NORMAL = Priority.URGENT, Priority.NORMAL


def pay(payment_id: str, amount: int, priority: Priority, debtor=HALYK, creditor=CENTER):
    return Payment(payment_id, debtor, creditor, amount, "KZT", "KZT", priority=priority)


def drain_to(engine, minor: int) -> None:
    """Move Halyk's KZT above ``minor`` to CenterCredit, straight in the ledger."""
    halyk = engine.view.account_id(f"settlement:{HALYK}:KZT")
    center = engine.view.account_id(f"settlement:{CENTER}:KZT")
    extra = balance(engine, f"settlement:{HALYK}:KZT") - minor
    assert engine.ledger.create_transfers([Transfer(9_001, halyk, center, extra)]) == ["ok"]


def status(engine, payment_id: str) -> PaymentStatus:
    return engine.outcome(payment_id).status


def test_later_payments_wait_behind_a_queued_urgent_one(make_engine):
    engine = make_engine()
    drain_to(engine, 100_00)
    engine.submit(pay("U1", 500_00, URGENT))
    engine.submit(pay("N1", 80_00, NORMAL))
    engine.submit(pay("U2", 20_00, URGENT))
    assert [status(engine, p) for p in ("U1", "N1", "U2")] == [PaymentStatus.QUEUED] * 3
    assert "FIFO" in engine.outcome("N1").reason_text
    assert balance(engine, f"settlement:{HALYK}:KZT") == 100_00


def test_the_lsm_settles_no_normal_payment_while_an_urgent_one_waits(make_engine):
    engine = make_engine()
    drain_to(engine, 100_00)
    engine.submit(pay("U1", 500_00, URGENT))
    engine.submit(pay("N2", 300_00, NORMAL))
    inflow = engine.submit(pay("IN1", 300_00, NORMAL, debtor=CENTER, creditor=HALYK))
    assert inflow.status is PaymentStatus.SETTLED  # Halyk now holds 400.00: enough for N2.
    engine.run_cycle()
    assert status(engine, "U1") is PaymentStatus.QUEUED
    assert status(engine, "N2") is PaymentStatus.QUEUED  # Not before U1.
    engine.submit(pay("IN2", 100_00, NORMAL, debtor=CENTER, creditor=HALYK))
    engine.run_cycle()
    assert status(engine, "U1") is PaymentStatus.SETTLED
    assert status(engine, "N2") is PaymentStatus.QUEUED  # 0.00 left: it waits its turn.


def test_in_one_batch_a_payers_later_payment_waits_behind_a_refused_one(make_engine):
    engine = make_engine()
    drain_to(engine, 100_00)
    outcomes = engine.submit_many(
        [
            pay("B1", 150_00, NORMAL),  # more than Halyk holds: queued
            pay("B2", 10_00, NORMAL),  # would fit, but B1 is earlier: queued too
            pay("B3", 5_00, URGENT),  # a higher priority may pass a normal one
            pay("C1", 1_00, NORMAL, debtor=CENTER, creditor=HALYK),  # another payer: unaffected
        ]
    )
    assert [o.status for o in outcomes] == [
        PaymentStatus.QUEUED,
        PaymentStatus.QUEUED,
        PaymentStatus.SETTLED,
        PaymentStatus.SETTLED,
    ]
    assert balance(engine, f"settlement:{HALYK}:KZT") == 100_00 - 5_00 + 1_00
    assert engine.audit().ok


def test_nothing_is_settled_without_ledger_transfers(make_engine):
    """Review D9: a bank paying itself in another currency while the swap line is exhausted
    found a route that was one own-book conversion and was answered settled with no transfer.
    Today ICBC Almaty would sell Halyk the CNY (a real route): with it suspended, the own-book
    conversion is the only route left."""
    from sco_settle.payments.network_view import Scenario

    engine = make_engine(
        scenario=Scenario(
            suspended=frozenset({"ICBKKZKX"}), exhausted_swap_lines=frozenset({("CN", "KZ")})
        )
    )
    before = balance(engine, f"settlement:{HALYK}:KZT")
    outcome = engine.submit(
        Payment("onus-1", HALYK, HALYK, 1_000_000_00, "KZT", "CNY", priority=NORMAL)
    )
    assert outcome.status is PaymentStatus.REJECTED and outcome.reason.value == "AG03"
    assert balance(engine, f"settlement:{HALYK}:KZT") == before
