"""The operating day (``payments/operating_day.py``): a payment settles only inside its currency
pair's settlement window, rolls to the next business day both currencies share, and is rejected
at the cut-off if it is still queued then. Time zones from UTC+5 (Almaty) to UTC+8 (Beijing)
and a holiday in one currency only (Russia's Defender of the Fatherland Day)."""

from __future__ import annotations

import datetime as dt

import pytest

from sco_settle.domain.calendar import load_calendars
from sco_settle.payments.engine import EngineSettings
from sco_settle.payments.model import Payment, PaymentStatus, Reason

from .conftest import balance

CALENDARS = load_calendars()
HALYK, BCC, BOC, ICBC, SBER = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ", "ICBKCNBJ", "SABRRUMM"


def at(engine, when: dt.datetime) -> None:
    """Move the engine's clock forward to ``when`` (UTC)."""
    target = int(when.timestamp()) * 10**9
    assert target >= engine.clock.now
    engine.clock.now = target


@pytest.fixture
def engine(make_engine):
    found = make_engine(EngineSettings(calendars=CALENDARS))
    # The pipeline clock starts on Friday 2027-01-15 at 08:00 UTC.
    assert found.clock.now == int(dt.datetime(2027, 1, 15, 8, tzinfo=dt.UTC).timestamp()) * 10**9
    return found


def test_a_payment_after_the_cut_off_rolls_to_the_next_shared_business_day(engine) -> None:
    inside = engine.submit(Payment("w1", HALYK, BOC, 1_000_000_00, "KZT", "CNY"))
    assert inside.status is PaymentStatus.SETTLED  # 08:00 UTC: Almaty and Beijing both open
    # 12:00 UTC: 20:00 in Beijing, past the CNY interbank cut-off; Almaty still open for KZT.
    at(engine, dt.datetime(2027, 1, 15, 12, tzinfo=dt.UTC))
    late = engine.submit(Payment("w2", HALYK, BOC, 1_000_000_00, "KZT", "CNY"))
    assert late.status is PaymentStatus.QUEUED and late.reason is None
    assert "KZT/CNY of business day 2027-01-18" in late.reason_text  # Monday, after the weekend
    domestic = engine.submit(Payment("w3", HALYK, BCC, 1_000_00, "KZT", "KZT"))
    assert domestic.status is PaymentStatus.SETTLED
    engine.run_cycle()
    assert engine.outcome("w2").status is PaymentStatus.QUEUED  # still the weekend's side
    at(engine, dt.datetime(2027, 1, 18, 4, 30, tzinfo=dt.UTC))
    engine.run_cycle()
    assert engine.outcome("w2").status is PaymentStatus.SETTLED


def test_a_holiday_in_one_currency_only_holds_that_pair_alone(engine) -> None:
    # Tuesday 2027-02-23, 03:00 UTC: a holiday in Russia, a business day in China.
    at(engine, dt.datetime(2027, 2, 23, 3, tzinfo=dt.UTC))
    to_russia = engine.submit(Payment("h1", BOC, SBER, 1_000_000_00, "CNY", "RUB"))
    assert to_russia.status is PaymentStatus.QUEUED
    assert "CNY/RUB of business day 2027-02-24" in to_russia.reason_text
    at_home = engine.submit(Payment("h2", BOC, ICBC, 1_000_00, "CNY", "CNY"))
    assert at_home.status is PaymentStatus.SETTLED
    at(engine, dt.datetime(2027, 2, 24, 6, tzinfo=dt.UTC))
    engine.run_cycle()
    assert engine.outcome("h1").status is PaymentStatus.SETTLED


def test_a_payment_still_queued_at_the_cut_off_is_rejected_then(engine) -> None:
    at(engine, dt.datetime(2027, 1, 15, 13, tzinfo=dt.UTC))  # KZT open until 14:00 UTC
    short = balance(engine, f"settlement:{BCC}:KZT") + 1
    queued = engine.submit(Payment("c1", BCC, HALYK, short, "KZT", "KZT"))
    assert queued.status is PaymentStatus.QUEUED and queued.reason is Reason.AM04
    at(engine, dt.datetime(2027, 1, 15, 13, 59, tzinfo=dt.UTC))
    engine.run_cycle()
    assert engine.outcome("c1").status is PaymentStatus.QUEUED
    at(engine, dt.datetime(2027, 1, 15, 14, 0, tzinfo=dt.UTC))
    engine.run_cycle()
    rejected = engine.outcome("c1")
    assert (rejected.status, rejected.reason) == (PaymentStatus.REJECTED, Reason.TM01)
    assert "cut-off of its settlement window KZT/KZT" in rejected.reason_text
    assert engine.audit().ok
