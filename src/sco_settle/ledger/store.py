"""The storage port, owned by the ledger. ``sco_settle.storage`` holds the adapters.

Contract every store keeps:
- ``commit(changes)`` is atomic and durable: when it returns, all of the batch's changes survive a
  crash; when it raises, none of them are visible (and the ledger instance must be discarded).
- Reads return exactly what was committed, in the documented order.
- One ledger instance writes to a store at a time (stores enforce it with a lock).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Protocol

from sco_settle.domain.account import Account, AccountBalance
from sco_settle.domain.transfer import PendingStatus, Transfer
from sco_settle.ledger.state_machine import Changes


@dataclass(frozen=True)
class StoredAccount:
    account: Account
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    def balance(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


class Store(Protocol):
    def load_accounts(self) -> Iterator[StoredAccount]:
        """Every account with its balance counters."""
        ...

    def load_open_pending(self) -> Iterator[Transfer]:
        """Every pending transfer that is neither posted, voided nor expired."""
        ...

    def last_timestamp(self) -> int: ...

    def get_transfers(self, ids: Collection[int]) -> dict[int, Transfer]:
        """The committed transfers among ``ids`` (missing ids are simply absent)."""
        ...

    def get_pending_statuses(self, ids: Collection[int]) -> dict[int, PendingStatus]:
        """Resolutions (posted/voided/expired) of the pending transfers among ``ids``."""
        ...

    def commit(self, changes: Changes) -> None: ...

    def get_account_transfers(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[Transfer]:
        """Transfers debiting or crediting the account, ordered by timestamp."""
        ...

    def get_account_history(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        """Balance snapshots of an account with the ``history`` flag, ordered by timestamp."""
        ...

    def iter_transfers(self) -> Iterator[Transfer]:
        """All transfers in timestamp order (the journal)."""
        ...

    def iter_pending_resolutions(self) -> Iterator[tuple[int, PendingStatus, int]]:
        """All (pending id, status, timestamp) resolutions in timestamp order."""
        ...

    def close(self) -> None: ...
