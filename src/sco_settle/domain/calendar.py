"""Business calendars: when each settlement currency's central-bank system is open, and when two
currencies are open together (the settlement window of a currency pair).

Each currency settles in its central bank's settlement system, which takes payments for a
business day D from an opening time to a cut-off, in its own time zone. The SCO spans UTC+3
(Moscow, Minsk) to UTC+8 (Beijing), so a payment between two currencies can settle
payment-versus-payment only in the overlap of both sessions of the same date: the settlement
window that CLS exists to provide. The calendars of the shipped network are data
(``reference_data/calendars.yaml``), each value with its source and certainty;
docs/reference/calendar.md describes the format, the guarantees and which values are
assumptions.

Invariants:
- Every function here except ``load_calendars`` and ``parse_calendars`` is pure: no I/O, no clock,
  no global state. Instants go in and out as timezone-aware UTC datetimes (or, going in, integer
  nanoseconds since the Unix epoch). Loading does all the I/O once: it reads the YAML, opens the
  time zones and computes the holidays of the years asked for, so that a query never reads a
  file (the ``holidays`` package reads translation files) and answers the same on every machine.
- A session is ``[opening, cut-off)`` of one business day, never longer than 24 hours, so the
  sessions of two business days of one currency never overlap and every instant has exactly one
  business day: the first business day whose cut-off is still ahead of it.
- A business day is a day that is not a public holiday and either not a weekend day or a weekend
  day the government made a working day. Holidays come from the maintained ``holidays`` package,
  never from a hand list.
- A settlement window lies inside both currencies' sessions of its date (it is their
  intersection), and is ``None`` when either is closed or the two do not overlap.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from itertools import combinations
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from sco_settle.domain.money import is_currency
from sco_settle.domain.participants import BicError, parse_bic

FORMAT_VERSION = 1
SHIPPED_PACKAGE = "sco_settle.reference_data"
SHIPPED_FILE = "calendars.yaml"
# The years whose holidays ``load_calendars`` computes unless told otherwise. A query about a day
# outside them raises ``CalendarRangeError`` rather than guessing.
DEFAULT_YEARS = range(2020, 2036)
# How many days ahead a search for the next business day or window may look. The longest run of
# non-business days in the SCO calendars is about ten days (Russia's New Year, China's Spring
# Festival and Golden Week); a month is ample, and bounds every loop.
SEARCH_DAYS_MAX = 31
MINUTES_PER_DAY = 24 * 60
ASSUMPTION = "assumption"  # The source key of a value that no source supports.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Instant = dt.datetime | int  # An aware datetime, or nanoseconds since the Unix epoch (UTC).


class Certainty(enum.Enum):
    """How well a value is supported (the codes of ../shared/reference/CORRIDORS.md)."""

    PRIMARY = "P"  # The institution's own statement or document, or a verbatim copy.
    SECONDARY = "S"  # A reputable newspaper, news agency or maintained data set.
    UNCERTAIN = "U"  # A weak outlet, one bank's rule taken for the system's, a derived value.
    ASSUMPTION = "assumption"  # No source found; the fact's note says what was assumed.


class Cutoff(enum.Enum):
    """Which cut-off ends a session: a bank's payments for customers stop before its own."""

    CUSTOMER = "customer"
    INTERBANK = "interbank"


@dataclass(frozen=True, slots=True)
class Fact:
    """Where one value of a calendar comes from: a key of ``Calendars.sources`` (or
    ``"assumption"``), how certain it is, and a note (required for an assumption)."""

    source: str
    certainty: Certainty
    note: str = ""


@dataclass(frozen=True, slots=True)
class DayHours:
    """The times of one business day, in minutes from the local midnight that starts the day.

    The opening may be negative (the session opens the evening before); a cut-off and the end of
    day may be 1440 (midnight at the end of the day).
    """

    opening_minute: int
    customer_cutoff_minute: int
    interbank_cutoff_minute: int
    end_of_day_minute: int

    def __post_init__(self) -> None:
        problems = day_hours_problems(*_minutes(self))
        if problems:
            raise ValueError("; ".join(problems))

    def cutoff_minute(self, cutoff: Cutoff) -> int:
        if cutoff is Cutoff.CUSTOMER:
            return self.customer_cutoff_minute
        return self.interbank_cutoff_minute


