"""What each dashboard view shows, read the way the API reads it, for the caller's eyes only.

Every function here is blocking (database reads): the routes run them in the thread pool. They
read through the same doors as the API, with the API's own visibility rules:

- payments and corridor totals through ``LedgerService.payment_reader`` (the ``PaymentQueries``
  port), filtered by ``routes.payments.visibility(caller)``; one payment by
  ``Principal.may_read_payment``, and a payment the caller may not see is reported exactly like
  one that does not exist;
- accounts and balances from ``LedgerService.published`` (committed, durable), filtered by
  ``Principal.may_read_account``, as ``routes.accounts`` does;
- netting cycles from the state database, for the roles and currencies ``routes.cycles`` allows.

Nothing here writes. Scans that aggregate many payments (queued value, rejections) are bounded
by ``SCAN_ROWS_MAX`` and say so when they stop there.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lxml import etree

from sco_settle.domain.account import Account, AccountKind
from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.balances import Balances
from sco_settle.domain.money import UnknownCurrencyError, format_minor_amount
from sco_settle.domain.participants import ScoStatus
from sco_settle.domain.transfer import TransferFlags
from sco_settle.network.model import FxProviderEntry
from sco_settle.payments.fx_quotes import CODE_QUOTE_HOLD
from sco_settle.payments.liquidity_use import SettledFlow, everyone, liquidity_by_currency
from sco_settle.payments.model import PaymentStatus
from sco_settle.payments.modes import Mode
from sco_settle.payments.records import PaymentFilter
from sco_settle.server.auth import Principal
from sco_settle.server.dashboard import map_svg
from sco_settle.server.dashboard.messages import (
    PaymentMessage,
    notification,
    payment_messages,
    return_message,
)
from sco_settle.server.keys import Role
from sco_settle.server.routes.accounts import account_json
from sco_settle.server.routes.common import AppContext
from sco_settle.server.routes.cycles import _visible as cycle_visible
from sco_settle.server.routes.payments import visibility
from sco_settle.server.service import cycle_json

PAGE_SIZE = 50  # payments per page
SCAN_ROWS_MAX = 20_000  # payments one aggregate reads at most
SCAN_PAGE_ROWS = 1000
CYCLES_SHOWN_MAX = 100
DAY_NS = 86_400 * 10**9
CYCLE_ROLES = (Role.NETWORK_OPERATOR, Role.CURRENCY_OPERATOR, Role.AUDITOR)
_NOT_BOOKED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)
_RETURNED_BY = re.compile(r" returned by (\S+)$")
_CYCLE_COLUMNS = "cycle_id, kind, currencies, requested_by, started_at, finished_at, report"


# -- formatting ------------------------------------------------------------------------------


def major(minor: int, currency: str) -> str:
    """Minor units as major units, plain ("1234.56"), for charts and machine-readable cells."""
    try:
        return format_minor_amount(minor, currency)
    except UnknownCurrencyError:
        return str(minor)


def money(minor: int, currency: str) -> str:
    """Minor units as major units for people: "1,234.56 CNY"."""
    return f"{Decimal(major(minor, currency)):,} {currency}"


def moment(ns: int) -> str:
    """A ledger time (ns since the epoch) as UTC, to the second; "" for none."""
    if not ns:
        return ""
    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
    return at.strftime("%Y-%m-%d %H:%M:%S")


def corridor_of(debtor_agent: str, creditor_agent: str) -> str:
    """The corridor as the corridor report names it: the two agents' countries (from BICs)."""
    return f"{debtor_agent[4:6]}-{creditor_agent[4:6]}"


def percent(part: int, whole: int) -> str:
    return f"{Decimal(100 * part) / Decimal(whole):.1f} %" if whole else "–"


# -- corridors -------------------------------------------------------------------------------


