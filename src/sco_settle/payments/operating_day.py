"""The operating day: when a payment between two currencies may settle.

A payment settles only inside its pair's settlement window: the overlap, on one business day, of
both currencies' interbank sessions (opening to interbank cut-off, in each currency's time zone,
holidays excluded; ``domain/calendar.py``). The engine (``EngineSettings.calendars``) uses it so:
- a payment that arrives while its window is closed (after cut-off, at night, on a holiday of
  either currency) waits in the warehouse until the next window opens: it rolls to the next
  business day both currencies share;
- a payment still queued when its window closes is rejected at the cut-off (TM01, end-of-day
  processing), never carried into another day's window;
- a pair whose hours never overlap cannot settle at all (DT01, at once).

Pure: the clock is an argument (ns since the Unix epoch, UTC). Windows start and end on whole
minutes, so they are memoised per minute.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sco_settle.domain.calendar import CalendarRangeError, Calendars, next_window

NS_PER_MINUTE = 60 * 10**9
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ALWAYS = (0, 2**63 - 1)


class Window(NamedTuple):
    start_ns: int
    end_ns: int
    # "KZT/CNY of business day 2027-01-18 (2027-01-18 04:00 to 2027-01-18 09:15 UTC)", or ""
    # when always open
    label: str


class NoWindow(ValueError):
    """The pair's business hours never overlap (or the day is outside the calendars' years):
    no payment between them can settle then."""


def _ns(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


class OperatingDay:
    """Settlement windows per currency pair from the business calendars; a currency without a
    calendar is always open."""

    def __init__(self, calendars: Calendars) -> None:
        self.calendars = calendars
        self._memo: dict[tuple[str, str, int], Window] = {}

    def window(self, source: str, target: str, at_ns: int) -> Window:
        """The window open at ``at_ns``, or else the next one. ``NoWindow`` if there is none."""
        minute = at_ns // NS_PER_MINUTE
        key = (source, target, minute)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._compute(source, target, minute)
            if len(self._memo) > 100_000:
                self._memo.clear()
        return found

    def _compute(self, source: str, target: str, minute: int) -> Window:
        known = self.calendars.by_currency
        if source not in known or target not in known:
            return Window(*ALWAYS, "")
        first, second = known[source], known[target]
        moment = _EPOCH + dt.timedelta(minutes=minute)
        try:
            found = next_window(first, second, moment)
        except CalendarRangeError as error:
            raise NoWindow(f"no business calendar for that day: {error}") from None
        if found is None or found.window is None:
            raise NoWindow(f"{source} and {target} business hours never overlap")
        start, end = found.window.start, found.window.end
        label = (
            f"{source}/{target} of business day {found.day.isoformat()}"
            f" ({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)"
        )
        return Window(_ns(start), _ns(end), label)
