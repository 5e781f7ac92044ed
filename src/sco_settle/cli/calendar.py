"""``sco-settle calendar``: the business calendars of the settlement currencies, and the
settlement windows of currency pairs on a date. Parsing and printing only; the rules are in
``domain/calendar.py``."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sco_settle.domain.calendar import (
    WEEKDAYS,
    BusinessCalendar,
    CalendarError,
    CalendarRangeError,
    Calendars,
    Cutoff,
    DayHours,
    Fact,
    SettlementWindow,
    load_calendars,
    settlement_windows,
)
from sco_settle.domain.participants import ScoStatus
from sco_settle.network import NetworkError, load_network

calendar_app = typer.Typer(
    help="Business calendars: opening hours, cut-offs, holidays, settlement windows.",
    no_args_is_help=True,
)
SHIPPED_NOTE = "src/sco_settle/reference_data/calendars.yaml, docs/reference/calendar.md"

CalendarsOption = Annotated[
    Path | None,
    typer.Option("--calendars", help="A calendar file (default: the shipped calendars.yaml)."),
]


def register(app: typer.Typer) -> None:
    """Add the ``calendar`` commands to ``app``."""
    app.add_typer(calendar_app, name="calendar")


@calendar_app.command("windows")
def windows(
    date: Annotated[
        str | None, typer.Option("--date", help="YYYY-MM-DD (default: today in UTC).")
    ] = None,
    pair: Annotated[
        list[str] | None,
        typer.Option("--pair", help="A currency pair such as KZT/CNY; repeat for more."),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every pair of currencies, partners' too.")
    ] = False,
    customer: Annotated[
        bool, typer.Option("--customer", help="Use the customer cut-offs, not the interbank.")
    ] = False,
    calendars_file: CalendarsOption = None,
) -> None:
    """Each pair's settlement window on a date: the overlap of both currencies' sessions.

    By default, every pair of the member states' currencies (from the shipped network)."""
    calendars = _load(calendars_file)
    day = _date(date)
    if pair:
        pairs = [_pair(text, calendars) for text in pair]
    else:
        pairs = calendars.pairs() if every else _member_pairs(calendars)
    cutoff = Cutoff.CUSTOMER if customer else Cutoff.INTERBANK
    table = Table(title=f"Settlement windows on {day} ({cutoff.value} cut-offs)")
    for column in ("pair", "window (UTC)", "hours", "first, local", "second, local", "status"):
        table.add_column(column)
    for first, second in pairs:
        try:
            (window,) = settlement_windows(calendars, day, [(first, second)], cutoff)
            row = _window_row(window, calendars, day)
        except CalendarRangeError as error:  # No holiday data for that year: say so, go on.
            row = [f"{first}/{second}", "-", "-", "-", "-", f"unknown: {error}"]
        table.add_row(*map(escape, row))
    _console().print(table)


@calendar_app.command("show")
def show(
    currency: Annotated[
        list[str] | None, typer.Option("--currency", help="Only this currency; repeatable.")
    ] = None,
    calendars_file: CalendarsOption = None,
) -> None:
    """Each currency's calendar, every value with its certainty (P, S, U or A = assumption)."""
    calendars = _load(calendars_file)
    chosen = [calendars.calendar(_currency(code, calendars)) for code in currency or []]
    chosen = chosen or list(calendars.by_currency.values())
    table = Table(title=escape("Business calendars (local times; [certainty])"))
    columns = ("ccy", "time zone", "opening", "customer cut-off", "interbank cut-off")
    for column in (*columns, "end of day", "weekend", "holidays"):
        table.add_column(column)
    for calendar in chosen:
        table.add_row(*map(escape, _calendar_row(calendar)))
    console = _console()
    console.print(table)
    for calendar in chosen:
        console.print(
            escape(f"{calendar.currency}: {calendar.system} {_tag(calendar.facts['system'])}")
        )
    assumed = sum(f.source == "assumption" for c in chosen for f in c.facts.values())
    console.print(f"{assumed} values are assumptions; their notes: {SHIPPED_NOTE}")


def _console() -> Console:
    # Made per command, so that the width follows the terminal (and COLUMNS) of each run.
    return Console(soft_wrap=True)


def _member_pairs(calendars: Calendars) -> list[tuple[str, str]]:
    """The pairs of calendars whose currency is a member state's in the shipped network."""
    try:
        network = load_network("sco")
    except NetworkError as error:
        _fail(str(error))
    members = {c.currency for c in network.countries if c.sco_status is ScoStatus.MEMBER}
    return [pair for pair in calendars.pairs() if set(pair) <= members]