def corridors(
    ctx: AppContext, caller: Principal, received_min: int, received_max: int
) -> dict[str, Any]:
    """The corridor report (``PaymentQueries.corridors``) over the caller's payments."""
    rows = ctx.service.payment_reader.corridors(
        visibility(caller), received_min=received_min, received_max=received_max
    )
    shown = [
        {
            **row,
            "settled_share": percent(row["settled_count"], row["payments"]),
            "settled_value": money(row["settled_value_minor"], row["currency"]),
            "delivered_value": money(row["delivered_value_minor"], row["creditor_currency"]),
        }
        for row in rows
    ]
    traces: dict[str, dict[str, Any]] = {}
    for row in rows:
        trace = traces.setdefault(
            row["currency"], {"type": "bar", "name": row["currency"], "x": [], "y": []}
        )
        trace["x"].append(row["corridor"])
        trace["y"].append(major(row["settled_value_minor"], row["currency"]))
    chart = _figure(
        list(traces.values()),
        "Settled value by corridor",
        x_title="corridor (debtor country - creditor country)",
        y_title="settled value",
    )
    return {"rows": shown, "chart": chart if rows else None}


# -- map -------------------------------------------------------------------------------------


def corridor_map(
    ctx: AppContext,
    caller: Principal,
    received_min: int,
    received_max: int,
    *,
    selected: str,
    period_query: str,
) -> dict[str, Any]:
    """The map of SCO states with the caller's corridor flows (the corridor report, by payer
    currency), the selected corridor marked, and the states' statuses as a table."""
    report = corridors(ctx, caller, received_min, received_max)

    def link(corridor: str) -> str:
        return f"/dashboard/map?{period_query}corridor={corridor}#map-selected"

    flows: dict[tuple[str, str], dict[str, Any]] = {}
    for row in report["rows"]:  # Rows are per currency pair; a flow is per payer currency.
        flow = flows.setdefault(
            (row["corridor"], row["currency"]),
            {**row, "payments": 0, "settled_count": 0, "settled_value_minor": 0},
        )
        for name in ("payments", "settled_count", "settled_value_minor"):
            flow[name] += row[name]  # One corridor, one payer currency: one currency's sum.
    names = {entry.code: entry.name for entry in ctx.network.countries}
    drawn = [
        map_svg.Flow(
            flow["debtor_country"],
            flow["creditor_country"],
            code,
            flow["settled_value_minor"],
            _flow_label(flow, names),
            link(corridor),
            selected == corridor,
        )
        for (corridor, code), flow in sorted(flows.items())
    ]
    statuses = {entry.code: entry.sco_status for entry in ctx.network.countries}
    geometry = map_svg.load_geometry()
    title = "Map of SCO states with the settled value of each corridor you may see"
    rows = [
        {**row, "selected": row["corridor"] == selected, "href": link(row["corridor"])}
        for row in report["rows"]
    ]
    return {
        "svg": map_svg.render(geometry, statuses, drawn, title=title),
        "rows": rows,
        "colours": sorted(map_svg.currency_colours(drawn).items()),
        "selected": selected,
        "selected_rows": [row for row in rows if row["selected"]],
        "states": _states(ctx),
        "geometry_source": geometry.source,
    }


def _flow_label(flow: dict[str, Any], names: dict[str, str]) -> str:
    debtor, creditor = flow["debtor_country"], flow["creditor_country"]
    return (
        f"{names.get(debtor, debtor)} to {names.get(creditor, creditor)}, paid in"
        f" {flow['currency']}: {flow['payments']} payments, {flow['settled_count']} settled"
        f" ({percent(flow['settled_count'], flow['payments'])}), settled value"
        f" {money(flow['settled_value_minor'], flow['currency'])}"
    )


def _states(ctx: AppContext) -> list[dict[str, Any]]:
    """The SCO states of the network's reference data, members first, each with its sources."""
    shown = []
    for entry in ctx.network.countries:
        if entry.sco_status is ScoStatus.NONE:
            continue
        previous = ", ".join(
            f"{period.status.value.replace('_', ' ')} since {period.since or '?'}"
            + (" (uncertain)" if period.uncertain else "")
            for period in entry.previous_statuses
        )
        shown.append(
            {
                "code": entry.code,
                "name": entry.name,
                "status": map_svg.status_class(entry.sco_status),
                "since": str(entry.sco_status_since or ""),
                "previous": previous,
                "uncertain": entry.uncertain,
                "sources": ", ".join(entry.sources),
            }
        )
    shown.sort(key=lambda state: (state["status"] != "member", state["name"]))
    return shown


# -- liquidity -------------------------------------------------------------------------------


