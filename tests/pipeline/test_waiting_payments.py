"""Payments that wait, as TARGET2 participants manage them: timed payments (settle from / till,
a value date in the future is warehoused, one in the past refused), and a participant's
cancellation or re-prioritisation of its own waiting payment (review D4, issue 9)."""

from __future__ import annotations

from dataclasses import replace

from sco_settle.payments.engine import EngineSettings, Mode, PaymentEngine
from sco_settle.payments.model import Payment, PaymentStatus, Priority, Reason

from .conftest import balance
from .test_fifo import CENTER, HALYK, NORMAL, URGENT, drain_to, pay, status

HOUR = 3600 * 10**9


def test_a_payment_with_a_future_start_is_warehoused_and_settles_when_it_comes(make_engine):
    engine = make_engine()
    now = engine.clock()
    later = replace(pay("T1", 100_00, NORMAL), settle_from=now + HOUR)
    outcome = engine.submit(later)
    assert outcome.status is PaymentStatus.QUEUED and "warehoused" in outcome.reason_text
    # Warehoused: it neither settles nor holds back its payer's later payments.
    assert engine.submit(pay("T2", 50_00, NORMAL)).status is PaymentStatus.SETTLED
    engine.run_cycle()
    assert status(engine, "T1") is PaymentStatus.QUEUED
    engine.clock.advance(3601)
    engine.run_cycle()
    assert status(engine, "T1") is PaymentStatus.SETTLED
    assert engine.audit().ok


def test_a_warehoused_payment_survives_a_restart(make_engine):
    engine = make_engine()
    later = replace(pay("T3", 100_00, NORMAL), settle_from=engine.clock() + HOUR)
    engine.submit(later)
    restarted = PaymentEngine(engine.ledger, engine.view, engine.records)
    assert "T3" in restarted.warehouse and "T3" not in restarted.queue
    engine.clock.advance(3601)
    restarted.run_cycle()
    assert restarted.outcome("T3").status is PaymentStatus.SETTLED


def test_latest_settlement_time_past_is_refused_and_reached_in_the_queue_is_tm01(make_engine):
    engine = make_engine()
    now = engine.clock()
    late = engine.submit(replace(pay("L1", 100_00, NORMAL), settle_till=now - 1))
    assert (late.status, late.reason) == (PaymentStatus.REJECTED, Reason.DT01)
    drain_to(engine, 10_00)
    waiting = engine.submit(replace(pay("L2", 100_00, NORMAL), settle_till=now + HOUR))
    assert waiting.status is PaymentStatus.QUEUED
    engine.clock.advance(3600)
    engine.run_cycle()
    final = engine.outcome("L2")
    assert (final.status, final.reason) == (PaymentStatus.REJECTED, Reason.TM01)
    assert "latest settlement time" in final.reason_text


def test_the_debtor_agent_cancels_its_queued_payment_and_no_one_else_can(make_engine):
    engine = make_engine()
    drain_to(engine, 10_00)
    engine.submit(pay("C1", 100_00, NORMAL))
    for other in (CENTER, "BKCHCNBJ"):
        refused = engine.cancel("C1", requested_by=other)
        assert not refused.accepted and "not found" in refused.reason_text
    answer = engine.cancel("C1", requested_by=HALYK)
    assert answer.accepted and answer.payment.status is PaymentStatus.CANCELLED
    assert "C1" not in engine.queue and status(engine, "C1") is PaymentStatus.CANCELLED
    again = engine.cancel("C1", requested_by=HALYK)
    assert not again.accepted and "cancelled" in again.reason_text
    # Its liquidity is not taken later, and a later payment no longer waits behind it.
    assert engine.submit(pay("C2", 10_00, NORMAL)).status is PaymentStatus.SETTLED
    assert balance(engine, f"settlement:{HALYK}:KZT") == 0


def test_a_settled_payment_cannot_be_cancelled(make_engine):
    engine = make_engine()
    engine.submit(pay("C3", 10_00, NORMAL))
    answer = engine.cancel("C3", requested_by=HALYK)
    assert not answer.accepted and answer.reason is Reason.NARR and "settled" in answer.reason_text


def test_raising_a_queued_payment_to_urgent_lets_it_settle_first(make_engine):
    engine = make_engine()
    drain_to(engine, 0)
    engine.submit(pay("P1", 300_00, NORMAL))
    engine.submit(pay("P2", 100_00, NORMAL))
    answer = engine.reprioritise("P2", URGENT, requested_by=HALYK)
    assert answer.accepted
    assert engine.queue.get("P2").payment.priority is Priority.URGENT
    # The same instruction resubmitted is still the same payment (priority may change).
    assert engine.submit(pay("P2", 100_00, NORMAL)).duplicate
    assert not engine.reprioritise("P2", NORMAL, requested_by=CENTER).accepted
    engine.submit(pay("IN", 150_00, NORMAL, debtor=CENTER, creditor=HALYK))
    engine.run_cycle()
    assert status(engine, "P2") is PaymentStatus.SETTLED  # urgent now: served before P1
    assert status(engine, "P1") is PaymentStatus.QUEUED
    restarted = PaymentEngine(engine.ledger, engine.view, engine.records)
    assert restarted.queue.get("P1") is not None


def test_a_held_dns_payment_can_be_cancelled_before_its_cycle(make_engine):
    engine = make_engine(EngineSettings(mode=Mode.DNS))
    before = balance(engine, f"settlement:{HALYK}:KZT")
    engine.submit(Payment("D1", HALYK, CENTER, 100_00, "KZT", "KZT"))
    assert engine.cancel("D1", requested_by=HALYK).accepted
    engine.run_cycle()
    assert status(engine, "D1") is PaymentStatus.CANCELLED
    assert balance(engine, f"settlement:{HALYK}:KZT") == before
