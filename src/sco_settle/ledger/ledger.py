"""``Ledger``: the state machine plus a store. Prefetch, apply, commit durably, then answer.

Nothing is acknowledged before it is durable: ``create_accounts``/``create_transfers`` return
their results only after ``store.commit`` has returned. If the commit fails, the in-memory state may
be ahead of the store, so the ledger closes itself; reopening from the store recovers exactly the
committed state.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from sco_settle.domain.account import Account, AccountBalance
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.results import CreateAccountResult, CreateTransferResult
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.ledger.state_machine import (
    BATCH_EVENTS_MAX,
    AccountState,
    Changes,
    LedgerState,
    Prefetched,
)
from sco_settle.ledger.store import Store

_RESOLVE = int(TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)


class BatchTooLargeError(ValueError):
    """A batch has more than ``BATCH_EVENTS_MAX`` events; nothing was applied."""


class LedgerClosedError(RuntimeError):
    """The ledger was closed (explicitly, or after a failed commit); reopen it from its store."""


class Ledger:
    def __new__(cls, store: Store, clock: Callable[[], int] = time.time_ns) -> Ledger:
        # A columnar store (``sco_settle.storage.log``) runs the compiled engine: the same rules
        # and results (``ledger/fast.py``). Imported here so that the default path never loads
        # numba.
        if cls is Ledger and getattr(store, "columnar", False):
            from sco_settle.ledger.fast import FastLedger

            return FastLedger.__new__(FastLedger, store, clock)
        return object.__new__(cls)

    def __init__(self, store: Store, clock: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self.clock = clock
        self.state = LedgerState()
        self.closed = False
        for stored in store.load_accounts():
            self.state.load_account(stored.account, stored.balance())
        for pending in store.load_open_pending():
            self.state.load_pending(pending)
        self.state.last_timestamp = store.last_timestamp()
        self.state.check_totals()

    # -- writes -----------------------------------------------------------------------------

    def create_accounts(self, batch: Sequence[Account]) -> list[CreateAccountResult]:
        self._check_batch(batch)
        base = self.state.timestamp_base(self.clock(), len(batch))
        results, changes = self.state.create_accounts(batch, base)
        self._commit(changes)
        return results

    def create_transfers(self, batch: Sequence[Transfer]) -> list[CreateTransferResult]:
        self._check_batch(batch)
        prefetched = self._prefetch(batch)
        base = self.state.timestamp_base(self.clock(), len(batch))
        results, changes = self.state.create_transfers(batch, base, prefetched)
        self._commit(changes)
        return results

    def expire_pending(self) -> int:
        """Expire pending transfers whose timeout has passed; return how many expired."""
        self._check_open()
        changes = self.state.expire_pending(self.clock())
        if changes.pending_resolutions:
            self._commit(changes)
        return len(changes.pending_resolutions)

    # -- reads ------------------------------------------------------------------------------

    def lookup_account(self, account_id: int) -> AccountState | None:
        return self.state.accounts.get(account_id)

    def accounts(self) -> list[AccountState]:
        return list(self.state.accounts.values())

    def get_account_transfers(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[Transfer]:
        return self.store.get_account_transfers(
            account_id,
            timestamp_min=timestamp_min,
            timestamp_max=timestamp_max,
            limit=limit,
            reverse=reverse,
        )

    def get_account_history(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        return self.store.get_account_history(
            account_id,
            timestamp_min=timestamp_min,
            timestamp_max=timestamp_max,
            limit=limit,
            reverse=reverse,
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise LedgerClosedError("the ledger is closed; reopen it from its store")

    def _check_batch(self, batch: Sequence[object]) -> None:
        self._check_open()
        if len(batch) > BATCH_EVENTS_MAX:
            raise BatchTooLargeError(
                f"batch has {len(batch)} events; at most {BATCH_EVENTS_MAX} are allowed"
            )

    def _prefetch(self, batch: Sequence[Transfer]) -> Prefetched:
        """Look up the committed transfers a batch may refer to: its own ids and pending ids."""
        ids = []
        pending_ids = []
        for transfer in batch:
            transfer_id = transfer.id
            if type(transfer_id) is int and 0 < transfer_id < ID_MAX:
                ids.append(transfer_id)
            flags = transfer.flags
            pending_id = transfer.pending_id
            if (
                isinstance(flags, int)
                and flags & _RESOLVE
                and type(pending_id) is int
                and 0 < pending_id < ID_MAX
            ):
                pending_ids.append(pending_id)
        transfers = self.store.get_transfers(ids + pending_ids)
        statuses = self.store.get_pending_statuses(pending_ids) if pending_ids else {}
        return Prefetched(transfers, statuses)

    def _commit(self, changes: Changes) -> None:
        try:
            self.store.commit(changes)
        except BaseException:
            # Memory is now ahead of the store: refuse further use rather than diverge, and
            # release the writer lock so the ledger can be reopened (recovering the committed
            # state) without waiting for this process to exit.
            self.closed = True
            with contextlib.suppress(Exception):
                self.store.close()
            raise