def liquidity(ctx: AppContext, caller: Principal) -> dict[str, Any]:
    """Per currency: the visible settlement accounts' balances, and the visible queued value."""
    published = ctx.service.published
    ids = (
        published.by_participant.get(caller.participant, ())
        if caller.role is Role.PARTICIPANT
        else published.sorted_ids
    )
    accounts = []
    totals: dict[str, dict[str, Any]] = {}
    for account_id in ids:
        account = published.accounts[account_id]
        if account.kind != AccountKind.SETTLEMENT.value or not caller.may_read_account(account):
            continue
        shown = account_json(account, published.balances[account_id])
        accounts.append(shown)
        total = totals.setdefault(account.currency, _liquidity_row(account.currency))
        total["accounts"] += 1
        total["posted_minor"] += shown["balance_posted_minor"]
        total["available_minor"] += shown["available_minor"]
    queued, truncated = scan(ctx, visibility(caller), PaymentStatus.QUEUED)
    for payment in queued:
        instruction = payment["instruction"]
        total = totals.setdefault(instruction["currency"], _liquidity_row(instruction["currency"]))
        total["queued_count"] += 1
        total["queued_minor"] += instruction["amount_minor"]
    rows = [
        {
            **row,
            "posted": money(row["posted_minor"], code),
            "available": money(row["available_minor"], code),
            "queued": money(row["queued_minor"], code),
        }
        for code, row in sorted(totals.items())
    ]
    accounts.sort(key=lambda shown: (shown["currency"], shown["participant"]))
    for shown in accounts:
        shown["posted"] = money(shown["balance_posted_minor"], shown["currency"])
        shown["available"] = money(shown["available_minor"], shown["currency"])
    positions, holds_truncated = fx_positions(ctx, caller)
    return {
        "rows": rows,
        "accounts": accounts,
        "truncated": truncated,
        "fx_positions": [position.shown() for position in positions],
        "holds_truncated": holds_truncated,
        **_lines_and_income(published, ids, caller),
        **savings(ctx, caller),
    }


# -- FX providers' positions -----------------------------------------------------------------

# What an FX provider deals from and keeps, by the ledger kind of its own accounts: its
# settlement account, its nostros (a vostro key's owner is the bank whose money it is), and
# what its conversions kept beyond mid.
_INCOME_KIND = AccountKind.FX_INCOME.value
_POSITION_KINDS = frozenset({AccountKind.SETTLEMENT.value, AccountKind.VOSTRO.value, _INCOME_KIND})


@dataclass(frozen=True, slots=True)
class FxPosition:
    """One FX provider's position in one currency, over the accounts the caller may see.

    ``balance_minor`` and ``available_minor`` sum its settlement account and nostros (posted,
    and posted less pending debits, as ``GET /v1/accounts`` gives them); ``held_minor`` is the
    part of their pending debits that holds liquidity for firm FX quotes (open pending
    transfers with code ``CODE_QUOTE_HOLD``); ``income_minor`` its FX income account's posted
    balance. Amounts in minor units of ``currency``.
    """

    provider: FxProviderEntry
    currency: str
    accounts: tuple[str, ...]  # refs of the dealing accounts
    balance_minor: int
    available_minor: int
    pending_minor: int
    held_minor: int
    income_minor: int

    def shown(self) -> dict[str, Any]:
        code = self.currency
        return {
            "provider": self.provider.bic,
            "role": self.provider.role.value.replace("_", " "),
            "uncertain": self.provider.uncertain,
            "note": self.provider.note or "",
            "sources": ", ".join(self.provider.sources),
            "currency": code,
            "accounts": self.accounts,
            "balance": money(self.balance_minor, code),
            "held": money(self.held_minor, code),
            "other_pending": money(self.pending_minor - self.held_minor, code),
            "available": money(self.available_minor, code),
            "income": money(self.income_minor, code),
        }