def day_hours_problems(opening: int, customer: int, interbank: int, end: int) -> list[str]:
    """Why these times (minutes, as in ``DayHours``) are not a valid business day; empty if
    they are one."""
    problems = []
    if not -MINUTES_PER_DAY < opening < MINUTES_PER_DAY:
        problems.append(f"the opening must lie within a day either side ({_clock(opening)})")
    if not opening < customer <= interbank <= end <= MINUTES_PER_DAY:
        problems.append(
            "the times must run opening < customer cut-off <= interbank cut-off <= end of day"
            f" <= 24:00 (got {_clock(opening)}, {_clock(customer)}, {_clock(interbank)},"
            f" {_clock(end)})"
        )
    if end - opening > MINUTES_PER_DAY:
        # Else the sessions of two consecutive days would overlap, and an instant would belong
        # to two business days.
        problems.append(f"the day runs {_clock(opening)} to {_clock(end)}: longer than 24 hours")
    return problems


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open span of time ``[start, end)``; both ends aware datetimes in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.utcoffset() != dt.timedelta(0) or self.end.utcoffset() != dt.timedelta(0):
            raise ValueError(f"an interval is kept in UTC: {self.start} - {self.end}")
        if not self.start < self.end:
            raise ValueError(f"an interval must end after it starts: {self.start} - {self.end}")

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start

    def contains(self, at: dt.datetime) -> bool:
        return self.start <= at < self.end

    def intersection(self, other: Interval) -> Interval | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Interval(start, end) if start < end else None


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """The business calendar of one currency: its settlement system's days and hours.

    ``hours_by_weekday`` overrides ``hours`` on some weekdays (0 = Monday), e.g. Iran's short
    Thursday. ``holidays`` and ``workdays`` (weekend days made working days) cover the days of
    ``years``. ``facts`` gives the provenance of each value by field name (``"opening"``,
    ``"weekend"``, ``"weekday_hours.thu"``, ...).
    """

    currency: str
    country: str
    central_bank: str
    system: str
    zone: ZoneInfo
    hours: DayHours
    hours_by_weekday: Mapping[int, DayHours]
    weekend: frozenset[int]
    holidays: Mapping[dt.date, str]
    workdays: frozenset[dt.date]
    years: range
    facts: Mapping[str, Fact]

    def __post_init__(self) -> None:
        if not self.weekend <= set(range(7)) or not set(self.hours_by_weekday) <= set(range(7)):
            raise ValueError(f"{self.currency}: weekdays are numbered 0 (Monday) to 6")
        outside = [d for d in (*self.holidays, *self.workdays) if d.year not in self.years]
        if outside:
            raise ValueError(f"{self.currency}: holiday data outside {self.years}: {outside[0]}")


class CalendarRangeError(ValueError):
    """A day outside the years whose holidays were loaded (``load_calendars(years=...)``)."""


@dataclass(frozen=True, slots=True)
class SettlementWindow:
    """The settlement window of a currency pair on one date.

    ``sessions`` are each currency's session of ``day`` (``None`` when closed), ``window`` their
    intersection (``None`` when either is closed or they do not overlap), and ``reasons`` says why
    the window is ``None`` (empty when it is not).
    """

    first: str
    second: str
    day: dt.date
    sessions: tuple[Interval | None, Interval | None]
    window: Interval | None
    reasons: tuple[str, ...]

    @property
    def pair(self) -> str:
        return f"{self.first}/{self.second}"


@dataclass(frozen=True, slots=True)
class Calendars:
    """The loaded calendars, by currency in file order, and the sources their facts cite."""

    by_currency: Mapping[str, BusinessCalendar]
    sources: Mapping[str, str]

    def calendar(self, currency: str) -> BusinessCalendar:
        found = self.by_currency.get(currency)
        if found is None:
            known = ", ".join(self.by_currency)
            raise KeyError(f"no business calendar for {currency!r} (known: {known})")
        return found

    def pairs(self) -> list[tuple[str, str]]:
        """Every pair of currencies once, in file order (the first before the second)."""
        return list(combinations(self.by_currency, 2))


