"""Business calendars: cut-offs and holidays across the SCO's time zones, and settlement windows.

The dates are real: Golden Week 2025 (China's National Day, 1-8 October, with adjusted working
weekend days on 28 September and 11 October), Iran's Friday weekend and short Thursday, Russia's
2025 New Year holidays, India's round-the-clock RTGS.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sco_settle.cli.calendar import calendar_app
from sco_settle.domain.calendar import (
    SEARCH_DAYS_MAX,
    WEEKDAYS,
    BusinessCalendar,
    CalendarError,
    CalendarRangeError,
    Calendars,
    Certainty,
    Cutoff,
    DayHours,
    Interval,
    as_utc,
    business_day,
    closed_reason,
    is_business_day,
    is_open,
    is_window_open,
    load_calendars,
    next_opening,
    next_window,
    parse_calendars,
    session,
    settlement_window,
    settlement_windows,
)
from sco_settle.domain.participants import ScoStatus
from sco_settle.network import load_network

UTC = dt.UTC
SHIPPED = load_calendars()
CNY, RUB, KZT = (SHIPPED.calendar(code) for code in ("CNY", "RUB", "KZT"))
INR, IRR, BYN = (SHIPPED.calendar(code) for code in ("INR", "IRR", "BYN"))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local(zone: str, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone))


# --- The shipped data ---------------------------------------------------------------------------


def test_every_settlement_currency_of_the_network_has_its_calendar() -> None:
    network = load_network("sco")
    members = {c.currency for c in network.countries if c.sco_status is ScoStatus.MEMBER}
    assert len(members) == 10
    assert set(network.settlement_agents) <= set(SHIPPED.by_currency)
    for code, calendar in SHIPPED.by_currency.items():
        assert network.currency_settlement_agent(code) == calendar.central_bank, code
        assert network.country_of(calendar.central_bank).code == calendar.country, code


def test_every_value_carries_its_source_and_certainty() -> None:
    fields = {"system", "time_zone", "opening", "customer_cutoff", "interbank_cutoff"}
    fields |= {"end_of_day", "weekend", "holidays"}
    for code, calendar in SHIPPED.by_currency.items():
        assert fields <= set(calendar.facts), code
        for name, fact in calendar.facts.items():
            if fact.certainty is Certainty.ASSUMPTION:
                assert fact.source == "assumption" and fact.note, (code, name)
            else:
                assert fact.source in SHIPPED.sources, (code, name)
    # The member states' RTGS hours are sourced where a source was found.
    assert CNY.facts["interbank_cutoff"].certainty is Certainty.SECONDARY
    assert RUB.facts["interbank_cutoff"].certainty is Certainty.PRIMARY
    assert BYN.facts["opening"].certainty is Certainty.PRIMARY
    assert KZT.facts["interbank_cutoff"].certainty is Certainty.ASSUMPTION


def test_weekends_agree_with_the_holidays_package_except_where_a_source_says_otherwise() -> None:
    for code, calendar in SHIPPED.by_currency.items():
        package = frozenset(holidays.country_holidays(calendar.country).weekend)
        if code == "INR":  # RTGS runs on every day of the year.
            assert calendar.weekend == frozenset(), code
        else:
            assert calendar.weekend == package, code


def test_the_member_states_zones_are_free_of_daylight_saving_from_2023() -> None:
    members = ("CNY", "RUB", "KZT", "KGS", "TJS", "UZS", "INR", "PKR", "IRR", "BYN")
    for code in members:
        zone = SHIPPED.calendar(code).zone
        for year in range(2023, 2036):
            # Kazakhstan moved to UTC+5 for good on 2024-03-01: a change, not daylight saving.
            months = range(4 if (code, year) == ("KZT", 2024) else 1, 13)
            offsets = {dt.datetime(year, m, 15, 12, tzinfo=zone).utcoffset() for m in months}
            assert len(offsets) == 1, (code, year, offsets)
    # The SCO members span UTC+3 (Moscow, Minsk) to UTC+8 (Beijing).
    spread = {SHIPPED.calendar(code).zone.utcoffset(dt.datetime(2026, 1, 1)) for code in members}
    assert min(spread) == dt.timedelta(hours=3) and max(spread) == dt.timedelta(hours=8)


# --- Days: holidays and weekends in one currency only -------------------------------------------


def test_a_golden_week_day_is_a_holiday_in_china_only() -> None:
    national_day = dt.date(2025, 10, 1)
    assert closed_reason(CNY, national_day) == "holiday in CN (National Day)"
    assert is_business_day(KZT, national_day)
    found = settlement_window(KZT, CNY, national_day)
    assert found.window is None
    assert found.sessions[0] is not None and found.sessions[1] is None
    assert found.reasons == ("CNY closed: holiday in CN (National Day)",)
    # The same day in Kazakhstan is an ordinary day: KZT pairs without CNY are open.
    assert settlement_window(KZT, RUB, national_day).window is not None


def test_chinas_adjusted_working_weekend_days_are_business_days() -> None:
    for day in (dt.date(2025, 9, 28), dt.date(2025, 10, 11)):  # A Sunday and a Saturday.
        assert day.weekday() >= 5
        assert is_business_day(CNY, day), day
        assert not is_business_day(KZT, day), day


def test_irans_weekend_is_friday_and_its_thursday_is_short() -> None:
    friday, thursday, saturday = dt.date(2025, 10, 3), dt.date(2025, 10, 2), dt.date(2025, 10, 4)
    assert closed_reason(IRR, friday) == "weekend in IR (Friday)"
    assert is_business_day(IRR, saturday) and not is_business_day(RUB, saturday)
    # SATNA's interbank cut-off is 15:00 Tehran (11:30 UTC), on Thursdays 14:00 (10:30 UTC).
    assert session(IRR, dt.date(2025, 10, 1)) == Interval(
        utc(2025, 10, 1, 4, 30), utc(2025, 10, 1, 11, 30)
    )
    assert session(IRR, thursday) == Interval(utc(2025, 10, 2, 4, 30), utc(2025, 10, 2, 10, 30))
    found = settlement_window(IRR, RUB, saturday)
    assert found.window is None and found.reasons == ("RUB closed: weekend in RU (Saturday)",)


def test_indias_rtgs_settles_on_holidays_and_weekends() -> None:
    independence_day, sunday = dt.date(2025, 8, 15), dt.date(2025, 8, 17)
    assert is_business_day(INR, independence_day) and is_business_day(INR, sunday)
    assert is_open(INR, local("Asia/Kolkata", 2025, 8, 17, 3, 0))
    assert not is_open(INR, local("Asia/Kolkata", 2025, 8, 17, 0, 10))  # The EOD/SOD gap.


def test_a_day_outside_the_loaded_years_is_refused() -> None:
    with pytest.raises(CalendarRangeError, match="outside the years loaded"):
        is_business_day(CNY, dt.date(2040, 1, 2))
    # Sri Lanka's holidays are gazetted year by year: the package has them to 2026 only.
    assert SHIPPED.calendar("LKR").years == range(2020, 2027)
    with pytest.raises(CalendarRangeError, match="LKR: 2027-01-04 is outside"):
        is_business_day(SHIPPED.calendar("LKR"), dt.date(2027, 1, 4))
    narrow = load_calendars(years=range(2025, 2026))
    with pytest.raises(CalendarRangeError):
        # After the cut-off on 31 December the next business day is in a year not loaded.
        business_day(narrow.calendar("RUB"), local("Europe/Moscow", 2025, 12, 31, 21, 0))


# --- Instants: cut-offs across time zones -------------------------------------------------------


def test_a_payment_after_the_cut_off_rolls_to_the_next_business_day() -> None:
    # Bank of Russia: the standard period ends at 20:00 Moscow time (17:00 UTC).
    friday = dt.date(2025, 10, 3)
    assert business_day(RUB, local("Europe/Moscow", 2025, 10, 3, 19, 59)) == friday
    assert is_open(RUB, local("Europe/Moscow", 2025, 10, 3, 19, 59))
    after = local("Europe/Moscow", 2025, 10, 3, 20, 0)
    assert not is_open(RUB, after)
    assert business_day(RUB, after) == dt.date(2025, 10, 6)  # Monday.
    assert next_opening(RUB, after) == utc(2025, 10, 5, 22, 0)  # 01:00 Monday, Moscow.


def test_a_payment_before_golden_week_cut_off_rolls_past_the_holidays() -> None:
    # 17:15 Beijing on 30 September closes HVPS; 1-8 October are holidays; the session of
    # 9 October opens at 20:30 Beijing on 8 October (12:30 UTC).
    late = local("Asia/Shanghai", 2025, 9, 30, 17, 15)
    assert business_day(CNY, late) == dt.date(2025, 10, 9)
    assert next_opening(CNY, late) == utc(2025, 10, 8, 12, 30)
    assert business_day(CNY, local("Asia/Shanghai", 2025, 9, 30, 17, 14)) == dt.date(2025, 9, 30)


def test_the_customer_cut_off_comes_before_the_interbank_cut_off() -> None:
    at = local("Asia/Shanghai", 2025, 9, 29, 17, 5)
    assert is_open(CNY, at, Cutoff.INTERBANK)
    assert not is_open(CNY, at, Cutoff.CUSTOMER)
    assert business_day(CNY, at, Cutoff.CUSTOMER) == dt.date(2025, 9, 30)


def test_the_hvps_session_opens_the_evening_before_even_after_a_weekend() -> None:
    monday = dt.date(2025, 9, 22)
    assert session(CNY, monday) == Interval(utc(2025, 9, 21, 12, 30), utc(2025, 9, 22, 9, 15))
    sunday_evening = local("Asia/Shanghai", 2025, 9, 21, 21, 0)
    assert is_open(CNY, sunday_evening) and business_day(CNY, sunday_evening) == monday


def test_instants_are_aware_datetimes_or_utc_nanoseconds() -> None:
    at = utc(2025, 10, 3, 16, 59)
    nanoseconds = int(at.timestamp()) * 1_000_000_000
    assert as_utc(nanoseconds) == at
    assert is_open(RUB, nanoseconds) == is_open(RUB, at)
    with pytest.raises(ValueError, match="naive"):
        is_open(RUB, dt.datetime(2025, 10, 3, 12, 0))
    with pytest.raises(TypeError):
        as_utc(True)


def test_wall_clock_hours_follow_daylight_saving_in_a_zone_that_keeps_it() -> None:
    # Iran kept DST until 2022: 08:00 Tehran was 03:30 UTC in July 2021, 04:30 UTC in July 2025.
    july_2021, july_2025 = session(IRR, dt.date(2021, 7, 6)), session(IRR, dt.date(2025, 7, 7))
    assert july_2021 is not None and july_2021.start == utc(2021, 7, 6, 3, 30)
    assert july_2025 is not None and july_2025.start == utc(2025, 7, 7, 4, 30)
    egp = SHIPPED.calendar("EGP")  # Cairo: UTC+3 in summer again since 2023.
    assert session(egp, dt.date(2025, 7, 7)) == Interval(utc(2025, 7, 7, 6), utc(2025, 7, 7, 13))
    assert session(egp, dt.date(2025, 1, 6)) == Interval(utc(2025, 1, 6, 7), utc(2025, 1, 6, 14))


# --- Pairs --------------------------------------------------------------------------------------


NO_OVERLAP = """\
format: 1
sources:
  test: a test