def fx_positions(ctx: AppContext, caller: Principal) -> tuple[list[FxPosition], bool]:
    """The network's FX providers' positions per currency that the caller may see (a
    participant its own, a central bank those in its currencies, operator and auditor all),
    and whether the scan of open holds stopped at ``SCAN_ROWS_MAX``."""
    published = ctx.service.published
    found: dict[tuple[str, str], _PositionSums] = {}
    for provider in ctx.network.fx_providers:
        for account_id in published.by_participant.get(provider.bic, ()):
            account = published.accounts[account_id]
            if account.kind in _POSITION_KINDS and caller.may_read_account(account):
                sums = found.setdefault((provider.bic, account.currency), _PositionSums(provider))
                sums.add(account, Balances.of_account(account, published.balances[account_id]))
    pending = {i for sums in found.values() for i in sums.ids if sums.pending_minor}
    held, truncated = quote_holds(ctx, pending)
    positions = [sums.position(code, held) for (_, code), sums in sorted(found.items())]
    return positions, truncated


@dataclass(slots=True)
class _PositionSums:
    """``FxPosition``'s sums while its accounts are read."""

    provider: FxProviderEntry
    accounts: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    balance_minor: int = 0
    available_minor: int = 0
    pending_minor: int = 0
    income_minor: int = 0

    def add(self, account: Account, balances: Balances) -> None:
        if account.kind == _INCOME_KIND:
            self.income_minor += balances.posted_minor
            return
        key = AccountKey.parse(account.ref)
        at = f" at {key.counterparty}" if key.counterparty else ""
        self.accounts.append(f"{'nostro' if key.counterparty else account.kind}{at}")
        self.ids.append(account.id)
        self.balance_minor += balances.posted_minor
        self.available_minor += balances.available_minor
        self.pending_minor += balances.debits_pending

    def position(self, currency: str, held: dict[int, int]) -> FxPosition:
        return FxPosition(
            self.provider,
            currency,
            tuple(self.accounts),
            self.balance_minor,
            self.available_minor,
            self.pending_minor,
            sum(held.get(account_id, 0) for account_id in self.ids),
            self.income_minor,
        )


def quote_holds(ctx: AppContext, account_ids: set[int]) -> tuple[dict[int, int], bool]:
    """Per account of ``account_ids``: the value its open firm-quote holds debit (pending
    transfers with ``CODE_QUOTE_HOLD`` not yet posted, voided or expired), read from the
    committed ledger; and whether the scan stopped at ``SCAN_ROWS_MAX`` open pending transfers.
    Nothing is read when no account has a pending debit."""
    held: dict[int, int] = {}
    if not account_ids:
        return held, False
    with ctx.service.read_stores.store() as store:
        for count, transfer in enumerate(store.load_open_pending()):
            if count == SCAN_ROWS_MAX:
                return held, True
            if transfer.code == CODE_QUOTE_HOLD and transfer.debit_account in account_ids:
                held[transfer.debit_account] = held.get(transfer.debit_account, 0) + transfer.amount
    return held, False


def savings(ctx: AppContext, caller: Principal) -> dict[str, Any]:
    """Per currency: liquidity needed gross against liquidity used, over the visible settled
    payments (``payments.liquidity_use``, the simulator's definition), counting the positions
    the caller may see: a participant its own, a central bank those in its currencies."""
    found: list[dict[str, Any]] = []
    truncated = False
    for status in (PaymentStatus.SETTLED, PaymentStatus.RETURNED):  # returned: settled first
        items, cut = scan(ctx, visibility(caller), status)
        found += items
        truncated = truncated or cut
    found.sort(key=lambda item: item["settled_at"])  # Settlement order; a chain stays together.
    mode = ctx.config.mode
    uses = liquidity_by_currency((_settled_flow(item) for item in found), _counted(caller))
    rows = [
        {
            "currency": code,
            "gross": money(use.gross_minor, code),
            "used": money(use.used_minor(mode), code),
            "saved": money(use.saved_minor(mode), code),
            "saved_share": percent(use.saved_minor(mode), use.gross_minor),
            "saved_percent": _share_number(use.saved_minor(mode), use.gross_minor),
        }
        for code, use in sorted(uses.items())
        if use.gross_minor or use.used_minor(mode)
    ]
    chart = _figure(
        [{"type": "bar", "name": "saved", "x": [row["currency"] for row in rows],
          "y": [row["saved_percent"] for row in rows]}],
        "Share of gross liquidity saved",
        x_title="currency",
        y_title="% of gross saved",
    )  # fmt: skip
    return {
        "savings": rows,
        "savings_truncated": truncated,
        "savings_chart": chart if rows else None,
        "used_means": "net debits per cycle" if mode is Mode.DNS else "peak intraday net debit",
    }


