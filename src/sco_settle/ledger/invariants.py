"""Re-derive the ledger from its journal and check every guarantee. Used by ``sco-settle verify``.

The journal (every transfer, every pending resolution, in timestamp order) is replayed from zero
balances. The replay must reproduce the stored balances exactly, and along the way:

- every transfer's accounts exist, are different, and share the transfer's currency;
- amounts are in 1 .. AMOUNT_MAX; no counter passes AMOUNT_MAX;
- balance-constrained accounts stay within their limit after every event;
- a transfer id appears once; timestamps strictly increase across accounts and transfers;
- each post/void resolves an earlier open pending transfer, at most once, for at most its amount;
  each expiry happens no earlier than the pending transfer's timeout;
- per currency, total debits equal total credits (pending and posted).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from sco_settle.domain.account import AccountFlags
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.domain.transfer import PendingStatus, Transfer, TransferFlags
from sco_settle.ledger.state_machine import NS_PER_SECOND
from sco_settle.ledger.store import Store, StoredAccount

_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING)
_VOID = int(TransferFlags.VOID_PENDING)


@dataclass(frozen=True)
class VerifyReport:
    accounts: int
    transfers: int
    resolutions: int
    currencies: dict[str, tuple[int, int]]  # currency -> (posted debits total, pending total)
    violation: str | None

    @property
    def ok(self) -> bool:
        return self.violation is None


class _Violation(Exception):
    pass


def verify(store: Store) -> VerifyReport:
    """Replay the journal of ``store``; report the first violation found, if any."""
    accounts = {stored.account.id: stored for stored in store.load_accounts()}
    replay = _Replay(accounts)
    try:
        replay.check_accounts()
        for item in _journal(store):
            if isinstance(item, Transfer):
                replay.apply_transfer(item)
            else:
                replay.apply_resolution(*item)
        replay.check_final(store.last_timestamp())
        violation = None
    except _Violation as found:
        violation = str(found)
    return VerifyReport(
        accounts=len(accounts),
        transfers=replay.transfers_seen,
        resolutions=replay.resolutions_seen,
        currencies=replay.currency_totals(),
        violation=violation,
    )


# A pending transfer's resolution as the store keeps it: (pending id, status, timestamp).
_Resolution = tuple[int, PendingStatus, int]
_JournalEntry = Transfer | _Resolution


def _journal(store: Store) -> Iterator[_JournalEntry]:
    """Transfers and pending resolutions merged by timestamp (a post and its resolution share a
    timestamp; the transfer comes first)."""
    transfers: Iterator[tuple[int, int, _JournalEntry]] = (
        (t.timestamp, 0, t) for t in store.iter_transfers()
    )
    resolutions: Iterator[tuple[int, int, _JournalEntry]] = (
        (r[2], 1, r) for r in store.iter_pending_resolutions()
    )
    for _, _, item in heapq.merge(transfers, resolutions, key=lambda e: (e[0], e[1])):
        yield item


class _Replay:
    def __init__(self, accounts: dict[int, StoredAccount]) -> None:
        self.accounts = accounts
        self.balances = {account_id: [0, 0, 0, 0] for account_id in accounts}
        self.transfers: dict[int, Transfer] = {}
        self.open_pending: dict[int, Transfer] = {}
        self.resolved: set[int] = set()
        self.resolving_transfer: dict[int, Transfer] = {}
        self.timestamps: set[int] = set()
        self.last_transfer_timestamp = 0
        self.transfers_seen = 0
        self.resolutions_seen = 0

    def check_accounts(self) -> None:
        for stored in self.accounts.values():
            account = stored.account
            if account.flags & _DMNEC and account.flags & _CMNED:
                raise _Violation(f"account {account.id}: mutually exclusive balance flags")
            if account.timestamp in self.timestamps:
                raise _Violation(f"account {account.id}: timestamp {account.timestamp} reused")
            self.timestamps.add(account.timestamp)

    def apply_transfer(self, t: Transfer) -> None:
        self.transfers_seen += 1
        where = f"transfer {t.id} (timestamp {t.timestamp})"
        if t.id in self.transfers:
            raise _Violation(f"{where}: id applied twice")
        if t.timestamp <= self.last_transfer_timestamp or t.timestamp in self.timestamps:
            raise _Violation(f"{where}: timestamp does not strictly increase")
        self.timestamps.add(t.timestamp)
        self.last_transfer_timestamp = t.timestamp
        self.transfers[t.id] = t
        debit = self._account(t.debit_account, where)
        credit = self._account(t.credit_account, where)
        if t.debit_account == t.credit_account:
            raise _Violation(f"{where}: debit and credit account are the same")
        for stored in (debit, credit):
            if stored.account.currency != t.currency:
                raise _Violation(f"{where}: account {stored.account.id} is not in {t.currency}")
        if not 0 < t.amount <= AMOUNT_MAX:
            raise _Violation(f"{where}: amount {t.amount} out of range")
        dr = self.balances[t.debit_account]
        cr = self.balances[t.credit_account]
        if t.flags & (_POST | _VOID):
            pending = self.open_pending.get(t.pending_id)
            if pending is None:
                raise _Violation(f"{where}: resolves {t.pending_id}, which is not open")
            if (pending.debit_account, pending.credit_account) != (
                t.debit_account,
                t.credit_account,
            ):
                raise _Violation(f"{where}: accounts differ from pending {t.pending_id}")
            if t.amount > pending.amount or (t.flags & _VOID and t.amount != pending.amount):
                raise _Violation(f"{where}: amount does not fit pending {t.pending_id}")
            dr[0] -= pending.amount
            cr[2] -= pending.amount
            if t.flags & _POST:
                dr[1] += t.amount
                cr[3] += t.amount
            self.resolving_transfer[t.pending_id] = t
        elif t.flags & _PENDING:
            dr[0] += t.amount
            cr[2] += t.amount
            self.open_pending[t.id] = t
        else:
            dr[1] += t.amount
            cr[3] += t.amount
        self._check_account(debit, where)
        self._check_account(credit, where)

    def apply_resolution(self, pending_id: int, status: PendingStatus, timestamp: int) -> None:
        self.resolutions_seen += 1
        where = f"pending resolution of {pending_id} (timestamp {timestamp})"
        if pending_id in self.resolved:
            raise _Violation(f"{where}: pending transfer resolved twice")
        self.resolved.add(pending_id)
        if status is PendingStatus.EXPIRED:
            pending = self.open_pending.pop(pending_id, None)
            if pending is None:
                raise _Violation(f"{where}: expired but not open")
            if (
                not pending.timeout
                or pending.timestamp + pending.timeout * NS_PER_SECOND > timestamp
            ):
                raise _Violation(f"{where}: expired before its timeout")
            if timestamp in self.timestamps:
                raise _Violation(f"{where}: timestamp reused")
            self.timestamps.add(timestamp)
            self.balances[pending.debit_account][0] -= pending.amount
            self.balances[pending.credit_account][2] -= pending.amount
            return
        resolving = self.resolving_transfer.pop(pending_id, None)
        expected_flag = _POST if status is PendingStatus.POSTED else _VOID
        if (
            resolving is None
            or resolving.timestamp != timestamp
            or not resolving.flags & expected_flag
        ):
            raise _Violation(f"{where}: no matching {status.name.lower()} transfer")
        self.open_pending.pop(pending_id)

    def check_final(self, last_timestamp: int) -> None:
        if self.resolving_transfer:
            pending_id = next(iter(self.resolving_transfer))
            raise _Violation(f"pending transfer {pending_id}: post/void without a resolution")
        if self.timestamps and max(self.timestamps) > last_timestamp:
            raise _Violation(f"stored last timestamp {last_timestamp} is behind the journal")
        for account_id, stored in self.accounts.items():
            if tuple(self.balances[account_id]) != stored.balance():
                raise _Violation(
                    f"account {account_id}: stored balances {stored.balance()} differ from the"
                    f" journal's {tuple(self.balances[account_id])}"
                )
        totals: dict[str, list[int]] = {}
        for account_id, stored in self.accounts.items():
            total = totals.setdefault(stored.account.currency, [0, 0, 0, 0])
            for position, value in enumerate(self.balances[account_id]):
                total[position] += value
        for currency, (dp, dpo, cp, cpo) in sorted(totals.items()):
            if dp != cp or dpo != cpo:
                raise _Violation(
                    f"{currency}: total debits {dpo} posted/{dp} pending differ from total credits"
                    f" {cpo} posted/{cp} pending"
                )

    def currency_totals(self) -> dict[str, tuple[int, int]]:
        totals: dict[str, tuple[int, int]] = {}
        for account_id, stored in self.accounts.items():
            posted, pending = totals.get(stored.account.currency, (0, 0))
            balance = self.balances[account_id]
            totals[stored.account.currency] = (posted + balance[1], pending + balance[0])
        return dict(sorted(totals.items()))

    def _account(self, account_id: int, where: str) -> StoredAccount:
        stored = self.accounts.get(account_id)
        if stored is None:
            raise _Violation(f"{where}: account {account_id} does not exist")
        return stored

    def _check_account(self, stored: StoredAccount, where: str) -> None:
        dp, dpo, cp, cpo = self.balances[stored.account.id]
        if min(dp, dpo, cp, cpo) < 0 or max(dp, dpo, cp, cpo) > AMOUNT_MAX:
            raise _Violation(f"{where}: account {stored.account.id} counter out of range")
        flags = stored.account.flags
        limit = stored.account.credit_limit
        if flags & _DMNEC and dp + dpo > cpo + limit:
            raise _Violation(f"{where}: account {stored.account.id} debits exceed credits + limit")
        if flags & _CMNED and cp + cpo > dpo + limit:
            raise _Violation(f"{where}: account {stored.account.id} credits exceed debits + limit")
