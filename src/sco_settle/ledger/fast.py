"""``FastLedger``: the ``Ledger`` API over the compiled engine of ``ledger.columnar``.

``Ledger(store)`` builds one of these when the store is columnar (``store.columnar``: the log
store, ``sco_settle.storage.log``), so opening a ``log:///`` URL is all it takes to select it.
The guarantees are the reference ledger's: the same results and changes (the compiled loop keeps
the reference's rules and order; ``tests/ledger/test_fast_equivalence.py`` checks it), nothing
answered before ``store.commit_batch`` returned (the log is fsync'd), and a ledger that closes
itself when a commit fails.

Accounts are created by the reference code itself (``LedgerState.create_accounts``, run on the
view below): they are few, and their rules (BICs, currencies, kinds) are Python's.

The view. Callers of ``Ledger`` read ``state`` (accounts as ``AccountState``, ``pending_open``,
``last_timestamp``, ``check_totals``), ``lookup_account`` and ``accounts``. Here the truth is in
the tables; the view's ``AccountState`` objects are refreshed from them whenever one of those is
read, so a reader always sees the committed counters.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from sco_settle.domain.account import Account
from sco_settle.domain.results import CreateAccountResult, CreateTransferResult
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger.columnar import (
    RESULTS,
    BatchRecord,
    ColumnarStore,
    Engine,
    TransferColumns,
    encode_transfers,
)
from sco_settle.ledger.ledger import Ledger, LedgerClosedError
from sco_settle.ledger.state_machine import AccountState, LedgerState
from sco_settle.ledger.store import Store

_OK = CreateTransferResult.OK


class FastLedger(Ledger):
    def __new__(cls, store: Store, clock: Callable[[], int] = time.time_ns) -> FastLedger:
        return object.__new__(cls)

    def __init__(self, store: Store, clock: Callable[[], int] = time.time_ns) -> None:
        if not getattr(store, "columnar", False):
            raise TypeError(f"{type(store).__name__} is not a columnar store")
        columnar: ColumnarStore = store  # type: ignore[assignment]
        self.store = store
        self.columnar_store = columnar
        self.clock = clock
        self.closed = False
        self.tables = columnar.tables
        self.engine = Engine(self.tables)
        self._view = LedgerState()
        for index, account in enumerate(self.tables.accounts):
            self._view.accounts[account.id] = AccountState(account, *self.tables.balance(index))
        self._view.last_timestamp = self.tables.last_timestamp
        self._synced = False  # pending_open is filled on first read
        self.tables.check()

    # -- writes -----------------------------------------------------------------------------

    def create_accounts(self, batch: Sequence[Account]) -> list[CreateAccountResult]:
        self._check_batch(batch)
        view = self._view
        view.last_timestamp = self.tables.last_timestamp
        base = view.timestamp_base(self.clock(), len(batch))
        results, changes = view.create_accounts(batch, base)
        for account in changes.accounts_created:
            self.tables.add_account(account)
        self.tables.last_timestamp = view.last_timestamp
        record = BatchRecord(
            first_row=self.tables.n_tr,
            accounts=list(changes.accounts_created),
            last_timestamp=self.tables.last_timestamp,
        )
        self._commit_record(record)
        return results

    def create_transfers(self, batch: Sequence[Transfer]) -> list[CreateTransferResult]:
        self._check_batch(batch)
        codes = self._apply(encode_transfers(batch))
        if not codes.any():
            return [_OK] * len(batch)
        return [RESULTS[code] for code in codes.tolist()]

    def create_transfers_columns(self, batch: TransferColumns) -> npt.NDArray[np.uint8]:
        """A batch given as columns (``TransferColumns.from_arrays``): the result codes, as
        positions in ``CreateTransferResult`` (0 is ``ok``; ``ledger.columnar.RESULTS``)."""
        self._check_batch(range(len(batch)))
        return self._apply(batch)

    def expire_pending(self) -> int:
        self._check_open()
        before = self.tables.n_res
        self._apply(encode_transfers([]))
        return self.tables.n_res - before

    def _apply(self, events: TransferColumns) -> npt.NDArray[np.uint8]:
        base = max(self.clock(), self.tables.last_timestamp + 1)
        self._synced = False
        codes, record = self.engine.apply(events, base)
        self._commit_record(record)
        return codes

    def _commit_record(self, record: BatchRecord) -> None:
        self._synced = False
        if record.is_empty():
            return
        try:
            self.columnar_store.commit_batch(record)
        except BaseException:
            self.closed = True
            with contextlib.suppress(Exception):  # the commit's error is the one to raise
                self.store.close()
            raise

    # -- reads ------------------------------------------------------------------------------

    @property
    def state(self) -> LedgerState:
        self._sync()
        return self._view

    @state.setter
    def state(self, value: LedgerState) -> None:
        raise AttributeError("a FastLedger's state is kept in its tables")

    def lookup_account(self, account_id: int) -> AccountState | None:
        index = self.tables.account_index.get(account_id)
        if index is None:
            return None
        state = self._view.accounts[account_id]
        (
            state.debits_pending,
            state.debits_posted,
            state.credits_pending,
            state.credits_posted,
        ) = self.tables.balance(index)
        return state

    def accounts(self) -> list[AccountState]:
        self._sync()
        return list(self._view.accounts.values())

    def _sync(self) -> None:
        if self._synced:
            return
        tables = self.tables
        view = self._view
        for account, (dp, dpo, cp, cpo) in zip(
            tables.accounts, tables.bal[: tables.n_acc].tolist(), strict=True
        ):
            state = view.accounts[account.id]
            state.debits_pending = dp
            state.debits_posted = dpo
            state.credits_pending = cp
            state.credits_posted = cpo
        view.pending_open = {
            transfer.id: transfer for transfer in tables.transfers(tables.open_pending_rows())
        }
        view.last_timestamp = tables.last_timestamp
        self._synced = True

    def _check_open(self) -> None:
        if self.closed:
            raise LedgerClosedError("the ledger is closed; reopen it from its store")
