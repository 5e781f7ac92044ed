"""End-of-day processing in the server (``--operating-day``): each currency's business day is
closed once, after its end of day (``payments/end_of_day.py`` says when):

1. Queued payments: already rejected (TM01) at their pair's interbank cut-off by the engine's
   operating day (``payments/operating_day.py``); nothing is carried into the next day.
2. Swap lines: every outstanding tranche lent in this currency that matures on or before the
   day is repaid with its interest (the swap unwinds at maturity, ``SwapLineDesk.repay``). A
   repayment the ledger refuses (the facility lacks the principal) is reported, not forced.
3. Statements: each account in the currency with entries or a balance gets its camt.053 of the
   business day (after the previous business day's end of day up to this one), written to
   ``<statements_dir>/<day>/<currency>/<account key>.xml`` when a directory is configured.
4. The closing is recorded (``api_end_of_day``: currency, day, report) in the same database, so
   a restart neither repeats nor skips a day; ``GET /v1/end-of-day`` lists them.

Runs on the writer thread (its ticks), like every write.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sco_settle.domain.account_key import AccountKeyKind
from sco_settle.domain.calendar import BusinessCalendar, Calendars
from sco_settle.gateway.statements import read_statement, statement_camt_053
from sco_settle.payments.end_of_day import business_day_bounds, days_due
from sco_settle.payments.engine import PaymentEngine
from sco_settle.payments.swap_lines import DrawRefused, SwapLineDesk, TrancheState
from sco_settle.server.db import StateDb

logger = logging.getLogger("sco_settle.server")

_TABLE = (
    "CREATE TABLE IF NOT EXISTS api_end_of_day (currency TEXT NOT NULL, business_day TEXT NOT"
    " NULL, closed_at BIGINT NOT NULL, report TEXT NOT NULL, PRIMARY KEY (currency, business_day))"
)
_STATEMENT_KINDS = frozenset(
    {AccountKeyKind.SETTLEMENT, AccountKeyKind.VOSTRO, AccountKeyKind.SWAP_LINE}
)


@dataclass
class DayClosed:
    """What closing one currency's business day did."""

    currency: str
    business_day: dt.date
    tranches_repaid: list[str] = field(default_factory=list)
    repayments_refused: list[dict[str, str]] = field(default_factory=list)
    statements: int = 0
    closing_balance_minor: dict[str, int] = field(default_factory=dict)  # per account kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "business_day": self.business_day.isoformat(),
            "tranches_repaid": self.tranches_repaid,
            "repayments_refused": self.repayments_refused,
            "statements": self.statements,
            "closing_balance_minor": dict(sorted(self.closing_balance_minor.items())),
        }


class EndOfDay:
    def __init__(
        self,
        engine: PaymentEngine,
        calendars: Calendars,
        state_db: StateDb,
        statements_dir: Path | None = None,
    ) -> None:
        self.engine, self.state_db, self.statements_dir = engine, state_db, statements_dir
        currencies = set(engine.view.network.settlement_agents)
        self.calendars = {
            code: calendar
            for code, calendar in sorted(calendars.by_currency.items())
            if code in currencies
        }
        with state_db.transaction(durable=True) as execute:
            execute(_TABLE)

    def run_due(self, now: dt.datetime) -> list[DayClosed]:
        """Close every business day whose end of day has passed, oldest first per currency."""
        closed = []
        for code, calendar in self.calendars.items():
            for day in days_due(calendar, self._last_closed(code), now):
                closed.append(self.close(code, calendar, day))
        return closed

    def close(self, code: str, calendar: BusinessCalendar, day: dt.date) -> DayClosed:
        report = DayClosed(code, day)
        self._unwind_tranches(report)
        self._statements(report, business_day_bounds(calendar, day))
        with self.state_db.transaction(durable=True) as execute:
            execute(
                "INSERT INTO api_end_of_day (currency, business_day, closed_at, report)"
                " VALUES (?, ?, ?, ?)",
                (code, day.isoformat(), self.engine.clock(), json.dumps(report.as_dict())),
            )
        logger.info(
            "business day closed: %s %s",
            code,
            day,
            extra={"event": "end_of_day"} | report.as_dict(),
        )
        return report

    def _last_closed(self, code: str) -> dt.date | None:
        rows = self.state_db.execute(
            "SELECT max(business_day) FROM api_end_of_day WHERE currency = ?", (code,)
        )
        return dt.date.fromisoformat(rows[0][0]) if rows and rows[0][0] else None

    def _unwind_tranches(self, report: DayClosed) -> None:
        desk = SwapLineDesk(self.engine.ledger, self.engine.view)
        for side in desk.sides():
            if side.provider_currency != report.currency:
                continue
            for tranche in desk.state(side, report.business_day).tranches:
                terms = tranche.terms
                if tranche.state is not TrancheState.OUTSTANDING:
                    continue
                if terms.maturity > report.business_day:
                    continue
                try:
                    desk.repay(side.drawer, side.provider, terms.tranche_id, terms.maturity)
                except DrawRefused as refused:
                    report.repayments_refused.append(
                        {"tranche": terms.tranche_id, "reason": refused.code}
                    )
                    continue
                report.tranches_repaid.append(terms.tranche_id)

    def _statements(self, report: DayClosed, bounds: tuple[int, int]) -> None:
        ledger, day = self.engine.ledger, report.business_day
        now = dt.datetime.fromtimestamp(self.engine.clock() // 10**9, dt.UTC)
        for key, account in sorted(self.engine.view.accounts.items(), key=lambda i: str(i[0])):
            if account.currency != report.currency or key.kind not in _STATEMENT_KINDS:
                continue
            first = read_statement(ledger, account, day, bounds=bounds)
            kind = key.kind.value
            report.closing_balance_minor[kind] = (
                report.closing_balance_minor.get(kind, 0) + first.closing_balance_minor
            )
            if first.entries_count == 0 and first.closing_balance_minor == 0:
                continue
            report.statements += 1
            if self.statements_dir is None:
                continue
            folder = self.statements_dir / day.isoformat() / report.currency
            folder.mkdir(parents=True, exist_ok=True)
            for page in range(1, first.pages + 1):
                statement = (
                    first
                    if page == 1
                    else read_statement(ledger, account, day, page=page, bounds=bounds)
                )
                suffix = f".p{page}" if first.pages > 1 else ""
                name = f"{str(key).replace(':', '_')}{suffix}.xml"
                (folder / name).write_bytes(statement_camt_053(statement, now=now))


def closed_days(state_db: StateDb, currency: str | None = None) -> list[dict[str, Any]]:
    """The business days closed so far, newest first (a currency's, or all)."""
    where, params = (" WHERE currency = ?", (currency,)) if currency else ("", ())
    rows = state_db.execute(
        f"SELECT report FROM api_end_of_day{where} ORDER BY business_day DESC, currency", params
    )
    return [json.loads(row[0]) for row in rows]
