"""In-memory store: the reference adapter for tests and the pure in-memory benchmark.

It keeps what a durable store keeps, in plain Python structures, and nothing survives the process.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterator
from typing import TypeVar

from sco_settle.domain.account import Account, AccountBalance
from sco_settle.domain.transfer import PendingStatus, Transfer, TransferFlags
from sco_settle.ledger.state_machine import Changes
from sco_settle.ledger.store import StoredAccount

_PENDING = int(TransferFlags.PENDING)
_Row = TypeVar("_Row", Transfer, AccountBalance)


class MemoryStore:
    def __init__(self) -> None:
        self.accounts: dict[int, Account] = {}
        self.balances: dict[int, tuple[int, int, int, int]] = {}
        self.transfers: dict[int, Transfer] = {}
        self.journal: list[Transfer] = []
        self.statuses: dict[int, tuple[PendingStatus, int]] = {}
        self.history: dict[int, list[AccountBalance]] = {}
        self.by_account: dict[int, list[Transfer]] = {}
        self.timestamp = 0

    def load_accounts(self) -> Iterator[StoredAccount]:
        for account_id, account in self.accounts.items():
            yield StoredAccount(account, *self.balances[account_id])

    def load_open_pending(self) -> Iterator[Transfer]:
        for transfer in self.journal:
            if transfer.flags & _PENDING and transfer.id not in self.statuses:
                yield transfer

    def last_timestamp(self) -> int:
        return self.timestamp

    def get_transfers(self, ids: Collection[int]) -> dict[int, Transfer]:
        transfers = self.transfers
        return {i: transfers[i] for i in ids if i in transfers}

    def get_pending_statuses(self, ids: Collection[int]) -> dict[int, PendingStatus]:
        statuses = self.statuses
        return {i: statuses[i][0] for i in ids if i in statuses}

    def commit(self, changes: Changes) -> None:
        if not (
            changes.accounts_created or changes.transfers_created or changes.pending_resolutions
        ):
            return  # As the durable stores: a batch whose every event failed stores nothing.
        for account in changes.accounts_created:
            self.accounts[account.id] = account
            self.balances[account.id] = (0, 0, 0, 0)
        for transfer in changes.transfers_created:
            self.transfers[transfer.id] = transfer
            self.journal.append(transfer)
            self.by_account.setdefault(transfer.debit_account, []).append(transfer)
            self.by_account.setdefault(transfer.credit_account, []).append(transfer)
        for account_id, dp, dpo, cp, cpo in changes.balances:  # pending/posted debits/credits
            self.balances[account_id] = (dp, dpo, cp, cpo)
        for pending_id, status, timestamp in changes.pending_resolutions:
            self.statuses[pending_id] = (status, timestamp)
        for snapshot in changes.history:
            self.history.setdefault(snapshot.account_id, []).append(snapshot)
        self.timestamp = max(self.timestamp, changes.last_timestamp)

    def get_account_transfers(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[Transfer]:
        rows = self.by_account.get(account_id, [])
        return _page(rows, lambda t: t.timestamp, timestamp_min, timestamp_max, limit, reverse)

    def get_account_history(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        rows = self.history.get(account_id, [])
        return _page(rows, lambda b: b.timestamp, timestamp_min, timestamp_max, limit, reverse)

    def iter_accounts(self) -> Iterator[StoredAccount]:
        return self.load_accounts()

    def iter_transfers(self) -> Iterator[Transfer]:
        return iter(list(self.journal))

    def iter_pending_resolutions(self) -> Iterator[tuple[int, PendingStatus, int]]:
        rows = sorted(self.statuses.items(), key=lambda item: item[1][1])
        return iter([(pending_id, status, ts) for pending_id, (status, ts) in rows])

    def count_transfers(self) -> int:
        return len(self.journal)

    def close(self) -> None:
        pass


def _page(
    rows: list[_Row],
    key: Callable[[_Row], int],
    timestamp_min: int,
    timestamp_max: int,
    limit: int,
    reverse: bool,
) -> list[_Row]:
    keys = [key(row) for row in rows]
    start = bisect.bisect_left(keys, timestamp_min)
    end = bisect.bisect_right(keys, timestamp_max)
    selected = rows[start:end]
    if reverse:
        selected = selected[::-1]
    return selected[:limit]
