"""End-of-day processing (issue 10, the operating day): when each currency's business day ends,
which days are due (a holiday in one currency only), statements that follow each other without
gap, and a server-side closing that unwinds matured swap-line tranches, writes camt.053
statements and is recorded once."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from pathlib import Path

from lxml import etree

from sco_settle.domain.calendar import load_calendars
from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.end_of_day import business_day_bounds, days_due, end_of_day
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.swap_lines import SwapLineDesk, TrancheState, agreement
from sco_settle.server import parse_database_url
from sco_settle.server.db import StateDb
from sco_settle.server.end_of_day import EndOfDay, closed_days
from sco_settle.storage import SqliteStore
from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

CALENDARS = load_calendars()
UTC = dt.UTC


def test_each_currency_ends_its_day_in_its_own_time_zone() -> None:
    day = dt.date(2026, 12, 2)
    beijing = end_of_day(CALENDARS.calendar("CNY"), day)
    moscow = end_of_day(CALENDARS.calendar("RUB"), day)
    assert beijing < moscow  # UTC+8 ends its day hours before UTC+3
    noon = dt.datetime(2026, 12, 2, 12, tzinfo=UTC)
    assert days_due(CALENDARS.calendar("CNY"), None, noon) == [day]
    assert days_due(CALENDARS.calendar("RUB"), None, noon) == [dt.date(2026, 12, 1)]


def test_a_holiday_in_one_currency_only() -> None:
    """China's Golden Week: the CNY days of 1-7 October are not closed, the RUB days are."""
    since, now = dt.date(2026, 9, 30), dt.datetime(2026, 10, 9, 12, tzinfo=UTC)
    cny = days_due(CALENDARS.calendar("CNY"), since, now)
    rub = days_due(CALENDARS.calendar("RUB"), since, now)
    assert dt.date(2026, 10, 1) not in cny and dt.date(2026, 10, 8) in cny
    assert dt.date(2026, 10, 1) in rub and dt.date(2026, 10, 2) in rub


def test_business_day_statements_follow_each_other_without_gap() -> None:
    calendar = CALENDARS.calendar("CNY")
    days = days_due(calendar, dt.date(2026, 9, 20), dt.datetime(2026, 10, 12, tzinfo=UTC))
    bounds = [business_day_bounds(calendar, day) for day in days]
    for (_, end), (start, _) in itertools.pairwise(bounds):
        assert start == end + 1
    assert all(start <= end for start, end in bounds)


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.now = int(at.timestamp()) * 10**9

    def __call__(self) -> int:
        self.now += 1_000
        return self.now


def test_closing_a_day_unwinds_matured_tranches_and_writes_statements(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    clock = Clock(dt.datetime(2026, 12, 2, 1, tzinfo=UTC))
    ledger = Ledger(SqliteStore(path), clock=clock)
    network = load_network("sco")
    install_network(ledger, network)
    view = NetworkView(network, load_rates())
    engine = PaymentEngine(
        ledger, view, SqlitePaymentRecords(path), EngineSettings(calendars=CALENDARS)
    )
    desk = SwapLineDesk(ledger, view)
    drawn = desk.draw(
        "CBRFRUMM", "PBOCCNBJ", 1_000_000_00, dt.date(2026, 9, 1), 3, Decimal("0.025"),
        view.rates_at(clock.now),
    )  # fmt: skip
    assert drawn.maturity == dt.date(2026, 12, 1)
    state_db = StateDb(parse_database_url(f"sqlite:///{tmp_path}/state.db"))
    statements = tmp_path / "statements"
    desk_eod = EndOfDay(engine, CALENDARS, state_db, statements)
    clock.now = int(dt.datetime(2026, 12, 2, 10, tzinfo=UTC).timestamp()) * 10**9
    closed = desk_eod.run_due(dt.datetime(2026, 12, 2, 10, tzinfo=UTC))
    cny = [day for day in closed if day.currency == "CNY"]
    assert [day.business_day for day in cny] == [dt.date(2026, 12, 2)]
    assert cny[0].tranches_repaid == [drawn.tranche_id]
    side = agreement(network, "CBRFRUMM", "PBOCCNBJ")
    (tranche,) = desk.state(side, dt.date(2026, 12, 2)).tranches
    assert tranche.state is TrancheState.REPAID
    files = sorted((statements / "2026-12-02" / "CNY").glob("*.xml"))
    assert cny[0].statements == len(files) > 0
    document = etree.parse(str(files[0]))
    assert document.getroot().tag.endswith("Document")  # a camt.053 (schema-checked on write)
    # Recorded once: the same moment closes nothing more; the next day closes the next day.
    assert desk_eod.run_due(dt.datetime(2026, 12, 2, 10, tzinfo=UTC)) == []
    later = desk_eod.run_due(dt.datetime(2026, 12, 3, 10, tzinfo=UTC))
    assert {(d.currency, d.business_day) for d in later} >= {("CNY", dt.date(2026, 12, 3))}
    assert closed_days(state_db, "CNY")[0]["business_day"] == "2026-12-03"
    state_db.close()
    engine.records.close()
    ledger.close()
