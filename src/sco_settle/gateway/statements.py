"""Account statements: one builder of the statement of an account for one UTC day, two renderings
(camt.053 XML and the API's JSON).

``build_statement`` is pure: the account, the day and the account's transfers up to the end of
the day in, a ``Statement`` out. ``read_statement`` feeds it from anything that pages an
account's transfers (a ``Ledger``, a read-only store). The API (``GET
/v1/accounts/{id}/statement``) and the CLI (``sco-settle iso statement``) both go through them.

Invariants:
- Only booked movements count: posted transfers and posted pending transfers. A reservation
  (``pending``) and its release (``void_pending``) are not bookings.
- An entry is a credit when the account is the transfer's credit account, else a debit (so a
  zero-amount transfer keeps its side).
- The day's closing balance is its opening balance plus its credits minus its debits; every page
  keeps the same rule for its own balances: a page opens where the previous one closed.
- At most ``entries_max`` entries per page, and every rendering says which page it is and whether
  it is the last: a statement is never cut short without saying so.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sco_settle.domain.account import Account
from sco_settle.domain.ids import is_engine_id
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.messaging.iso20022 import (
    BankTransactionCode,
    Entry,
    build_account_statement,
    build_debit_credit_notification,
    write_cash_report,
)
from sco_settle.payments.plan import (
    CODE_FX,
    CODE_LSM,
    CODE_NETTING,
    CODE_PAYMENT,
    CODE_RETURN,
    CODE_SWAP_DRAW,
)
from sco_settle.payments.swap_lines import CODE_TRANCHE_DRAW, CODE_TRANCHE_REPAY

ENTRIES_PER_PAGE_MAX = 50_000  # The API's default (``ServerConfig.statement_entries_max``).
NS_PER_DAY = 86_400 * 10**9
INT64_MAX = 2**63 - 1
_EPOCH = dt.date(1970, 1, 1)
_NOT_BOOKED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)
_READ_PAGE = 10_000  # Transfers read from the store at a time.
_ISSUER = "SCOS"  # Issuer of the proprietary bank transaction codes (``BkTxCd/Prtry/Issr``).


class EntryKind(enum.StrEnum):
    """What moved the money, from the transfer's code (payment engine transfers only)."""

    PAYMENT = "payment"  # a leg of a payment's chain
    SWAP_DRAW = "swap_draw"  # a swap-line draw booked for a payment
    LSM = "lsm"  # a payment settled by the liquidity-saving mechanism (a cycle of the queue)
    NETTING = "netting"  # a net position settled by a deferred-net-settlement cycle
    RETURN = "return"  # a leg of a payment's return
    FX = "fx"  # a conversion inside a payment: the provider's income, or a central bank's issue
    TRANCHE = "swap_tranche"  # a swap-line tranche drawn, repaid or rolled over
    TRANSFER = "transfer"  # a transfer a client wrote itself (not the payment engine's)


_KIND_OF_CODE = {
    CODE_PAYMENT: EntryKind.PAYMENT,
    CODE_SWAP_DRAW: EntryKind.SWAP_DRAW,
    CODE_LSM: EntryKind.LSM,
    CODE_NETTING: EntryKind.NETTING,
    CODE_RETURN: EntryKind.RETURN,
    CODE_FX: EntryKind.FX,
    CODE_TRANCHE_DRAW: EntryKind.TRANCHE,
    CODE_TRANCHE_REPAY: EntryKind.TRANCHE,
}
# The engine writes the settled payment's reference as the ``ref`` of these legs: the
# instruction's end-to-end id (or the payment id) on a route's legs, the payment id on an LSM
# settlement. A return's legs carry ``return <reason>``; a netting cycle's carry nothing.
_PAYMENT_REFERENCED = frozenset(
    {EntryKind.PAYMENT, EntryKind.SWAP_DRAW, EntryKind.LSM, EntryKind.FX}
)


class DayOutOfRange(ValueError):
    """A day whose timestamps do not fit the ledger's 64-bit signed nanoseconds."""