def _settled_flow(item: dict[str, Any]) -> SettledFlow:
    instruction = item["instruction"]
    paid = item["amount_sent_minor"]
    if not paid and instruction.get("amount_type", "send") == "send":
        paid = instruction["amount_minor"]  # Records from before amounts sent were kept.
    return SettledFlow(
        item["settled_at"] // DAY_NS,
        item["settled_at"],
        instruction["debtor_agent"],
        instruction["currency"],
        paid,
        instruction["creditor_agent"],
        instruction["creditor_currency"],
        item["amount_delivered_minor"],
    )


def _counted(caller: Principal) -> Callable[[str, str], bool]:
    if caller.role is Role.PARTICIPANT:
        return lambda participant, currency: participant == caller.participant
    if caller.role is Role.CURRENCY_OPERATOR:
        return lambda participant, currency: currency in caller.currencies
    return everyone


def _share_number(part: int, whole: int) -> str:
    """A percentage for a chart, to one decimal, exact (Decimal)."""
    return f"{Decimal(100 * part) / Decimal(whole):.1f}" if whole else "0"


def _lines_and_income(published: Any, ids: Iterable[int], caller: Principal) -> dict[str, Any]:
    """The visible swap-line sides (drawn of the agreed size: tranches outstanding) and FX
    income accounts (what each FX provider or central-bank facility kept beyond mid)."""
    lines, income = [], []
    for account_id in ids:
        account = published.accounts[account_id]
        if not caller.may_read_account(account):
            continue
        balances = Balances.of_account(account, published.balances[account_id])
        key = AccountKey.parse(account.ref)
        code = account.currency
        if account.kind == AccountKind.SWAP_LINE.value:
            drawn, size = balances.drawn_minor, balances.credit_limit
            lines.append(
                {
                    "drawer": key.owner,
                    "provider": key.counterparty,
                    "currency": code,
                    "size": money(size, code) if size else "unknown",
                    "drawn": money(drawn, code),
                    "share": percent(drawn, size) if size else "",
                }
            )
        elif account.kind == AccountKind.FX_INCOME.value and balances.posted_minor:
            income.append(
                {
                    "provider": key.owner,
                    "currency": code,
                    "income": money(balances.posted_minor, code),
                }
            )
    lines.sort(key=lambda row: (row["provider"], row["drawer"]))
    income.sort(key=lambda row: (row["provider"], row["currency"]))
    return {"swap_lines": lines, "fx_income": income}


def _liquidity_row(currency: str) -> dict[str, Any]:
    return {
        "currency": currency,
        "accounts": 0,
        "posted_minor": 0,
        "available_minor": 0,
        "queued_count": 0,
        "queued_minor": 0,
    }


# -- payments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentPage:
    items: list[dict[str, Any]]  # newest first
    older: int | None  # ``before`` cursor of the next older page
    newer: int | None  # ``after`` cursor of the next newer page


