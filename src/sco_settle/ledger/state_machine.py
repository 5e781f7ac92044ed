"""The ledger state machine: (state, batch, timestamp, prefetched lookups) -> (results, changes).

This module performs no I/O and never reads the clock. ``sco_settle.ledger.ledger.Ledger`` does the
I/O around it: it prefetches from the store what a batch may need, runs the state machine, and
commits the changes durably before it returns the results.

Invariants (checked here, asserted after every event, re-checked from the journal by
``sco_settle.ledger.invariants``):
- Per currency, the sum of debits equals the sum of credits, pending and posted alike, because
  every event moves the same amount on one debit and one credit counter.
- No balance-constrained account passes its limit (see ``domain.account``).
- A transfer id is applied at most once; a pending transfer resolves at most once.
- Timestamps strictly increase: every event of a batch gets ``timestamp_base + index``.
- A failed event changes nothing; a failed event in a linked chain undoes the whole chain.

Result codes are checked in a fixed order, so the same batch on the same state always gives the
same results (and the same changes).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sco_settle.domain.account import Account, AccountBalance, AccountFlags, AccountKind
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.money import AMOUNT_MAX, is_currency
from sco_settle.domain.participants import BicError, parse_bic
from sco_settle.domain.results import CreateAccountResult as AR
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import PendingStatus, Transfer, TransferFlags

BATCH_EVENTS_MAX = 8190  # As TigerBeetle: a batch fits one message; larger batches are refused.
REF_LENGTH_MAX = 140  # Characters; an ISO 20022 unstructured remittance line is 140.
CODE_MAX = 65535
TIMEOUT_SECONDS_MAX = 2**31 - 1
NS_PER_SECOND = 1_000_000_000

_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_HISTORY = int(AccountFlags.HISTORY)
_ACCOUNT_LINKED = int(AccountFlags.LINKED)
_ACCOUNT_FLAGS_ALL = int(
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    | AccountFlags.HISTORY
)
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING)
_VOID = int(TransferFlags.VOID_PENDING)
_TRANSFER_FLAGS_ALL = _LINKED | _PENDING | _POST | _VOID
_ACCOUNT_KINDS = frozenset(kind.value for kind in AccountKind)


class InvariantViolation(AssertionError):
    """A ledger invariant broke: a programming error. The ledger must stop, not carry on."""


class AccountState:
    """An account plus its four balance counters: the only mutable thing in the ledger."""

    __slots__ = (
        "account",
        "credit_limit",
        "credits_pending",
        "credits_posted",
        "currency",
        "debits_pending",
        "debits_posted",
        "flags",
        "id",
    )

    def __init__(
        self,
        account: Account,
        debits_pending: int = 0,
        debits_posted: int = 0,
        credits_pending: int = 0,
        credits_posted: int = 0,
    ) -> None:
        self.account = account
        self.id = account.id
        self.flags = account.flags
        self.credit_limit = account.credit_limit
        self.currency = account.currency
        self.debits_pending = debits_pending
        self.debits_posted = debits_posted
        self.credits_pending = credits_pending
        self.credits_posted = credits_posted

    def balance_tuple(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)

    def check(self) -> None:
        """Raise ``InvariantViolation`` if a counter or a balance constraint is broken."""
        dp, dpo, cp, cpo = (
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
        )
        if min(dp, dpo, cp, cpo) < 0 or max(dp, dpo, cp, cpo) > AMOUNT_MAX:
            raise InvariantViolation(f"account {self.id}: counter out of range")
        flags = self.flags
        if flags & _DMNEC and dp + dpo > cpo + self.credit_limit:
            raise InvariantViolation(f"account {self.id}: debits exceed credits plus limit")
        if flags & _CMNED and cp + cpo > dpo + self.credit_limit:
            raise InvariantViolation(f"account {self.id}: credits exceed debits plus limit")


@dataclass
class Changes:
    """Everything a batch changed, for the store to commit in one durable transaction."""

    accounts_created: list[Account] = field(default_factory=list)
    transfers_created: list[Transfer] = field(default_factory=list)
    # Final balance counters of every account the batch touched: (id, dp, dpo, cp, cpo).
    balances: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    # Resolutions of pending transfers: (pending id, status, timestamp of the resolution).
    pending_resolutions: list[tuple[int, PendingStatus, int]] = field(default_factory=list)
    history: list[AccountBalance] = field(default_factory=list)
    last_timestamp: int = 0


@dataclass(frozen=True)
class Prefetched:
    """What the store knows about the ids a transfer batch mentions (filled before the batch)."""

    transfers: Mapping[int, Transfer]
    pending_statuses: Mapping[int, PendingStatus]


class LedgerState:
    """In-memory ledger state: all accounts, open pending transfers and the last timestamp.

    Transfers already committed are not held here; the ledger prefetches those a batch mentions.
    """

    def __init__(self) -> None:
        self.accounts: dict[int, AccountState] = {}
        self.pending_open: dict[int, Transfer] = {}
        self.pending_expiries: list[tuple[int, int]] = []  # heap of (expires_at ns, pending id)
        self.last_timestamp = 0

    # -- loading ----------------------------------------------------------------------------

    def load_account(self, account: Account, balance: tuple[int, int, int, int]) -> None:
        assert account.id not in self.accounts, account.id
        state = AccountState(account, *balance)
        state.check()
        self.accounts[account.id] = state

    def load_pending(self, transfer: Transfer) -> None:
        assert transfer.flags & _PENDING, transfer
        self.pending_open[transfer.id] = transfer
        if transfer.timeout:
            expires_at = transfer.timestamp + transfer.timeout * NS_PER_SECOND
            heapq.heappush(self.pending_expiries, (expires_at, transfer.id))

    # -- timestamps -------------------------------------------------------------------------

    def timestamp_base(self, now: int, events: int) -> int:
        """The first timestamp of a batch of ``events`` events: after every earlier one."""
        assert events >= 0
        return max(now, self.last_timestamp + 1)

    # -- accounts ---------------------------------------------------------------------------

    def create_accounts(
        self, batch: Sequence[Account], timestamp_base: int
    ) -> tuple[list[AR], Changes]:
        assert timestamp_base > self.last_timestamp
        changes = Changes()
        results: list[AR] = [AR.OK] * len(batch)
        created: dict[int, Account] = {}
        chain_start: int | None = None
        chain_failed = False
        for index, account in enumerate(batch):
            timestamp = timestamp_base + index
            linked = (
                bool(account.flags & _ACCOUNT_LINKED) if isinstance(account.flags, int) else False
            )
            if chain_start is None and linked:
                chain_start = index
                chain_failed = False
            if chain_failed:
                results[index] = AR.LINKED_EVENT_FAILED
            else:
                result = self._create_account(account, timestamp, created)
                results[index] = result
                if result is AR.OK:
                    created[account.id] = account._replace(
                        flags=int(account.flags), timestamp=timestamp
                    )
                elif chain_start is not None:
                    chain_failed = True
                    for earlier in range(chain_start, index):
                        results[earlier] = AR.LINKED_EVENT_FAILED
                        created.pop(batch[earlier].id, None)
            if chain_start is not None and not linked:
                chain_start = None
                chain_failed = False
        if chain_start is not None:
            # The batch ended inside a chain: the whole open chain fails.
            for earlier in range(chain_start, len(batch)):
                if results[earlier] is AR.OK:
                    created.pop(batch[earlier].id, None)
                results[earlier] = AR.LINKED_EVENT_FAILED
            results[-1] = AR.LINKED_EVENT_CHAIN_OPEN
        for account in created.values():
            self.accounts[account.id] = AccountState(account)
            changes.accounts_created.append(account)
        self.last_timestamp = timestamp_base + len(batch) - 1 if batch else self.last_timestamp
        changes.last_timestamp = self.last_timestamp
        return results, changes

    def _create_account(
        self, account: Account, timestamp: int, created: Mapping[int, Account]
    ) -> AR:
        if not isinstance(account.id, int) or not 0 < account.id < ID_MAX:
            return AR.ID_INVALID
        flags = account.flags
        if not isinstance(flags, int) or flags & ~_ACCOUNT_FLAGS_ALL:
            return AR.FLAGS_UNKNOWN
        if flags & _DMNEC and flags & _CMNED:
            return AR.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        try:
            participant = parse_bic(account.participant)
        except BicError:
            return AR.PARTICIPANT_INVALID
        if participant != account.participant:
            return AR.PARTICIPANT_INVALID  # Only the canonical form is stored.
        if not is_currency(account.currency):
            return AR.CURRENCY_INVALID
        if account.kind not in _ACCOUNT_KINDS:
            return AR.KIND_INVALID
        limit = account.credit_limit
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= AMOUNT_MAX:
            return AR.CREDIT_LIMIT_INVALID
        if limit and not flags & (_DMNEC | _CMNED):
            return AR.CREDIT_LIMIT_REQUIRES_BALANCE_FLAG
        if not isinstance(account.code, int) or not 0 <= account.code <= CODE_MAX:
            return AR.CODE_INVALID
        if not isinstance(account.ref, str) or len(account.ref) > REF_LENGTH_MAX:
            return AR.REF_TOO_LONG
        existing_state = self.accounts.get(account.id)
        existing = existing_state.account if existing_state else created.get(account.id)
        if existing is not None:
            same = existing[:-1] == account[:-1]
            return AR.EXISTS if same else AR.EXISTS_WITH_DIFFERENT_FIELDS
        return AR.OK

    # -- transfers --------------------------------------------------------------------------

    def create_transfers(
        self, batch: Sequence[Transfer], timestamp_base: int, prefetched: Prefetched
    ) -> tuple[list[TR], Changes]:
        """Apply a batch of transfers; see the module docstring for the guarantees."""
        assert timestamp_base > self.last_timestamp
        run = _TransferBatch(self, prefetched)
        timestamp_base = run.expire_pending(timestamp_base)
        results = run.apply(batch, timestamp_base)
        last = timestamp_base + len(batch) - 1 if batch else timestamp_base - 1
        self.last_timestamp = max(self.last_timestamp, last)
        return results, run.finish(self.last_timestamp)

    def expire_pending(self, now: int) -> Changes:
        """Expire pending transfers whose timeout has passed at ``now`` (no transfers)."""
        run = _TransferBatch(self, Prefetched({}, {}))
        timestamp_base = self.timestamp_base(now, 0)
        after = run.expire_pending(timestamp_base)
        self.last_timestamp = max(self.last_timestamp, after - 1)
        return run.finish(self.last_timestamp)

    def check_totals(self) -> None:
        """Raise ``InvariantViolation`` unless debits equal credits per currency."""
        totals: dict[str, list[int]] = {}
        for state in self.accounts.values():
            total = totals.setdefault(state.currency, [0, 0, 0, 0])
            total[0] += state.debits_pending
            total[1] += state.debits_posted
            total[2] += state.credits_pending
            total[3] += state.credits_posted
        for currency, (dp, dpo, cp, cpo) in totals.items():
            if dp != cp or dpo != cpo:
                raise InvariantViolation(
                    f"{currency}: debits {dp}/{dpo} != credits {cp}/{cpo} (pending/posted)"
                )


class _TransferBatch:
    """One run of ``create_transfers``: the undo log for linked chains and the changes."""

    def __init__(self, state: LedgerState, prefetched: Prefetched) -> None:
        self.state = state
        self.accounts = state.accounts
        self.prefetched = prefetched
        self.created: dict[int, Transfer] = {}
        self.resolved: dict[int, PendingStatus] = {}
        self.touched: dict[int, AccountState] = {}
        self.changes = Changes()
        # Undo log of the open chain: saved counters by account, resolved pending transfers.
        self.undo_balances: dict[int, tuple[int, int, int, int]] | None = None
        self.undo_pending: list[Transfer] = []

    def expire_pending(self, timestamp: int) -> int:
        """Expire every pending transfer due at ``timestamp``; return the next free timestamp."""
        state = self.state
        heap = state.pending_expiries
        due_at = timestamp
        while heap and heap[0][0] <= due_at:
            expires_at, pending_id = heapq.heappop(heap)
            pending = state.pending_open.get(pending_id)
            if pending is None or pending.timestamp + pending.timeout * NS_PER_SECOND != expires_at:
                # Posted or voided before it expired, or a stale entry of a rolled-back chain.
                continue
            del state.pending_open[pending_id]
            debit = self.accounts[pending.debit_account]
            credit = self.accounts[pending.credit_account]
            self._save(debit)
            self._save(credit)
            debit.debits_pending -= pending.amount
            credit.credits_pending -= pending.amount
            self.changes.pending_resolutions.append((pending_id, PendingStatus.EXPIRED, timestamp))
            self.resolved[pending_id] = PendingStatus.EXPIRED
            self._record_history(debit, credit, timestamp)
            timestamp += 1
        return timestamp

    def apply(self, batch: Sequence[Transfer], timestamp_base: int) -> list[TR]:
        results: list[TR] = [TR.OK] * len(batch)
        chain_start: int | None = None
        chain_failed = False
        changes = self.changes
        for index, transfer in enumerate(batch):
            flags = transfer.flags
            linked = isinstance(flags, int) and bool(flags & _LINKED)
            if chain_start is None and linked:
                chain_start = index
                chain_failed = False
                self._chain_begin()
                mark = (
                    len(changes.transfers_created),
                    len(changes.pending_resolutions),
                    len(changes.history),
                )
            if chain_failed:
                results[index] = TR.LINKED_EVENT_FAILED
            else:
                result = self._create_transfer(transfer, timestamp_base + index)
                results[index] = result
                if result is not TR.OK and chain_start is not None:
                    chain_failed = True
                    self._chain_rollback(mark)
                    for earlier in range(chain_start, index):
                        results[earlier] = TR.LINKED_EVENT_FAILED
            if chain_start is not None and not linked:
                chain_start = None
                chain_failed = False
                self.undo_balances = None
        if chain_start is not None:
            if not chain_failed:
                self._chain_rollback(mark)
            for earlier in range(chain_start, len(batch)):
                results[earlier] = TR.LINKED_EVENT_FAILED
            results[-1] = TR.LINKED_EVENT_CHAIN_OPEN
            self.undo_balances = None
        return results

    def finish(self, last_timestamp: int) -> Changes:
        changes = self.changes
        balances = changes.balances
        for account in self.touched.values():
            account.check()  # Asserted right before the balances go to the store.
            balances.append(
                (
                    account.id,
                    account.debits_pending,
                    account.debits_posted,
                    account.credits_pending,
                    account.credits_posted,
                )
            )
        changes.last_timestamp = last_timestamp
        return changes

    # -- linked chains ----------------------------------------------------------------------

    def _chain_begin(self) -> None:
        self.undo_balances = {}
        self.undo_pending = []

    def _chain_rollback(self, mark: tuple[int, int, int]) -> None:
        assert self.undo_balances is not None
        for account_id, saved in self.undo_balances.items():
            account = self.accounts[account_id]
            (
                account.debits_pending,
                account.debits_posted,
                account.credits_pending,
                account.credits_posted,
            ) = saved
        changes = self.changes
        # Reopen what the chain resolved first, then drop what the chain created: a pending
        # transfer created and posted inside the same chain must end up in neither.
        for pending in self.undo_pending:
            self.state.pending_open[pending.id] = pending
        for transfer in changes.transfers_created[mark[0] :]:
            del self.created[transfer.id]
            if transfer.flags & _PENDING:
                self.state.pending_open.pop(transfer.id, None)
        for pending_id, _, _ in changes.pending_resolutions[mark[1] :]:
            del self.resolved[pending_id]
        del changes.transfers_created[mark[0] :]
        del changes.pending_resolutions[mark[1] :]
        del changes.history[mark[2] :]
        self.undo_balances = {}
        self.undo_pending = []

    def _save(self, account: AccountState) -> None:
        self.touched[account.id] = account
        undo = self.undo_balances
        if undo is not None and account.id not in undo:
            undo[account.id] = account.balance_tuple()

    def _record_history(self, debit: AccountState, credit: AccountState, timestamp: int) -> None:
        for account in (debit, credit):
            if account.flags & _HISTORY:
                self.changes.history.append(
                    AccountBalance(account.id, timestamp, *account.balance_tuple())
                )

    # -- one transfer -----------------------------------------------------------------------

    def _lookup_transfer(self, transfer_id: int) -> Transfer | None:
        found = self.created.get(transfer_id)
        if found is None:
            found = self.state.pending_open.get(transfer_id)
        if found is None:
            found = self.prefetched.transfers.get(transfer_id)
        return found

    def _create_transfer(self, t: Transfer, timestamp: int) -> TR:
        if type(t.id) is not int or not 0 < t.id < ID_MAX:
            return TR.ID_INVALID
        flags = t.flags
        if not isinstance(flags, int) or isinstance(flags, bool) or flags & ~_TRANSFER_FLAGS_ALL:
            return TR.FLAGS_UNKNOWN
        flags = int(flags)
        kind = flags & (_PENDING | _POST | _VOID)
        if kind & (kind - 1):
            return TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if kind & (_POST | _VOID):
            return self._resolve_pending(t, timestamp)
        debit_id = t.debit_account
        credit_id = t.credit_account
        if type(debit_id) is not int or not 0 < debit_id < ID_MAX:
            return TR.DEBIT_ACCOUNT_INVALID
        if type(credit_id) is not int or not 0 < credit_id < ID_MAX:
            return TR.CREDIT_ACCOUNT_INVALID
        if debit_id == credit_id:
            return TR.ACCOUNTS_MUST_BE_DIFFERENT
        if t.pending_id != 0:
            return TR.PENDING_ID_MUST_BE_ZERO
        timeout = t.timeout
        if timeout != 0 and not kind:
            return TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if type(timeout) is not int or not 0 <= timeout <= TIMEOUT_SECONDS_MAX:
            return TR.TIMEOUT_INVALID
        amount = t.amount
        if type(amount) is not int or not 0 < amount <= AMOUNT_MAX:
            return TR.AMOUNT_INVALID
        code = t.code
        if type(code) is not int or not 0 <= code <= CODE_MAX:
            return TR.CODE_INVALID
        ref = t.ref
        if type(ref) is not str or len(ref) > REF_LENGTH_MAX:
            return TR.REF_TOO_LONG
        debit = self.accounts.get(debit_id)
        if debit is None:
            return TR.DEBIT_ACCOUNT_NOT_FOUND
        credit = self.accounts.get(credit_id)
        if credit is None:
            return TR.CREDIT_ACCOUNT_NOT_FOUND
        if debit.currency != credit.currency:
            return TR.CURRENCY_MISMATCH
        transfer_id = t.id
        existing = (
            self.created.get(transfer_id)
            or self.state.pending_open.get(transfer_id)
            or self.prefetched.transfers.get(transfer_id)
        )
        if existing is not None:
            return _compare_existing(t, existing)
        if kind:
            if debit.debits_pending + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_DEBITS
            if credit.credits_pending + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_CREDITS
        else:
            if debit.debits_posted + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_DEBITS
            if credit.credits_posted + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_CREDITS
        if debit.flags & _DMNEC and (
            debit.debits_pending + debit.debits_posted + amount
            > debit.credits_posted + debit.credit_limit
        ):
            return TR.EXCEEDS_CREDITS
        if credit.flags & _CMNED and (
            credit.credits_pending + credit.credits_posted + amount
            > credit.debits_posted + credit.credit_limit
        ):
            return TR.EXCEEDS_DEBITS
        # Every rule has passed: apply.
        if self.undo_balances is None:
            touched = self.touched
            touched[debit_id] = debit
            touched[credit_id] = credit
        else:
            self._save(debit)
            self._save(credit)
        if kind:
            debit.debits_pending += amount
            credit.credits_pending += amount
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        stored = Transfer(
            t.id,
            debit_id,
            credit_id,
            amount,
            flags,
            0,
            timeout,
            t.code,
            t.ref,
            timestamp,
            debit.currency,
        )
        self.created[t.id] = stored
        self.changes.transfers_created.append(stored)
        if kind:
            self.state.load_pending(stored)
        if (debit.flags | credit.flags) & _HISTORY:
            self._record_history(debit, credit, timestamp)
        return TR.OK

    def _resolve_pending(self, t: Transfer, timestamp: int) -> TR:
        """Post or void the pending transfer ``t.pending_id``."""
        flags = int(t.flags)
        pending_id = t.pending_id
        if type(pending_id) is not int or pending_id == 0:
            return TR.PENDING_ID_REQUIRED
        if pending_id == t.id:
            return TR.PENDING_ID_MUST_BE_DIFFERENT
        if t.timeout != 0:
            return TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        debit_id = t.debit_account
        credit_id = t.credit_account
        if type(debit_id) is not int or not 0 <= debit_id < ID_MAX:
            return TR.DEBIT_ACCOUNT_INVALID
        if type(credit_id) is not int or not 0 <= credit_id < ID_MAX:
            return TR.CREDIT_ACCOUNT_INVALID
        if debit_id and debit_id == credit_id:
            return TR.ACCOUNTS_MUST_BE_DIFFERENT
        if type(t.amount) is not int or not 0 <= t.amount <= AMOUNT_MAX:
            return TR.AMOUNT_INVALID
        invalid = _check_code_ref(t)
        if invalid is not None:
            return invalid
        pending = self._lookup_transfer(pending_id) if pending_id < ID_MAX else None
        if pending is None:
            return TR.PENDING_TRANSFER_NOT_FOUND
        if not pending.flags & _PENDING:
            return TR.PENDING_TRANSFER_NOT_PENDING
        if debit_id and debit_id != pending.debit_account:
            return TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT
        if credit_id and credit_id != pending.credit_account:
            return TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT
        if flags & _POST:
            amount = t.amount or pending.amount
            if amount > pending.amount:
                return TR.EXCEEDS_PENDING_TRANSFER_AMOUNT
        else:
            if t.amount not in (0, pending.amount):
                return TR.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
            amount = pending.amount
        resolved = Transfer(
            t.id,
            pending.debit_account,
            pending.credit_account,
            amount,
            flags,
            pending_id,
            0,
            t.code,
            t.ref,
            timestamp,
            pending.currency,
        )
        existing = self._lookup_transfer(t.id)
        if existing is not None:
            return _compare_existing(resolved, existing)
        status = self.resolved.get(pending_id) or self.prefetched.pending_statuses.get(pending_id)
        if pending_id not in self.state.pending_open and status is None:
            # Not open, not resolved in this batch, no stored resolution: a pending transfer
            # created and rolled back inside this batch can't be here, so this is a store bug.
            raise InvariantViolation(f"pending transfer {pending_id} has no status")
        if status is PendingStatus.POSTED:
            return TR.PENDING_TRANSFER_ALREADY_POSTED
        if status is PendingStatus.VOIDED:
            return TR.PENDING_TRANSFER_ALREADY_VOIDED
        if status is PendingStatus.EXPIRED:
            return TR.PENDING_TRANSFER_EXPIRED
        if pending.timeout and pending.timestamp + pending.timeout * NS_PER_SECOND <= timestamp:
            return TR.PENDING_TRANSFER_EXPIRED
        debit = self.accounts[pending.debit_account]
        credit = self.accounts[pending.credit_account]
        if flags & _POST:
            if debit.debits_posted + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_DEBITS
            if credit.credits_posted + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_CREDITS
        self._save(debit)
        self._save(credit)
        debit.debits_pending -= pending.amount
        credit.credits_pending -= pending.amount
        if flags & _POST:
            # Posting moves at most the reserved amount, so no balance limit can be passed.
            debit.debits_posted += amount
            credit.credits_posted += amount
        self.created[t.id] = resolved
        self.changes.transfers_created.append(resolved)
        status = PendingStatus.POSTED if flags & _POST else PendingStatus.VOIDED
        self.resolved[pending_id] = status
        self.changes.pending_resolutions.append((pending_id, status, timestamp))
        if self.undo_balances is not None:
            self.undo_pending.append(pending)
        del self.state.pending_open[pending_id]
        if (debit.flags | credit.flags) & _HISTORY:
            self._record_history(debit, credit, timestamp)
        return TR.OK


def _check_code_ref(t: Transfer) -> TR | None:
    if type(t.code) is not int or not 0 <= t.code <= CODE_MAX:
        return TR.CODE_INVALID
    if type(t.ref) is not str or len(t.ref) > REF_LENGTH_MAX:
        return TR.REF_TOO_LONG
    return None


def _compare_existing(t: Transfer, existing: Transfer) -> TR:
    """Idempotency: the same id again is ``exists`` only if every submitted field matches."""
    if (
        t.debit_account == existing.debit_account
        and t.credit_account == existing.credit_account
        and t.amount == existing.amount
        and t.flags == existing.flags
        and t.pending_id == existing.pending_id
        and t.timeout == existing.timeout
        and t.code == existing.code
        and t.ref == existing.ref
    ):
        return TR.EXISTS
    return TR.EXISTS_WITH_DIFFERENT_FIELDS