class PageOutOfRange(ValueError):
    """A page after the statement's last page."""


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One booked movement of the account."""

    transfer_id: int
    amount_minor: int  # never negative; ``credit`` gives the direction
    credit: bool
    booked_at: int  # ledger timestamp, ns since the Unix epoch (UTC)
    counterparty_account: int
    code: int
    ref: str
    kind: EntryKind
    payment_ref: str | None  # the settled payment's reference, where the transfer carries it

    @property
    def credit_debit(self) -> str:
        return "CRDT" if self.credit else "DBIT"

    @property
    def signed_minor(self) -> int:
        return self.amount_minor if self.credit else -self.amount_minor


@dataclass(frozen=True, slots=True)
class Statement:
    """One page of the statement of ``account`` for ``day``.

    ``opening_balance_minor`` / ``closing_balance_minor``: the day's booked balances (signed,
    credit positive). ``page_opening_balance_minor`` / ``page_closing_balance_minor``: the
    balances before the page's first entry and after its last; equal to the day's on a single
    page. ``entries_count``: the day's entries on all pages.
    """

    account: Account
    day: dt.date
    opening_balance_minor: int
    closing_balance_minor: int
    page: int
    pages: int
    entries_max: int
    entries_count: int
    page_opening_balance_minor: int
    page_closing_balance_minor: int
    entries: tuple[StatementEntry, ...]

    @property
    def last_page(self) -> bool:
        return self.page == self.pages


class TransferSource(Protocol):
    """What a statement reads: an account's transfers by timestamp (``Ledger``, ``Store``)."""

    def get_account_transfers(
        self, account_id: int, *, timestamp_min: int, timestamp_max: int, limit: int
    ) -> Sequence[Transfer]: ...


def day_bounds(day: dt.date) -> tuple[int, int]:
    """The first and last ledger timestamp (ns since the epoch, UTC) of ``day``.

    Timestamps are 64-bit signed in every store, so only days from 1677-09-22 to 2262-04-10
    fit whole; any other raises ``DayOutOfRange``.
    """
    start = (day - _EPOCH).days * NS_PER_DAY
    end = start + NS_PER_DAY - 1
    if start < -(2**63) or end > INT64_MAX:
        raise DayOutOfRange(
            f"date {day.isoformat()} is outside the ledger's timestamps (1677-09-22 .. 2262-04-10)"
        )
    return start, end


def entry_of(account_id: int, transfer: Transfer) -> StatementEntry:
    """The statement entry of a booked ``transfer`` on ``account_id``."""
    credit = transfer.credit_account == account_id
    assert credit or transfer.debit_account == account_id, (account_id, transfer.id)
    kind = _KIND_OF_CODE.get(transfer.code) if is_engine_id(transfer.id) else None
    kind = kind or EntryKind.TRANSFER
    return StatementEntry(
        transfer_id=transfer.id,
        amount_minor=transfer.amount,
        credit=credit,
        booked_at=transfer.timestamp,
        counterparty_account=transfer.debit_account if credit else transfer.credit_account,
        code=transfer.code,
        ref=transfer.ref,
        kind=kind,
        payment_ref=(transfer.ref or None) if kind in _PAYMENT_REFERENCED else None,
    )