def payments(
    ctx: AppContext,
    caller: Principal,
    *,
    status: PaymentStatus | None,
    before: int | None,
    after: int | None,
) -> PaymentPage:
    """A page of the caller's payments, newest first: the newest page, the page just older than
    ``before``, or the page just newer than ``after`` (cursors are arrival seqs)."""
    visible = visibility(caller)

    def fetch(start: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        return ctx.service.payment_reader.page(
            visible, after=start, limit=limit, status=status.value if status else None
        )

    if after is not None:
        found = fetch(after, PAGE_SIZE + 1)
        chosen = found[:PAGE_SIZE]
        newer = chosen[-1][0] if len(found) > PAGE_SIZE else None
        older = chosen[0][0] if chosen else None
    else:
        start = newest_start(lambda a, n: [seq for seq, _ in fetch(a, n)], before, PAGE_SIZE)
        found = fetch(start, PAGE_SIZE + 1)
        chosen = [item for item in found if before is None or item[0] < before][:PAGE_SIZE]
        older = chosen[0][0] if chosen and start > 0 else None
        newer = chosen[-1][0] if chosen and before is not None else None
    return PaymentPage([_payment_row(item) for _, item in reversed(chosen)], older, newer)


def newest_start(seqs_after: Callable[[int, int], list[int]], before: int | None, size: int) -> int:
    """The ``after`` cursor from which at most ``size`` items come before ``before``: so that
    the items with ``after < seq < before`` are the newest page below ``before``.

    The records page only forwards (by ascending seq), so this searches for it: the number of
    items in ``(after, before)`` falls as ``after`` grows, and the smallest ``after`` where it
    is at most ``size`` is the answer (0 when everything fits). Each probe reads at most
    ``size + 1`` items; about twice the bits of the largest seq probes in all.
    """
    assert size >= 1

    def fits(start: int) -> bool:
        found = seqs_after(start, size + 1)
        return sum(1 for seq in found if before is None or seq < before) <= size

    if fits(0):
        return 0
    high = before if before is not None else 1
    while not fits(high):  # Only without ``before``: find a seq past the newest item.
        high *= 2
    low = 0  # not fits(low), fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return high


def _payment_row(item: dict[str, Any]) -> dict[str, Any]:
    instruction = item["instruction"]
    return {
        "payment_id": item["payment_id"],
        "status": item["status"],
        "reason": item["reason"],
        "reason_text": item["reason_text"],
        "received_at": moment(item["received_at"]),
        "debtor_agent": instruction["debtor_agent"],
        "creditor_agent": instruction["creditor_agent"],
        "amount": money(instruction["amount_minor"], instruction["currency"]),
        "currency": instruction["currency"],
        "creditor_currency": instruction["creditor_currency"],
    }


def payment(ctx: AppContext, caller: Principal, payment_id: str) -> dict[str, Any] | None:
    """One payment with its events, or None if it does not exist *or* the caller may not see
    it (the same answer, as in ``GET /v1/payments/{id}``)."""
    found = ctx.service.payment_reader.get(payment_id)
    if found is None:
        return None
    instruction = found["instruction"]
    if not _may_read(caller, instruction):
        return None
    currency, creditor_currency = instruction["currency"], instruction["creditor_currency"]
    receive = instruction.get("amount_type", "send") == "receive"
    fixed_currency = creditor_currency if receive else currency  # ``Payment.fixed_currency``
    messages, gaps = messages_of(ctx, caller, found)
    return {
        **found,
        "instructed": money(instruction["amount_minor"], fixed_currency),
        "sent": money(found["amount_sent_minor"], currency),
        "delivered": money(found["amount_delivered_minor"], creditor_currency),
        "returned": money(found["amount_returned_minor"], creditor_currency),
        "received": moment(found["received_at"]),
        "settled": moment(found["settled_at"]),
        "events": [{**event, "at": moment(event["at"])} for event in found["events"]],
        "messages": [
            {**vars_of(message), "xml_text": readable_xml(message.xml)} for message in messages
        ],
        "message_gaps": gaps,
        "returned_by": returned_by(found),
    }


def payment_message(
    ctx: AppContext, caller: Principal, payment_id: str, name: str
) -> PaymentMessage | None:
    """One ISO 20022 message of a payment the caller may see (None: no such message, or the
    payment is missing or not the caller's: one answer)."""
    found = ctx.service.payment_reader.get(payment_id)
    if found is None or not _may_read(caller, found["instruction"]):
        return None
    return next((m for m in messages_of(ctx, caller, found)[0] if m.name == name), None)


def messages_of(
    ctx: AppContext, caller: Principal, found: dict[str, Any]
) -> tuple[list[PaymentMessage], list[str]]:
    """The ISO 20022 messages of a payment the caller may see, and what could not be written
    for want of a fact the records do not keep (``messages.py``)."""
    instruction = found["instruction"]
    bic = network_bic(ctx, instruction["debtor_agent"])
    if not instruction.get("returns"):
        return payment_messages(found, bic), []
    original = ctx.service.payment_reader.get(instruction["returns"])
    if original is not None and not _may_read(caller, original["instruction"]):
        original = None  # Never shown through a return to whoever may not see it.
    pacs_004 = return_message(found, original, bic)
    items = [] if isinstance(pacs_004, str) else [pacs_004]
    gaps = [pacs_004] if isinstance(pacs_004, str) else []
    return items + return_notifications(ctx, caller, found), gaps


def return_notifications(
    ctx: AppContext, caller: Principal, found: dict[str, Any]
) -> list[PaymentMessage]:
    """The camt.054 of a settled return's chain: the first booked debit of the returning
    agent's accounts and the last booked credit of the original debtor agent's, each only if
    the caller may read that account."""
    ids = [int(transfer_id) for transfer_id in found["transfer_ids"]]
    if not ids or found["status"] not in (PaymentStatus.SETTLED, PaymentStatus.RETURNED):
        return []
    with ctx.service.read_stores.store() as store:
        transfers = store.get_transfers(ids)
    chain = sorted(transfers.values(), key=lambda transfer: transfer.timestamp)
    chain = [transfer for transfer in chain if not transfer.flags & _NOT_BOOKED]
    accounts = ctx.service.published.accounts
    instruction = found["instruction"]
    debits = [(accounts.get(t.debit_account), t) for t in chain]
    credits = [(accounts.get(t.credit_account), t) for t in reversed(chain)]
    chosen = [
        next(
            ((a, t) for a, t in debits if a and a.participant == instruction["debtor_agent"]), None
        ),
        next(
            ((a, t) for a, t in credits if a and a.participant == instruction["creditor_agent"]),
            None,
        ),
    ]
    return [
        notification(account, transfer, servicer_of(ctx, account))
        for account, transfer in (pair for pair in chosen if pair is not None)
        if caller.may_read_account(account)
    ]


def servicer_of(ctx: AppContext, account: Account) -> str | None:
    """The bank on whose books the account is kept: a vostro's servicer, else the central bank
    settling its currency."""
    key = AccountKey.parse(account.ref)
    return key.counterparty or ctx.network.settlement_agents.get(account.currency)


def returned_by(found: dict[str, Any]) -> list[str]:
    """The returns of a payment, as its events name them (``PaymentEngine._with_returns``:
    "<amount> <currency> returned by <return's payment id>")."""
    return [
        match.group(1)
        for event in found["events"]
        if (match := _RETURNED_BY.search(event["detail"] or "")) is not None
    ]


def network_bic(ctx: AppContext, debtor_agent: str) -> str:
    """The BIC SCO Settle answers ISO messages as (as ``routes.iso`` names it)."""
    return ctx.network.settlement_agents.get("CNY") or debtor_agent


def readable_xml(data: bytes) -> str:
    """The message indented for reading (our own writer's output, parsed without entities)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    return etree.tostring(etree.fromstring(data, parser), pretty_print=True).decode()


def vars_of(message: PaymentMessage) -> dict[str, Any]:
    return {
        "name": message.name,
        "direction": message.direction,
        "definition": message.definition,
        "sender": message.sender,
        "receiver": message.receiver,
        "summary": message.summary,
    }


def _may_read(caller: Principal, instruction: dict[str, Any]) -> bool:
    return caller.may_read_payment(
        instruction["debtor_agent"],
        instruction["creditor_agent"],
        instruction["currency"],
        instruction["creditor_currency"],
    )


def scan(
    ctx: AppContext, visible: PaymentFilter, status: PaymentStatus
) -> tuple[list[dict[str, Any]], bool]:
    """The visible payments in ``status``, oldest first, at most ``SCAN_ROWS_MAX``; and
    whether there were more."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        limit = min(SCAN_PAGE_ROWS, SCAN_ROWS_MAX - len(found))
        page = ctx.service.payment_reader.page(
            visible, after=after, limit=limit + 1, status=status.value
        )
        found.extend(item for _, item in page[:limit])
        if len(page) <= limit:
            return found, False
        if len(found) >= SCAN_ROWS_MAX:
            return found, True
        after = page[limit - 1][0]


# -- rejections ------------------------------------------------------------------------------


def rejections(ctx: AppContext, caller: Principal) -> dict[str, Any]:
    """The caller's rejected payments counted by ISO 20022 reason code and corridor."""
    rejected, truncated = scan(ctx, visibility(caller), PaymentStatus.REJECTED)
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for item in rejected:
        instruction = item["instruction"]
        reason = item["reason"] or "none"
        corridor = corridor_of(instruction["debtor_agent"], instruction["creditor_agent"])
        row = counts.setdefault(
            (reason, corridor),
            {"reason": reason, "text": item["reason_text"], "corridor": corridor, "count": 0},
        )
        row["count"] += 1
    rows = sorted(counts.values(), key=lambda r: (-r["count"], r["reason"], r["corridor"]))
    traces: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["corridor"], r["reason"])):
        trace = traces.setdefault(
            row["corridor"], {"type": "bar", "name": row["corridor"], "x": [], "y": []}
        )
        trace["x"].append(row["reason"])
        trace["y"].append(row["count"])
    chart = _figure(
        list(traces.values()),
        "Rejections by reason",
        x_title="ISO 20022 reason code",
        y_title="payments",
        barmode="stack",
    )
    return {
        "rows": rows,
        "total": len(rejected),
        "truncated": truncated,
        "chart": chart if rows else None,
    }


