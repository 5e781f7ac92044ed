"""Liquidity reservations for queued payments (issue 9): a queued RTGS payment holds back, as a
pending ledger transfer, the liquidity its payer has for it, so nothing else spends it first."""

from __future__ import annotations

from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.payments.engine import EngineSettings, Mode, PaymentEngine
from sco_settle.payments.model import PaymentStatus

from .conftest import balance
from .test_fifo import CENTER, HALYK, NORMAL, drain_to, pay, status


def reserved(engine, bic: str = HALYK) -> int:
    account = engine.view.account_id(f"settlement:{bic}:KZT")
    held = engine.reservations.get(account)
    state = engine.ledger.lookup_account(account)
    assert state.debits_pending == (held.amount if held else 0)  # the ledger agrees
    return held.amount if held else 0


def test_a_queued_payment_reserves_what_its_payer_has_and_nothing_spends_it(make_engine):
    engine = make_engine()
    drain_to(engine, 100_00)
    assert engine.submit(pay("Q1", 300_00, NORMAL)).status is PaymentStatus.QUEUED
    assert reserved(engine) == 100_00  # all Halyk has, short of the 300.00 it owes
    halyk = engine.view.account_id(f"settlement:{HALYK}:KZT")
    center = engine.view.account_id(f"settlement:{CENTER}:KZT")
    # Halyk's own direct transfer (as through /v1/transfer-batches) cannot take it.
    refused = engine.ledger.create_transfers([Transfer(9_101, halyk, center, 50_00)])
    assert refused == [TR.EXCEEDS_CREDITS]
    # Liquidity arriving is reserved too, until the payment can settle.
    engine.submit(pay("IN1", 100_00, NORMAL, debtor=CENTER, creditor=HALYK))
    assert status(engine, "Q1") is PaymentStatus.QUEUED and reserved(engine) == 200_00
    engine.submit(pay("IN2", 100_00, NORMAL, debtor=CENTER, creditor=HALYK))
    assert status(engine, "Q1") is PaymentStatus.SETTLED
    assert reserved(engine) == 0 and balance(engine, f"settlement:{HALYK}:KZT") == 0
    assert engine.audit().ok


def test_reservations_survive_a_restart_once_and_follow_cancellations(make_engine):
    engine = make_engine()
    drain_to(engine, 100_00)
    engine.submit(pay("Q2", 300_00, NORMAL))
    restarted = PaymentEngine(engine.ledger, engine.view, engine.records)
    assert reserved(restarted) == 100_00  # adopted, not doubled
    assert restarted.cancel("Q2", requested_by=HALYK).accepted
    assert reserved(restarted) == 0


def test_net_settlement_reserves_nothing(make_engine):
    engine = make_engine(EngineSettings(mode=Mode.DNS))
    engine.submit(pay("D1", 100_00, NORMAL))
    assert status(engine, "D1") is PaymentStatus.QUEUED
    assert not engine.reservations and reserved(engine) == 0