def build_statement(
    account: Account,
    day: dt.date,
    transfers: Iterable[Transfer],
    *,
    page: int = 1,
    entries_max: int = ENTRIES_PER_PAGE_MAX,
    bounds: tuple[int, int] | None = None,
) -> Statement:
    """Page ``page`` (from 1) of the statement of ``account`` for ``day``.

    ``transfers``: the account's transfers up to the end of the day, oldest first (earlier
    ones make the opening balance). Raises ``PageOutOfRange`` for a page after the last (a day
    without entries has one empty page) and ``DayOutOfRange`` for a day the ledger cannot hold.
    ``bounds``: the first and last ledger timestamp the statement covers, when ``day`` is a
    business day rather than a UTC day (an end-of-day statement, ``server.end_of_day``).
    """
    if page < 1 or entries_max < 1:
        raise ValueError(f"page {page} and entries_max {entries_max} must be at least 1")
    start, end = bounds if bounds is not None else day_bounds(day)
    first, after = (page - 1) * entries_max, page * entries_max
    opening = moved = count = 0  # ``moved``: the day's entries so far, signed
    moved_before_page = moved_after_page = 0
    chosen: list[StatementEntry] = []
    previous = -(2**63)
    for transfer in transfers:
        assert previous < transfer.timestamp <= end, (transfer.id, transfer.timestamp, end)
        previous = transfer.timestamp
        if transfer.flags & _NOT_BOOKED:
            continue
        entry = entry_of(account.id, transfer)
        if transfer.timestamp < start:
            opening += entry.signed_minor
            continue
        if count == first:
            moved_before_page = moved
        if first <= count < after:
            chosen.append(entry)
        moved += entry.signed_minor
        count += 1
        if count == after:
            moved_after_page = moved
    pages = max(1, -(-count // entries_max))
    if page > pages:
        raise PageOutOfRange(f"the statement of {day.isoformat()} has {pages} page(s)")
    if count < after:  # The last page (a day without entries has one, empty).
        moved_after_page = moved
        if count <= first:
            moved_before_page = moved
    statement = Statement(
        account=account,
        day=day,
        opening_balance_minor=opening,
        closing_balance_minor=opening + moved,
        page=page,
        pages=pages,
        entries_max=entries_max,
        entries_count=count,
        page_opening_balance_minor=opening + moved_before_page,
        page_closing_balance_minor=opening + moved_after_page,
        entries=tuple(chosen),
    )
    _check(statement)
    return statement


def _check(statement: Statement) -> None:
    moved = sum(entry.signed_minor for entry in statement.entries)
    assert statement.page_opening_balance_minor + moved == statement.page_closing_balance_minor
    assert len(statement.entries) <= statement.entries_max
    if statement.page == 1:
        assert statement.page_opening_balance_minor == statement.opening_balance_minor
    if statement.last_page:
        assert statement.page_closing_balance_minor == statement.closing_balance_minor


def account_transfers(
    source: TransferSource, account_id: int, *, timestamp_max: int
) -> Iterator[Transfer]:
    """Every transfer of the account up to ``timestamp_max``, oldest first, read in pages."""
    cursor = 0
    while True:
        chunk = source.get_account_transfers(
            account_id, timestamp_min=cursor, timestamp_max=timestamp_max, limit=_READ_PAGE
        )
        yield from chunk
        if len(chunk) < _READ_PAGE:
            return
        cursor = chunk[-1].timestamp + 1


def read_statement(
    source: TransferSource,
    account: Account,
    day: dt.date,
    *,
    page: int = 1,
    entries_max: int = ENTRIES_PER_PAGE_MAX,
    bounds: tuple[int, int] | None = None,
) -> Statement:
    """``build_statement`` over the account's transfers as ``source`` holds them."""
    _, end = bounds if bounds is not None else day_bounds(day)
    transfers = account_transfers(source, account.id, timestamp_max=end)
    return build_statement(
        account, day, transfers, page=page, entries_max=entries_max, bounds=bounds
    )


# ---------------------------------------------------------------------------------------------
# Renderings.


def statement_json(statement: Statement) -> dict[str, Any]:
    """The statement as the API answers it (ids as decimal strings, amounts in minor units)."""
    return {
        "account_id": str(statement.account.id),
        "account_ref": statement.account.ref,
        "currency": statement.account.currency,
        "date": statement.day.isoformat(),
        "opening_balance_minor": statement.opening_balance_minor,
        "closing_balance_minor": statement.closing_balance_minor,
        "page": statement.page,
        "last_page": statement.last_page,
        "entries_max": statement.entries_max,
        "entries_count": statement.entries_count,
        "page_opening_balance_minor": statement.page_opening_balance_minor,
        "page_closing_balance_minor": statement.page_closing_balance_minor,
        "entries": [
            {
                "transfer_id": str(entry.transfer_id),
                "amount_minor": entry.amount_minor,
                "credit_debit": entry.credit_debit,
                "booked_at": entry.booked_at,
                "counterparty_account": str(entry.counterparty_account),
                "code": entry.code,
                "ref": entry.ref,
                "kind": entry.kind.value,
                "payment_ref": entry.payment_ref,
            }
            for entry in statement.entries
        ],
    }


def statement_camt_053(
    statement: Statement, *, now: dt.datetime, servicer_bic: str | None = None
) -> bytes:
    """The statement as a camt.053.001.08 (schema-validated when written).

    Balances: the first page opens with the day's OPBD, the last closes with its CLBD; a page
    break is an interim booked balance (ITBD). ``StmtPgntn`` numbers the pages.
    """
    account = statement.account
    day = statement.day
    suffix = f"P{statement.page}" if statement.page > 1 else ""
    message = build_account_statement(
        message_id=f"SCOSSTMT{day:%Y%m%d}{account.id % 10**12:012d}{suffix}"[:35],
        created_at=now,
        statement_id=f"{account.id}-{day:%Y%m%d}"[-35:],
        account_id=_camt_account_id(account),
        currency=account.currency,
        statement_date=day,
        opening_balance_minor=statement.page_opening_balance_minor,
        closing_balance_minor=statement.page_closing_balance_minor,
        entries=[_camt_entry(entry, account.currency, day) for entry in statement.entries],
        owner_bic=account.participant,
        servicer_bic=servicer_bic,
        page_number=statement.page,
        last_page=statement.last_page,
        opening_type="OPBD" if statement.page == 1 else "ITBD",
        closing_type="CLBD" if statement.last_page else "ITBD",
    )
    return write_cash_report(message)


def notification_camt_054(
    account: Account, transfer: Transfer, *, now: dt.datetime, servicer_bic: str | None = None
) -> bytes:
    """A camt.054.001.08 notifying ``account``'s owner of one booked ``transfer``, the same
    entry its camt.053 states (schema-validated when written)."""
    entry = entry_of(account.id, transfer)
    day = _EPOCH + dt.timedelta(days=transfer.timestamp // NS_PER_DAY)
    message = build_debit_credit_notification(
        message_id=f"SCOSNTFN{transfer.id % 10**27:027d}",
        created_at=now,
        notification_id=f"{account.id % 10**16}-{transfer.id % 10**16}",
        account_id=_camt_account_id(account),
        entry=_camt_entry(entry, account.currency, day),
        owner_bic=account.participant,
        servicer_bic=servicer_bic,
    )
    return write_cash_report(message)


def _camt_account_id(account: Account) -> str:
    return account.ref.replace(":", "-")[:34] or str(account.id)[:34]


def _camt_entry(entry: StatementEntry, currency: str, day: dt.date) -> Entry:
    return Entry(
        amount_minor=entry.amount_minor,
        currency=currency,
        credit_debit=entry.credit_debit,
        bank_transaction_code=BankTransactionCode(
            proprietary_code=entry.kind.value.upper(), proprietary_issuer=_ISSUER
        ),
        booked_at=dt.datetime.fromtimestamp(entry.booked_at // 10**9, dt.UTC),
        value_at=day,
        entry_reference=str(entry.transfer_id)[-35:],
        account_servicer_reference=(entry.ref or str(entry.transfer_id))[:35],
        additional_info=_describe(entry),
    )


def _describe(entry: StatementEntry) -> str | None:
    """``AddtlNtryInf`` (Max500Text): what the entry settled, where the transfer says."""
    if entry.payment_ref is not None:
        return f"payment {entry.payment_ref}"[:500]
    if entry.kind is EntryKind.NETTING:
        return "net settlement of a netting cycle"
    if entry.kind is EntryKind.RETURN and entry.ref:
        return entry.ref[:500]
    return None
