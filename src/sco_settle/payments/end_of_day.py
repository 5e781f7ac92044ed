"""End of a currency's business day: when it falls and which business days are due to close.

Each currency's settlement system ends its business day at the calendar's end-of-day minute, in
its own time zone (``domain/calendar.py``: opening, customer and interbank cut-offs, end of day).
A deployment closes each business day once, after its end of day (``server.end_of_day``):
queued payments were already rejected at the interbank cut-off (``payments.operating_day``),
maturing swap-line tranches are repaid, and every account's statement of the business day is
produced. A business day's statement covers the ledger timestamps after the previous business
day's end of day up to its own, so a currency's statements follow each other without gap or
overlap.

Pure: the clock is an argument.
"""

from __future__ import annotations

import datetime as dt

from sco_settle.domain.calendar import BusinessCalendar, hours_on, is_business_day, local_instant

LOOKBACK_DAYS_MAX = 31  # the longest run of non-business days is about ten (see domain.calendar)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def end_of_day(calendar: BusinessCalendar, day: dt.date) -> dt.datetime:
    """The UTC instant at which business day ``day`` ends."""
    return local_instant(calendar, day, hours_on(calendar, day).end_of_day_minute)


def previous_business_day(calendar: BusinessCalendar, day: dt.date) -> dt.date:
    for back in range(1, LOOKBACK_DAYS_MAX + 1):
        earlier = day - dt.timedelta(days=back)
        if is_business_day(calendar, earlier):
            return earlier
    raise ValueError(f"{calendar.currency}: no business day in the month before {day}")


def _ns(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def business_day_bounds(calendar: BusinessCalendar, day: dt.date) -> tuple[int, int]:
    """The first and last ledger timestamp (ns, UTC) of business day ``day``'s statement: after
    the previous business day's end of day, up to (before) its own."""
    start = _ns(end_of_day(calendar, previous_business_day(calendar, day)))
    return start, _ns(end_of_day(calendar, day)) - 1


def days_due(
    calendar: BusinessCalendar, last_closed: dt.date | None, now: dt.datetime
) -> list[dt.date]:
    """The business days whose end of day has passed at ``now`` and which were not closed yet,
    oldest first: those after ``last_closed``; with none closed so far, only the latest (a
    deployment starts closing days from when it starts, it does not close the past)."""
    due: list[dt.date] = []
    day = now.astimezone(calendar.zone).date() + dt.timedelta(days=1)
    for _ in range(LOOKBACK_DAYS_MAX):
        if last_closed is not None and day <= last_closed:
            break
        if is_business_day(calendar, day) and end_of_day(calendar, day) <= now:
            due.append(day)
            if last_closed is None:
                break
        day -= dt.timedelta(days=1)
    return sorted(due)
