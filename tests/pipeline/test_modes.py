"""Settlement modes are parts behind one contract (issue 9): the engine never branches on the
mode, a cycle takes a selection of the queue, and a new mode is one class and a registration."""

from __future__ import annotations

from typing import ClassVar

import pytest

from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.model import Payment, PaymentStatus, Priority
from sco_settle.payments.modes import CycleReport, Mode, mode_for, register
from sco_settle.payments.queue import PaymentQueue, QueuedPayment, Selection

KZ_A, KZ_B, CN_A, CN_B = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ", "ICBKCNBJ"


def pay(payment_id, debtor, creditor, amount, ccy="KZT", to_ccy=None):
    return Payment(payment_id, debtor, creditor, amount, ccy, to_ccy or ccy)


def test_every_configured_mode_is_registered_and_unknown_ones_are_refused():
    for mode in Mode:
        assert mode_for(mode).name == mode.value
    with pytest.raises(ValueError, match="no settlement mode"):
        mode_for("barter")


def test_the_queue_serves_urgent_then_arrival_and_counts_each_payer():
    queue = PaymentQueue()
    normal = pay("a", KZ_A, KZ_B, 1)
    urgent = Payment("b", KZ_A, KZ_B, 1, "KZT", "KZT", priority=Priority.URGENT)
    cny = pay("c", CN_A, CN_B, 1, "CNY")
    for seq, payment in enumerate((normal, urgent, cny)):
        queue.add(QueuedPayment(payment, seq, 0))
    assert [q.payment.payment_id for q in queue.select()] == ["b", "a", "c"]
    kzt = Selection(frozenset({"KZT"}))
    assert [q.payment.payment_id for q in queue.select(kzt)] == ["b", "a"]
    assert queue.by_payer[KZ_A] == 2 and queue.by_payer[CN_A] == 1
    queue.remove("a")
    assert queue.by_payer[KZ_A] == 1 and "a" not in queue and len(queue) == 2
    only_cn = Selection(participants=frozenset({CN_B}))
    assert [q.payment.payment_id for q in queue.select(only_cn)] == ["c"]


def test_a_dns_cycle_over_a_selection_leaves_the_rest_untouched(make_engine):
    engine = make_engine(EngineSettings(mode=Mode.DNS))
    engine.submit_many([pay("k1", KZ_A, KZ_B, 5_000_00), pay("c1", CN_A, CN_B, 700_00, "CNY")])
    report = engine.run_cycle(Selection(currencies=frozenset({"KZT"})))
    assert report.kind == "dns" and report.settled == 1
    assert engine.outcome("k1").status is PaymentStatus.SETTLED
    assert engine.outcome("c1").status is PaymentStatus.QUEUED and "c1" in engine.queue
    assert engine.run_cycle().settled == 1 and not engine.queue


class HoldEverything:
    """A toy mode, defined outside the engine: it holds every payment and settles none."""

    name: ClassVar[str] = "hold-everything"
    cycle_kind: ClassVar[str] = "hold"
    runs_when_idle: ClassVar[bool] = False
    reserves_liquidity: ClassVar[bool] = False

    def on_accepted(self, engine, payment, events):
        return engine.enqueue(payment, events, reason=None, text="held forever")

    def after_batch(self, engine, settled_any):
        return None

    def run_cycle(self, engine, selection):
        return CycleReport(self.cycle_kind, deferred=len(engine.queue.select(selection))), []


def test_a_new_mode_is_one_class_and_a_registration(make_engine):
    register(HoldEverything.name, HoldEverything)
    engine = make_engine(EngineSettings(mode=HoldEverything.name))  # type: ignore[arg-type]
    assert isinstance(engine, PaymentEngine)
    outcome = engine.submit(pay("h1", KZ_A, KZ_B, 100))
    assert outcome.status is PaymentStatus.QUEUED and outcome.reason_text == "held forever"
    report = engine.run_cycle()
    assert report.kind == "hold" and report.deferred == 1 and report.number == 1