# --- Days -------------------------------------------------------------------------------------


def closed_reason(calendar: BusinessCalendar, day: dt.date) -> str | None:
    """Why ``day`` is not a business day of ``calendar`` ("holiday in CN (National Day)",
    "weekend in IR (Friday)"), or ``None`` if it is one."""
    _check_covered(calendar, day)
    name = calendar.holidays.get(day)
    if name is not None:
        return f"holiday in {calendar.country} ({name})"
    if day.weekday() in calendar.weekend and day not in calendar.workdays:
        return f"weekend in {calendar.country} ({WEEKDAY_NAMES[day.weekday()]})"
    return None


def is_business_day(calendar: BusinessCalendar, day: dt.date) -> bool:
    return closed_reason(calendar, day) is None


def hours_on(calendar: BusinessCalendar, day: dt.date) -> DayHours:
    """The hours of ``day`` (whether or not it is a business day)."""
    return calendar.hours_by_weekday.get(day.weekday(), calendar.hours)


def session(
    calendar: BusinessCalendar, day: dt.date, cutoff: Cutoff = Cutoff.INTERBANK
) -> Interval | None:
    """The session of business day ``day`` in UTC, ``[opening, cut-off)``; ``None`` if ``day`` is
    not a business day."""
    if not is_business_day(calendar, day):
        return None
    hours = hours_on(calendar, day)
    start = local_instant(calendar, day, hours.opening_minute)
    end = local_instant(calendar, day, hours.cutoff_minute(cutoff))
    return Interval(start, end)


def local_instant(calendar: BusinessCalendar, day: dt.date, minute: int) -> dt.datetime:
    """The UTC instant of wall-clock ``minute`` (from the local midnight starting ``day``)."""
    # Arithmetic on an aware datetime is wall-clock arithmetic in its zone, so "20:30 the day
    # before" stays 20:30 across a daylight-saving change; the conversion to UTC comes last.
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=calendar.zone)
    return (midnight + dt.timedelta(minutes=minute)).astimezone(dt.UTC)


def _check_covered(calendar: BusinessCalendar, day: dt.date) -> None:
    if day.year not in calendar.years:
        raise CalendarRangeError(
            f"{calendar.currency}: {day} is outside the years loaded"
            f" ({calendar.years.start}-{calendar.years.stop - 1})"
        )


# --- Instants ---------------------------------------------------------------------------------