# -- netting cycles --------------------------------------------------------------------------


def cycles(ctx: AppContext, caller: Principal) -> dict[str, Any]:
    """The newest netting cycles the caller may see (``routes.cycles``' rule), gross and net."""
    caller.require(*CYCLE_ROLES)
    shown: list[dict[str, Any]] = []
    last: int | None = None
    while len(shown) < CYCLES_SHOWN_MAX:
        rows = ctx.state_db.execute(
            f"SELECT {_CYCLE_COLUMNS} FROM api_netting_cycles WHERE cycle_id < ?"
            " ORDER BY cycle_id DESC LIMIT ?",
            (2**62 if last is None else last, CYCLES_SHOWN_MAX),
        )
        for row in rows:
            cycle = cycle_json(row)
            last = cycle["cycle_id"]
            if cycle_visible(caller, cycle) and len(shown) < CYCLES_SHOWN_MAX:
                shown.append(cycle)
        if len(rows) < CYCLES_SHOWN_MAX:
            break
    gross: dict[str, int] = {}
    net: dict[str, int] = {}
    for cycle in shown:
        cycle["started"] = moment(cycle["started_at"])
        cycle["currencies_text"] = ", ".join(cycle["currencies"] or ["all"])
        cycle["legs"] = [
            {
                "currency": code,
                "gross": money(value, code),
                "net": money(cycle["net_minor"].get(code, 0), code),
                "saved": percent(value - cycle["net_minor"].get(code, 0), value),
            }
            for code, value in sorted(cycle["gross_minor"].items())
        ]
        for code, value in cycle["gross_minor"].items():
            gross[code] = gross.get(code, 0) + value
            net[code] = net.get(code, 0) + cycle["net_minor"].get(code, 0)
    codes = sorted(gross)
    chart = _figure(
        [
            {"type": "bar", "name": "gross", "x": codes, "y": [major(gross[c], c) for c in codes]},
            {"type": "bar", "name": "net", "x": codes, "y": [major(net[c], c) for c in codes]},
        ],
        "Gross against net",
        x_title="currency",
        y_title="value",
    )
    return {"cycles": shown, "chart": chart if codes else None}


# -- charts ----------------------------------------------------------------------------------


def _figure(
    traces: list[dict[str, Any]],
    title: str,
    *,
    x_title: str,
    y_title: str,
    barmode: str = "group",
) -> dict[str, Any]:
    """A plotly.js figure (rendered by the page's script from this JSON): plain, readable,
    colour-blind-safe colours (Okabe-Ito), no toolbar (it links outside the server)."""
    return {
        "data": traces,
        "layout": {
            "title": {"text": title},
            "barmode": barmode,
            "colorway": [
                "#0072B2",
                "#D55E00",
                "#009E73",
                "#CC79A7",
                "#E69F00",
                "#56B4E9",
                "#000000",
                "#F0E442",
            ],
            "font": {"size": 14, "color": "#1a1a1a"},
            "xaxis": {"title": {"text": x_title}, "type": "category"},
            "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
            "margin": {"l": 70, "r": 20, "t": 60, "b": 70},
            "legend": {"orientation": "h", "y": -0.25},
            "autosize": True,
        },
    }