def _load(path: Path | None) -> Calendars:
    try:
        return load_calendars(path)
    except CalendarError as error:
        _fail(str(error))


def _fail(message: str) -> NoReturn:
    """One line on stderr (scripts grep these), then exit code 1."""
    sys.stderr.write("sco-settle: " + " ".join(message.split()) + "\n")
    raise typer.Exit(1)


def _date(text: str | None) -> dt.date:
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date YYYY-MM-DD", param_hint="--date"
        ) from None


def _pair(text: str, calendars: Calendars) -> tuple[str, str]:
    first, slash, second = text.upper().partition("/")
    if not slash or first == second:
        raise typer.BadParameter(f"{text!r} is not a pair such as KZT/CNY", param_hint="--pair")
    return _currency(first, calendars, "--pair"), _currency(second, calendars, "--pair")


def _currency(code: str, calendars: Calendars, hint: str = "--currency") -> str:
    code = code.upper()
    if code not in calendars.by_currency:
        known = ", ".join(calendars.by_currency)
        raise typer.BadParameter(f"no calendar for {code} (known: {known})", param_hint=hint)
    return code


def _window_row(window: SettlementWindow, calendars: Calendars, day: dt.date) -> list[str]:
    if window.window is None:
        return [window.pair, "-", "-", "-", "-", "; ".join(window.reasons)]
    span = window.window
    hours = span.duration.total_seconds() / 3600
    local = [
        _local_span(calendars.calendar(code), span.start, span.end, day)
        for code in (window.first, window.second)
    ]
    return [window.pair, _span(span.start, span.end, day, dt.UTC), f"{hours:.2f}", *local, "open"]


def _local_span(
    calendar: BusinessCalendar, start: dt.datetime, end: dt.datetime, day: dt.date
) -> str:
    return f"{calendar.currency} {_span(start, end, day, calendar.zone)}"


def _span(start: dt.datetime, end: dt.datetime, day: dt.date, zone: dt.tzinfo) -> str:
    return f"{_clock(start, day, zone)}-{_clock(end, day, zone)}"


def _clock(at: dt.datetime, day: dt.date, zone: dt.tzinfo) -> str:
    """``HH:MM`` in ``zone``, marked ``(-1d)`` / ``(+1d)`` when not on ``day``."""
    local = at.astimezone(zone)
    shift = (local.date() - day).days
    return f"{local:%H:%M}" + (f" ({shift:+d}d)" if shift else "")


def _calendar_row(calendar: BusinessCalendar) -> list[str]:
    hours = calendar.hours
    facts = calendar.facts
    weekend = ", ".join(WEEKDAYS[day] for day in sorted(calendar.weekend))
    offset = dt.datetime.now(calendar.zone).strftime("UTC%z")
    holidays = calendar.country if calendar.holidays else "none"
    row = [
        calendar.currency,
        f"{calendar.zone.key} ({offset}) {_tag(facts['time_zone'])}",
        *_hour_cells(hours, facts),
        f"{weekend or 'none'} {_tag(facts['weekend'])}",
        f"{holidays} {_tag(facts['holidays'])}",
    ]
    for name, override in sorted(calendar.hours_by_weekday.items()):
        day = WEEKDAYS[name]
        row[3] += f"; {day} {_minute(override.customer_cutoff_minute)}"
        row[4] += f"; {day} {_minute(override.interbank_cutoff_minute)}"
    return row


def _hour_cells(hours: DayHours, facts: Mapping[str, Fact]) -> list[str]:
    minutes = (
        ("opening", hours.opening_minute),
        ("customer_cutoff", hours.customer_cutoff_minute),
        ("interbank_cutoff", hours.interbank_cutoff_minute),
        ("end_of_day", hours.end_of_day_minute),
    )
    return [f"{_minute(minute)} {_tag(facts[name])}" for name, minute in minutes]


def _minute(minute: int) -> str:
    day, rest = divmod(minute, 24 * 60)
    if day == 1 and rest == 0:
        return "24:00"
    return f"{rest // 60:02d}:{rest % 60:02d}" + (" (-1d)" if day < 0 else "")


def _tag(fact: Fact) -> str:
    code = "A" if fact.source == "assumption" else fact.certainty.value
    return f"[{code}]"