def as_utc(at: Instant) -> dt.datetime:
    """An instant as an aware UTC datetime; nanoseconds are truncated to microseconds."""
    if isinstance(at, bool) or not isinstance(at, dt.datetime | int):
        raise TypeError(f"an instant is an aware datetime or int nanoseconds, not {at!r}")
    if isinstance(at, int):
        return _EPOCH + dt.timedelta(microseconds=at // 1000)
    if at.utcoffset() is None:
        raise ValueError(f"a naive datetime has no time zone: {at}")
    return at.astimezone(dt.UTC)


def business_day(
    calendar: BusinessCalendar, at: Instant, cutoff: Cutoff = Cutoff.INTERBANK
) -> dt.date:
    """The business day on which a payment submitted at ``at`` settles: the first business day
    whose cut-off is still ahead. After the cut-off, on a weekend or a holiday, that is the next
    business day; before the opening of a business day, that day."""
    moment = as_utc(at)
    day = moment.astimezone(calendar.zone).date()
    for _ in range(SEARCH_DAYS_MAX):
        today = session(calendar, day, cutoff)
        if today is not None and moment < today.end:
            return day
        day += dt.timedelta(days=1)
    raise AssertionError(f"{calendar.currency}: no business day within {SEARCH_DAYS_MAX} days")


def is_open(calendar: BusinessCalendar, at: Instant, cutoff: Cutoff = Cutoff.INTERBANK) -> bool:
    """Whether a payment in the currency can settle at ``at``."""
    moment = as_utc(at)
    today = session(calendar, business_day(calendar, moment, cutoff), cutoff)
    assert today is not None
    return today.contains(moment)


def next_opening(
    calendar: BusinessCalendar, at: Instant, cutoff: Cutoff = Cutoff.INTERBANK
) -> dt.datetime:
    """The first instant at or after ``at`` when the currency is open: ``at`` itself if open."""
    moment = as_utc(at)
    today = session(calendar, business_day(calendar, moment, cutoff), cutoff)
    assert today is not None and moment < today.end
    return max(moment, today.start)


# --- Pairs ------------------------------------------------------------------------------------


def settlement_window(
    first: BusinessCalendar,
    second: BusinessCalendar,
    day: dt.date,
    cutoff: Cutoff = Cutoff.INTERBANK,
) -> SettlementWindow:
    """The overlap (in UTC) of both currencies' sessions of ``day``, with why it is empty."""
    sessions = (session(first, day, cutoff), session(second, day, cutoff))
    reasons = []
    for calendar, own in zip((first, second), sessions, strict=True):
        if own is None:
            reasons.append(f"{calendar.currency} closed: {closed_reason(calendar, day)}")
    window = None
    if sessions[0] is not None and sessions[1] is not None:
        window = sessions[0].intersection(sessions[1])
        if window is None:
            reasons.append(
                f"no overlap: {first.currency} {_utc_span(sessions[0])},"
                f" {second.currency} {_utc_span(sessions[1])}"
            )
    return SettlementWindow(first.currency, second.currency, day, sessions, window, tuple(reasons))


def next_window(
    first: BusinessCalendar,
    second: BusinessCalendar,
    at: Instant,
    cutoff: Cutoff = Cutoff.INTERBANK,
) -> SettlementWindow | None:
    """The settlement window open at ``at``, or else the next one; ``None`` if the pair has
    none within ``SEARCH_DAYS_MAX`` days (its hours never overlap)."""
    moment = as_utc(at)
    # No window of an earlier day can still be open: it ends by a cut-off already passed.
    day = min(business_day(first, moment, cutoff), business_day(second, moment, cutoff))
    for _ in range(SEARCH_DAYS_MAX):
        found = settlement_window(first, second, day, cutoff)
        if found.window is not None and moment < found.window.end:
            return found
        day += dt.timedelta(days=1)
    return None


def is_window_open(
    first: BusinessCalendar,
    second: BusinessCalendar,
    at: Instant,
    cutoff: Cutoff = Cutoff.INTERBANK,
) -> bool:
    """Whether a payment between the two currencies can settle at ``at``, both legs on the
    same business day."""
    found = next_window(first, second, at, cutoff)
    return found is not None and found.window is not None and found.window.contains(as_utc(at))


def settlement_windows(
    calendars: Calendars,
    day: dt.date,
    pairs: Iterable[tuple[str, str]] | None = None,
    cutoff: Cutoff = Cutoff.INTERBANK,
) -> list[SettlementWindow]:
    """The window of each pair on ``day`` (every pair of the calendars if ``pairs`` is None)."""
    chosen = calendars.pairs() if pairs is None else list(pairs)
    return [
        settlement_window(calendars.calendar(first), calendars.calendar(second), day, cutoff)
        for first, second in chosen
    ]


def _clock(minute: int) -> str:
    day, rest = divmod(minute, MINUTES_PER_DAY)
    text = f"{rest // 60:02d}:{rest % 60:02d}"
    if day == 1 and rest == 0:
        return "24:00"
    return text if day == 0 else f"{text} ({day:+d}d)"


def _utc_span(interval: Interval) -> str:
    return f"{interval.start:%Y-%m-%d %H:%M}-{interval.end:%Y-%m-%d %H:%M} UTC"


# --- Loading ----------------------------------------------------------------------------------


class CalendarError(ValueError):
    """A calendar file cannot be read or is invalid; ``problems`` lists (line, message) pairs.

    ``line`` is 1-based, or ``None`` when a problem concerns the whole file.
    """

    def __init__(self, source: str, problems: list[tuple[int | None, str]]) -> None:
        assert problems, source
        self.source = source
        self.problems = sorted(problems, key=lambda problem: problem[0] or 0)
        super().__init__("\n".join(_format(source, line, text) for line, text in self.problems))


def _format(source: str, line: int | None, text: str) -> str:
    return f"{source}: {text}" if line is None else f"{source}:{line}: {text}"


def load_calendars(path: str | Path | None = None, *, years: range = DEFAULT_YEARS) -> Calendars:
    """Load the shipped calendars (``reference_data/calendars.yaml``), or a calendar file by path.

    This, and ``parse_calendars``, are the only functions of the module that do I/O.
    """
    if path is None:
        resource = resources.files(SHIPPED_PACKAGE).joinpath(SHIPPED_FILE)
        text = resource.read_text(encoding="utf-8")
        return parse_calendars(text, source=f"reference_data/{SHIPPED_FILE}", years=years)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CalendarError(
            str(path), [(None, f"cannot read the calendar file: {error}")]
        ) from None
    return parse_calendars(text, source=str(path), years=years)


def parse_calendars(
    text: str, source: str = "<calendars>", *, years: range = DEFAULT_YEARS
) -> Calendars:
    """Parse and check the text of a calendar file; every problem found is reported at once."""
    if not years or years.step != 1:
        raise ValueError(f"years must be a non-empty range with step 1, not {years}")
    root = _parse_yaml(text, source)
    reader = _Reader()
    calendars = reader.document(root, years)
    if reader.problems or calendars is None:
        raise CalendarError(source, reader.problems or [(None, "no calendars")])
    return calendars


def _parse_yaml(text: str, source: str) -> CommentedMap:
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        problem = error.problem or error.context or "invalid YAML"
        raise CalendarError(source, [(line, f"invalid YAML: {problem}")]) from None
    except YAMLError as error:
        raise CalendarError(source, [(None, f"invalid YAML: {error}")]) from None
    if not isinstance(root, CommentedMap):
        raise CalendarError(source, [(1, "a calendar file must be a YAML mapping")])
    return root


_TIME = re.compile(r"(?P<hour>[0-2][0-9]):(?P<minute>[0-5][0-9])")
_FACT_KEYS = frozenset({"value", "source", "certainty", "note"})
_CALENDAR_KEYS = frozenset(
    {
        "currency",
        "country",
        "central_bank",
        "system",
        "time_zone",
        "opening",
        "customer_cutoff",
        "interbank_cutoff",
        "end_of_day",
        "weekend",
        "holidays",
        "weekday_hours",
    }
)
_OPTIONAL_CALENDAR_KEYS = frozenset({"weekday_hours"})
_TIME_FIELDS = ("opening", "customer_cutoff", "interbank_cutoff", "end_of_day")


def _line(node: Any, key: Any = None) -> int | None:
    """The 1-based line of ``node``, or of its ``key`` (a mapping's key, a list's index), when
    ruamel kept one."""
    try:
        if key is None:
            return int(node.lc.line) + 1
        if isinstance(node, CommentedSeq):
            return int(node.lc.item(key)[0]) + 1
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


class _Reader:
    """Reads a calendar document, collecting every problem with its line (Beancount-style:
    errors are collected, not thrown, so one run reports them all)."""

    def __init__(self) -> None:
        self.problems: list[tuple[int | None, str]] = []
        self.sources: dict[str, str] = {}

    def fail(self, line: int | None, text: str) -> None:
        self.problems.append((line, text))

    def document(self, root: CommentedMap, years: range) -> Calendars | None:
        self.keys(root, "the file", {"format", "sources", "calendars"}, {"format", "calendars"})
        if root.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            self.fail(_line(root, "format"), f"format must be {FORMAT_VERSION}")
        self.sources = self.read_sources(root.get("sources", CommentedMap()))
        entries = root.get("calendars")
        if not isinstance(entries, CommentedSeq) or not entries:
            self.fail(_line(root, "calendars"), "calendars must be a non-empty list")
            return None
        found: dict[str, BusinessCalendar] = {}
        for index, entry in enumerate(entries):
            calendar = self.calendar(entry, entries, index, years)
            if calendar is None:
                continue
            if calendar.currency in found:
                self.fail(_line(entry), f"{calendar.currency}: a second calendar for it")
            found[calendar.currency] = calendar
        return Calendars(MappingProxyType(found), MappingProxyType(dict(self.sources)))

    def keys(self, node: CommentedMap, where: str, allowed: set[str], required: set[str]) -> None:
        for key in node:
            if key not in allowed:
                self.fail(_line(node, key), f"{where}: unknown key {key!r}")
        for key in sorted(required - set(node)):
            self.fail(_line(node), f"{where}: missing {key!r}")

    def read_sources(self, node: Any) -> dict[str, str]:
        if not isinstance(node, CommentedMap):
            self.fail(_line(node), "sources must be a mapping of key to URL or description")
            return {}
        sources = {}
        for key, value in node.items():
            if not isinstance(key, str) or not isinstance(value, str) or not value.strip():
                self.fail(_line(node, key), f"source {key!r}: must name a URL or description")
            elif key == ASSUMPTION:
                self.fail(_line(node, key), f"{ASSUMPTION!r} is reserved, not a source key")
            else:
                sources[key] = value
        return sources

    def calendar(
        self, entry: Any, entries: CommentedSeq, index: int, years: range
    ) -> BusinessCalendar | None:
        if not isinstance(entry, CommentedMap):
            self.fail(_line(entries, index), f"calendar {index + 1}: must be a mapping")
            return None
        currency = entry.get("currency")
        where = currency if isinstance(currency, str) else f"calendar {index + 1}"
        self.keys(entry, where, set(_CALENDAR_KEYS), set(_CALENDAR_KEYS - _OPTIONAL_CALENDAR_KEYS))
        before = len(self.problems)
        identity = self.identity(entry, where)
        facts: dict[str, Fact] = {}
        system = self.fact(entry, "system", where, facts)
        if "system" in facts and not (isinstance(system, str) and system.strip()):
            self.fail(_line(entry, "system"), f"{where}: system must name the settlement system")
        zone = self.zone(entry, where, facts)
        hours = self.hours(entry, where, facts)
        by_weekday = self.weekday_hours(entry, where, hours, facts)
        weekend = self.weekend(entry, where, facts)
        holiday_data = self.holidays(entry, where, years, facts)
        if len(self.problems) > before or identity is None or hours is None:
            return None
        assert zone is not None and weekend is not None and holiday_data is not None
        return BusinessCalendar(
            *identity,
            system=str(system),
            zone=zone,
            hours=hours,
            hours_by_weekday=MappingProxyType(by_weekday),
            weekend=weekend,
            holidays=MappingProxyType(holiday_data.names),
            workdays=holiday_data.workdays,
            years=holiday_data.years,
            facts=MappingProxyType(facts),
        )

    def identity(self, entry: CommentedMap, where: str) -> tuple[str, str, str] | None:
        currency, country, bank = (entry.get(k) for k in ("currency", "country", "central_bank"))
        ok = True
        if not is_currency(currency):
            self.fail(_line(entry, "currency"), f"{where}: {currency!r} is not an ISO 4217 code")
            ok = False
        if not (isinstance(country, str) and re.fullmatch(r"[A-Z]{2}", country)):
            self.fail(_line(entry, "country"), f"{where}: country must be ISO 3166 alpha-2")
            ok = False
        try:
            bank = parse_bic(bank)
        except BicError as error:
            self.fail(_line(entry, "central_bank"), f"{where}: central_bank: {error}")
            ok = False
        return (str(currency), str(country), str(bank)) if ok else None

    def fact(
        self,
        entry: CommentedMap,
        key: str,
        where: str,
        facts: dict[str, Fact],
        extra: frozenset[str] = frozenset(),
    ) -> Any:
        """The ``value`` of fact ``key`` of ``entry`` after checking its provenance; the fact's
        source, certainty and note go into ``facts``. ``None`` (with a problem) if malformed."""
        node = entry.get(key)
        if not isinstance(node, CommentedMap):
            if key in entry:
                self.fail(
                    _line(entry, key),
                    f"{where}: {key} must be a mapping with a value, source and certainty",
                )
            return None
        provenance = self.provenance(node, f"{where}: {key}", extra | {"value"})
        if provenance is None:
            return None
        facts[key] = provenance
        return node.get("value")

    def provenance(self, node: CommentedMap, where: str, allowed: frozenset[str]) -> Fact | None:
        self.keys(
            node,
            where,
            set(_FACT_KEYS | allowed),
            {"source", "certainty"} | ({"value"} if "value" in allowed else set()),
        )
        source, certainty, note = node.get("source"), node.get("certainty"), node.get("note", "")
        try:
            level = Certainty(certainty)
        except ValueError:
            self.fail(
                _line(node, "certainty"),
                f"{where}: certainty must be P, S, U or assumption, not {certainty!r}",
            )
            return None
        if (source == ASSUMPTION) != (level is Certainty.ASSUMPTION):
            self.fail(
                _line(node, "source"),
                f"{where}: source {ASSUMPTION!r} goes with"
                f" certainty {ASSUMPTION!r}, and only with it",
            )
            return None
        if source != ASSUMPTION and source not in self.sources:
            self.fail(_line(node, "source"), f"{where}: source {source!r} is not in sources")
            return None
        if level is Certainty.ASSUMPTION and not (isinstance(note, str) and note.strip()):
            self.fail(_line(node), f"{where}: an assumption needs a note saying what is assumed")
            return None
        return Fact(str(source), level, " ".join(str(note).split()))

    def zone(self, entry: CommentedMap, where: str, facts: dict[str, Fact]) -> ZoneInfo | None:
        name = self.fact(entry, "time_zone", where, facts)
        if name is None:
            return None
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(_line(entry, "time_zone"), f"{where}: unknown IANA time zone {name!r}")
            return None

    def hours(self, entry: CommentedMap, where: str, facts: dict[str, Fact]) -> DayHours | None:
        minutes = []
        for key in _TIME_FIELDS:
            extra = frozenset({"previous_day"}) if key == "opening" else frozenset()
            value = self.fact(entry, key, where, facts, extra)
            minute = self.time(value, entry, key, where) if value is not None else None
            if minute is not None and key == "opening":
                minute = self.previous_day(entry[key], where, minute)
            minutes.append(minute)
        return self.day_hours(minutes, _line(entry), where)

    def day_hours(self, minutes: list[int | None], line: int | None, where: str) -> DayHours | None:
        known = [minute for minute in minutes if minute is not None]
        if len(known) != len(_TIME_FIELDS):
            return None
        problems = day_hours_problems(*known)
        for problem in problems:
            self.fail(line, f"{where}: {problem}")
        return None if problems else DayHours(*known)

    def previous_day(self, node: CommentedMap, where: str, minute: int) -> int | None:
        flag = node.get("previous_day", False)
        if not isinstance(flag, bool):
            self.fail(_line(node, "previous_day"), f"{where}: previous_day must be true or false")
            return None
        return minute - MINUTES_PER_DAY if flag else minute

    def time(self, value: Any, node: CommentedMap, key: str, where: str) -> int | None:
        match = _TIME.fullmatch(value) if isinstance(value, str) else None
        minute = None
        if match:
            minute = int(match["hour"]) * 60 + int(match["minute"])
        if minute is None or minute > MINUTES_PER_DAY:
            line = _line(node[key], "value") if isinstance(node.get(key), CommentedMap) else None
            self.fail(
                line or _line(node, key),
                f'{where}: {key}: {value!r} is not a time "HH:MM" from "00:00" to "24:00"',
            )
            return None
        return minute

    def weekday_hours(
        self, entry: CommentedMap, where: str, hours: DayHours | None, facts: dict[str, Fact]
    ) -> dict[int, DayHours]:
        node = entry.get("weekday_hours", CommentedMap())
        if not isinstance(node, CommentedMap):
            self.fail(_line(entry, "weekday_hours"), f"{where}: weekday_hours must be a mapping")
            return {}
        found = {}
        for name, override in node.items():
            if name not in WEEKDAYS or not isinstance(override, CommentedMap):
                self.fail(
                    _line(node, name),
                    f"{where}: weekday_hours: {name!r} must be a weekday"
                    f" ({', '.join(WEEKDAYS)}) mapping to times",
                )
                continue
            label = f"{where}: weekday_hours.{name}"
            provenance = self.provenance(override, label, frozenset(_TIME_FIELDS))
            if provenance is None or hours is None:
                continue
            facts[f"weekday_hours.{name}"] = provenance
            minutes: list[int | None] = [
                self.time(override[key], override, key, label) if key in override else base
                for key, base in zip(_TIME_FIELDS, _minutes(hours), strict=True)
            ]
            day = self.day_hours(minutes, _line(node, name), label)
            if day is not None:
                found[WEEKDAYS.index(name)] = day
        return found

    def weekend(
        self, entry: CommentedMap, where: str, facts: dict[str, Fact]
    ) -> frozenset[int] | None:
        value = self.fact(entry, "weekend", where, facts)
        if not isinstance(value, list) or not all(day in WEEKDAYS for day in value):
            if "weekend" in facts:
                self.fail(
                    _line(entry, "weekend"),
                    f"{where}: weekend must be a list of weekdays"
                    f" ({', '.join(WEEKDAYS)}), not {value!r}",
                )
            return None
        if len(value) >= len(WEEKDAYS) or len(set(value)) != len(value):
            self.fail(_line(entry, "weekend"), f"{where}: weekend lists a day twice, or all days")
            return None
        return frozenset(WEEKDAYS.index(day) for day in value)

    def holidays(
        self, entry: CommentedMap, where: str, years: range, facts: dict[str, Fact]
    ) -> HolidayTable | None:
        country = self.fact(entry, "holidays", where, facts)
        if "holidays" not in facts:
            return None
        if country is None:  # The system runs on public holidays too (e.g. India's RTGS).
            return HolidayTable(years, {}, frozenset())
        if country != entry.get("country"):
            self.fail(
                _line(entry, "holidays"),
                f"{where}: holidays must be those of its country"
                f" {entry.get('country')!r} (or null), not {country!r}",
            )
            return None
        try:
            return holiday_table(str(country), years)
        except ValueError as error:
            self.fail(_line(entry, "holidays"), f"{where}: holidays: {error}")
            return None


def _minutes(hours: DayHours) -> tuple[int, int, int, int]:
    return (
        hours.opening_minute,
        hours.customer_cutoff_minute,
        hours.interbank_cutoff_minute,
        hours.end_of_day_minute,
    )


@dataclass(frozen=True, slots=True)
class HolidayTable:
    """A country's public holidays (date -> English name) and its weekend days made working
    days, for ``years``: the years asked for that the ``holidays`` package covers."""

    years: range
    names: dict[dt.date, str]
    workdays: frozenset[dt.date]


def holiday_table(country: str, years: range) -> HolidayTable:
    """The holidays of ``country`` in ``years`` from the ``holidays`` package, cut to the years
    the package covers for that country. Raises ``ValueError`` if it does not know the country
    or covers none of ``years``."""
    with warnings.catch_warnings():
        # The package warns (rather than fails) for years it has no data for: refuse them.
        warnings.simplefilter("error")
        try:
            entity = type(holidays_package.country_holidays(country))
            # Outside its range the package answers with no holidays at all, which would make
            # every weekday a business day: those years are left out of the calendar instead.
            covered = range(
                max(years.start, entity.start_year), min(years.stop, entity.end_year + 1)
            )
            if not covered:
                raise ValueError(
                    f"{country}: the holidays package covers only"
                    f" {entity.start_year}-{entity.end_year}"
                )
            table = holidays_package.country_holidays(
                country, years=covered, language="en_US", categories=("public",)
            )
            names = {day: str(name) for day, name in sorted(table.items()) if day.year in covered}
        except NotImplementedError:
            raise ValueError(f"the holidays package has no country {country!r}") from None
        except Warning as warning:
            raise ValueError(f"{country}: {warning}") from None
    workdays = frozenset(day for day in table.weekend_workdays if day.year in covered)
    return HolidayTable(covered, names, workdays)