calendars:
  - currency: CNY
    country: CN
    central_bank: PBOCCNBJ
    system: {value: "HVPS day session only", source: test, certainty: P}
    time_zone: {value: Asia/Shanghai, source: test, certainty: P}
    opening: {value: "08:30", source: test, certainty: P}
    customer_cutoff: {value: "11:00", source: test, certainty: P}
    interbank_cutoff: {value: "12:00", source: test, certainty: P}
    end_of_day: {value: "12:30", source: test, certainty: P}
    weekend: {value: [sat, sun], source: test, certainty: P}
    holidays: {value: CN, source: test, certainty: P}
  - currency: BYN
    country: BY
    central_bank: NBRBBY2X
    system: {value: BISS, source: test, certainty: P}
    time_zone: {value: Europe/Minsk, source: test, certainty: P}
    opening: {value: "09:00", source: test, certainty: P}
    customer_cutoff: {value: "16:30", source: test, certainty: P}
    interbank_cutoff: {value: "17:00", source: test, certainty: P}
    end_of_day: {value: "17:30", source: test, certainty: P}
    weekend: {value: [sat, sun], source: test, certainty: P}
    holidays: {value: BY, source: test, certainty: P}
"""


def test_a_pair_whose_hours_never_overlap_has_no_window() -> None:
    # 08:30-12:00 Beijing is 00:30-04:00 UTC; 09:00-17:00 Minsk is 06:00-14:00 UTC.
    calendars = parse_calendars(NO_OVERLAP, years=range(2025, 2027))
    cny, byn = calendars.calendar("CNY"), calendars.calendar("BYN")
    found = settlement_window(cny, byn, dt.date(2025, 9, 30))
    assert found.window is None
    assert found.reasons == (
        "no overlap: CNY 2025-09-30 00:30-2025-09-30 04:00 UTC,"
        " BYN 2025-09-30 06:00-2025-09-30 14:00 UTC",
    )
    at = utc(2025, 9, 30, 1, 0)
    assert is_open(cny, at) and not is_open(byn, at)
    assert next_window(cny, byn, at) is None
    assert not is_window_open(cny, byn, at)


def test_the_window_of_a_pair_is_the_overlap_of_both_sessions_of_the_date() -> None:
    day = dt.date(2025, 9, 30)
    found = settlement_window(KZT, CNY, day)
    # KZT 09:00-19:00 Almaty = 04:00-14:00 UTC; CNY 20:30 (day before)-17:15 Beijing.
    assert found.window == Interval(utc(2025, 9, 30, 4, 0), utc(2025, 9, 30, 9, 15))
    assert found.reasons == ()
    assert next_window(KZT, CNY, utc(2025, 9, 30, 5, 0)) == found
    assert is_window_open(KZT, CNY, utc(2025, 9, 30, 5, 0))
    # After CNY's cut-off the next window is after Golden Week, on 9 October.
    later = next_window(KZT, CNY, utc(2025, 9, 30, 9, 15))
    assert later is not None and later.day == dt.date(2025, 10, 9)
    assert later.window == Interval(utc(2025, 10, 9, 4, 0), utc(2025, 10, 9, 9, 15))


def test_the_windows_table_covers_every_pair_once() -> None:
    table = settlement_windows(SHIPPED, dt.date(2025, 10, 1))
    assert len(table) == len(SHIPPED.by_currency) * (len(SHIPPED.by_currency) - 1) // 2
    assert len({(w.first, w.second) for w in table}) == len(table)
    chosen = settlement_windows(SHIPPED, dt.date(2025, 10, 1), [("KZT", "CNY")])
    assert [w.pair for w in chosen] == ["KZT/CNY"]


# --- Properties ---------------------------------------------------------------------------------


CODES = sorted(SHIPPED.by_currency)


def covered(at: dt.datetime, *calendars: BusinessCalendar) -> bool:
    """Whether the calendars' holiday data covers every day a search from ``at`` may visit
    (Sri Lanka's holidays are published year by year: the package knows them to 2026 only)."""
    days = (at - dt.timedelta(days=1), at + dt.timedelta(days=SEARCH_DAYS_MAX + 1))
    return all(day.year in calendar.years for day in days for calendar in calendars)


instants = st.datetimes(
    min_value=dt.datetime(2021, 1, 1), max_value=dt.datetime(2034, 11, 30), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(code=st.sampled_from(CODES), at=instants, customer=st.booleans())
def test_the_business_day_is_never_a_holiday_or_weekend_and_its_cut_off_is_ahead(
    code: str, at: dt.datetime, customer: bool
) -> None:
    calendar = SHIPPED.calendar(code)
    assume(covered(at, calendar))
    cutoff = Cutoff.CUSTOMER if customer else Cutoff.INTERBANK
    day = business_day(calendar, at, cutoff)
    assert day not in calendar.holidays
    assert day.weekday() not in calendar.weekend or day in calendar.workdays
    own = session(calendar, day, cutoff)
    assert own is not None and at < own.end
    # No earlier business day's session is still open, and the next opening is inside it.
    assert day >= at.astimezone(calendar.zone).date()
    opening = next_opening(calendar, at, cutoff)
    assert opening >= at and own.contains(opening) and is_open(calendar, opening, cutoff)
    assert is_open(calendar, at, cutoff) == (opening == at)


@settings(max_examples=300, deadline=None)
@given(pair=st.lists(st.sampled_from(CODES), min_size=2, max_size=2, unique=True), at=instants)
def test_a_window_lies_inside_both_currencies_open_hours(pair: list[str], at: dt.datetime) -> None:
    first, second = (SHIPPED.calendar(code) for code in pair)
    assume(covered(at, first, second))
    found = next_window(first, second, at)
    if found is None:
        return
    assert found.window is not None and at < found.window.end
    for calendar, own in zip((first, second), found.sessions, strict=True):
        assert own is not None and own.start <= found.window.start
        assert found.window.end <= own.end
        assert is_open(calendar, found.window.start) and is_business_day(calendar, found.day)
    if is_window_open(first, second, at):
        assert is_open(first, at) and is_open(second, at)
        assert business_day(first, at) == business_day(second, at) == found.day


@settings(max_examples=200, deadline=None)
@given(code=st.sampled_from(CODES), day=st.dates(dt.date(2021, 1, 1), dt.date(2034, 12, 30)))
def test_the_sessions_of_consecutive_business_days_never_overlap(code: str, day: dt.date) -> None:
    calendar = SHIPPED.calendar(code)
    assume(day.year in calendar.years and (day + dt.timedelta(days=1)).year in calendar.years)
    today, tomorrow = session(calendar, day), session(calendar, day + dt.timedelta(days=1))
    if today is not None and tomorrow is not None:
        assert today.end <= tomorrow.start


def test_no_shipped_pair_goes_a_month_without_a_window() -> None:
    for first, second in SHIPPED.pairs():
        at = utc(2026, 1, 5)
        found = next_window(SHIPPED.calendar(first), SHIPPED.calendar(second), at)
        assert found is not None, (first, second)
        assert (found.day - at.date()).days < SEARCH_DAYS_MAX


# --- Loading: specific errors -------------------------------------------------------------------


def _problems(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(CalendarError) as caught:
        parse_calendars(textwrap.dedent(text), source="bad.yaml", years=range(2025, 2026))
    return caught.value.problems


def test_a_malformed_file_reports_every_problem_with_its_line() -> None:
    text = NO_OVERLAP.replace('opening: {value: "08:30"', 'opening: {value: "25:00"')
    text = text.replace("weekend: {value: [sat, sun]", "weekend: {value: [saturday]", 1)
    text = text.replace("Europe/Minsk", "Europe/Nowhere")
    text = text.replace('"16:30", source: test', '"16:30", source: nowhere')
    text = text.replace("holidays: {value: BY,", "holidays: {value: XX,")
    text = text.replace("country: BY", "country: XX")
    problems = _problems(text)
    messages = "\n".join(f"{line}: {message}" for line, message in problems)
    assert "10: CNY: opening: '25:00' is not a time \"HH:MM\"" in messages
    assert "14: CNY: weekend must be a list of weekdays" in messages
    assert "20: BYN: unknown IANA time zone 'Europe/Nowhere'" in messages
    assert "22: BYN: customer_cutoff: source 'nowhere' is not in sources" in messages
    assert "26: BYN: holidays: the holidays package has no country 'XX'" in messages
    assert len(problems) == 5, messages
    foreign = NO_OVERLAP.replace("holidays: {value: BY,", "holidays: {value: RU,")
    assert _problems(foreign) == [
        (26, "BYN: holidays must be those of its country 'BY' (or null), not 'RU'")
    ]


def test_times_out_of_order_and_unlabelled_assumptions_are_refused() -> None:
    text = NO_OVERLAP.replace(
        'customer_cutoff: {value: "11:00"', 'customer_cutoff: {value: "12:15"'
    )
    text = text.replace(
        '"17:30", source: test, certainty: P', '"17:30", source: assumption, certainty: assumption'
    )
    text = text.replace("BISS, source: test, certainty: P", "BISS, source: test, certainty: Q")
    text = text.replace("Minsk, source: test, certainty: P", "Minsk, source: test, certainty: S")
    text = text.replace(
        "Minsk, source: test, certainty: S", "Minsk, source: assumption, certainty: S"
    )
    messages = "\n".join(f"{line}: {message}" for line, message in _problems(text))
    assert "5: CNY: the times must run opening < customer cut-off <= interbank cut-off" in messages
    assert "24: BYN: end_of_day: an assumption needs a note" in messages
    assert "19: BYN: system: certainty must be P, S, U or assumption, not 'Q'" in messages
    assert "20: BYN: time_zone: source 'assumption' goes with certainty 'assumption'" in messages


def test_unknown_keys_duplicates_and_long_days_are_refused() -> None:
    colour = NO_OVERLAP.replace("  - currency: BYN\n", "  - currency: BYN\n    colour: red\n")
    assert _problems(colour) == [(17, "BYN: unknown key 'colour'")]
    twice = NO_OVERLAP.replace("  - currency: BYN\n", "  - currency: CNY\n")
    assert _problems(twice) == [(16, "CNY: a second calendar for it")]
    long_day = NO_OVERLAP.replace(
        '"09:00", source: test', '"09:00", previous_day: true, source: test'
    )
    assert _problems(long_day) == [
        (16, "BYN: the day runs 09:00 (-1d) to 17:30: longer than 24 hours")
    ]
    with pytest.raises(CalendarError, match="cannot read the calendar file"):
        load_calendars("/nonexistent/calendars.yaml")
    with pytest.raises(CalendarError, match="invalid YAML"):
        parse_calendars("calendars: [", source="x.yaml")
    with pytest.raises(CalendarError, match="CN: the holidays package covers only 1950-2100"):
        parse_calendars(NO_OVERLAP, years=range(1900, 1901))
    with pytest.raises(CalendarError, match="IN: Requested Holidays are available only from 2001"):
        india = NO_OVERLAP.replace("BY, source", "IN, source").replace("country: BY", "country: IN")
        parse_calendars(india.replace("NBRBBY2X", "RBISINBB"), years=range(2036, 2037))


def test_hours_are_checked_when_built_in_code_too() -> None:
    with pytest.raises(ValueError, match="opening < customer cut-off"):
        DayHours(600, 540, 600, 660)
    with pytest.raises(ValueError, match="longer than 24 hours"):
        DayHours(-300, 600, 1200, 1200)
    with pytest.raises(ValueError, match="UTC"):
        Interval(local("Asia/Shanghai", 2025, 1, 1), local("Asia/Shanghai", 2025, 1, 2))


def test_loading_the_shipped_file_twice_gives_equal_calendars() -> None:
    again = load_calendars()
    assert isinstance(again, Calendars)
    for code, calendar in SHIPPED.by_currency.items():
        other = again.calendar(code)
        assert (other.hours, other.weekend, dict(other.holidays), other.workdays) == (
            calendar.hours,
            calendar.weekend,
            dict(calendar.holidays),
            calendar.workdays,
        )
    assert WEEKDAYS[4] == "fri"


# --- Command line -------------------------------------------------------------------------------


def test_the_windows_command_prints_the_window_in_utc_and_local_times() -> None:
    result = CliRunner().invoke(
        calendar_app,
        ["windows", "--date", "2025-09-30", "--pair", "KZT/CNY", "--pair", "irr/rub"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "04:00-09:15" in result.output  # UTC.
    assert "KZT 09:00-14:15" in result.output and "CNY 12:00-17:15" in result.output
    assert "IRR/RUB" in result.output


def test_the_windows_command_says_why_a_pair_is_closed() -> None:
    result = CliRunner().invoke(
        calendar_app,
        ["windows", "--date", "2025-10-01", "--pair", "KZT/CNY"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "CNY closed: holiday in CN (National Day)" in result.output
    members = CliRunner().invoke(calendar_app, ["windows", "--date", "2025-10-01"])
    assert members.exit_code == 0 and "AFN" not in members.output


def test_the_calendar_commands_refuse_bad_input() -> None:
    runner = CliRunner()
    assert runner.invoke(calendar_app, ["windows", "--pair", "KZT-CNY"]).exit_code == 2
    assert runner.invoke(calendar_app, ["windows", "--pair", "KZT/XXX"]).exit_code == 2
    assert runner.invoke(calendar_app, ["windows", "--date", "2025-13-01"]).exit_code == 2
    late = runner.invoke(
        calendar_app,
        ["windows", "--date", "2045-01-01", "--pair", "KZT/CNY"],
        env={"COLUMNS": "200"},
    )
    assert late.exit_code == 0 and "outside the years loaded (2020-2035)" in late.output
    missing = CliRunner().invoke(calendar_app, ["windows", "--calendars", "/no/file"])
    assert missing.exit_code == 1 and "cannot read the calendar file" in missing.stderr
    shown = runner.invoke(calendar_app, ["show", "--currency", "IRR"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "thu 14:00" in shown.output


def test_the_calendar_commands_are_registered_on_sco_settle() -> None:
    from sco_settle.cli.main import app

    result = CliRunner().invoke(app, ["calendar", "--help"])
    assert result.exit_code == 0 and "windows" in result.output
