"""Model-based test: random batches against the ledger and a deliberately naive reference model.

The model keeps plain dicts and handles linked chains by deep-copying its state before a chain and
restoring the copy on failure, where the engine uses an undo log. After every step the results and
every balance must agree; ``check_totals`` and, at the end, the journal replay of ``verify`` must
pass. Steps include restarting the ledger from its SQLite file and moving the clock (expiry).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sco_settle.domain.account import Account
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import Ledger
from sco_settle.ledger.invariants import verify
from sco_settle.storage import SqliteStore

from .conftest import CMNED, DMNEC, SECOND, FakeClock

LINKED, PENDING, POST, VOID = 1, 2, 4, 8
ACCOUNT_IDS = list(range(1, 7))
CURRENCY_OF = {1: "CNY", 2: "CNY", 3: "CNY", 4: "CNY", 5: "KZT", 6: "KZT"}


class Model:
    def __init__(self) -> None:
        self.accounts: dict[int, dict] = {}
        self.transfers: dict[int, Transfer] = {}
        self.status: dict[int, str] = {}  # pending id -> open/posted/voided/expired
        self.last = 0

    def create_accounts(self, batch: list[Account], now: int) -> list[str]:
        base = max(now, self.last + 1)
        results = []
        for index, account in enumerate(batch):
            if account.id in self.accounts:
                same = self.accounts[account.id]["account"][:-1] == account[:-1]
                results.append("exists" if same else "exists_with_different_fields")
            else:
                self.accounts[account.id] = {
                    "account": account._replace(timestamp=base + index),
                    "balance": [0, 0, 0, 0],
                }
                results.append("ok")
        self.last = base + len(batch) - 1 if batch else self.last
        return results

    def create_transfers(self, batch: list[Transfer], now: int) -> list[str]:
        ts = max(now, self.last + 1)
        for pending_id in sorted(
            (p for p, s in self.status.items() if s == "open"),
            key=lambda p: (self._expires_at(p), p),
        ):
            if self._expires_at(pending_id) <= max(now, self.last + 1):
                pending = self.transfers[pending_id]
                self.accounts[pending.debit_account]["balance"][0] -= pending.amount
                self.accounts[pending.credit_account]["balance"][2] -= pending.amount
                self.status[pending_id] = "expired"
                ts += 1
        results: list[str] = []
        index = 0
        while index < len(batch):
            end = index
            while end < len(batch) and batch[end].flags & LINKED:
                end += 1
            if end == len(batch):  # An open chain fails whole.
                results += ["linked_event_failed"] * (end - index - 1) + ["linked_event_chain_open"]
                break
            chain = batch[index : end + 1]
            saved = copy.deepcopy((self.accounts, self.transfers, self.status))
            chain_results = []
            for offset, transfer in enumerate(chain):
                result = self._apply(transfer, ts + index + offset)
                if result != "ok":
                    if len(chain) > 1:
                        self.accounts, self.transfers, self.status = saved
                        chain_results = ["linked_event_failed"] * len(chain)
                        chain_results[offset] = result
                    else:
                        chain_results = [result]
                    break
                chain_results.append("ok")
            results += chain_results
            index = end + 1
        self.last = max(self.last, ts + len(batch) - 1)
        return results

    def _expires_at(self, pending_id: int) -> int:
        pending = self.transfers[pending_id]
        return pending.timestamp + pending.timeout * SECOND if pending.timeout else 2**70

    def _apply(self, t: Transfer, ts: int) -> str:
        if t.flags & (POST | VOID):
            return self._resolve(t, ts)
        if t.debit_account == t.credit_account:
            return "accounts_must_be_different"
        if not 0 < t.amount <= AMOUNT_MAX:
            return "amount_invalid"
        if t.debit_account not in self.accounts:
            return "debit_account_not_found"
        if t.credit_account not in self.accounts:
            return "credit_account_not_found"
        debit = self.accounts[t.debit_account]
        credit = self.accounts[t.credit_account]
        if debit["account"].currency != credit["account"].currency:
            return "currency_mismatch"
        if t.id in self.transfers:
            old = self.transfers[t.id]
            same = old[:9] == t[:9]
            return "exists" if same else "exists_with_different_fields"
        dr, cr = debit["balance"], credit["balance"]
        limit_dr, limit_cr = debit["account"].credit_limit, credit["account"].credit_limit
        if debit["account"].flags & DMNEC and dr[0] + dr[1] + t.amount > dr[3] + limit_dr:
            return "exceeds_credits"
        if credit["account"].flags & CMNED and cr[2] + cr[3] + t.amount > cr[1] + limit_cr:
            return "exceeds_debits"
        pending = bool(t.flags & PENDING)
        dr[0 if pending else 1] += t.amount
        cr[2 if pending else 3] += t.amount
        self.transfers[t.id] = t._replace(timestamp=ts, currency=debit["account"].currency)
        if pending:
            self.status[t.id] = "open"
        return "ok"

    def _resolve(self, t: Transfer, ts: int) -> str:
        if t.pending_id == t.id:
            return "pending_id_must_be_different"
        pending = self.transfers.get(t.pending_id)
        if pending is None:
            return "pending_transfer_not_found"
        if not pending.flags & PENDING:
            return "pending_transfer_not_pending"
        amount = t.amount or pending.amount
        if t.flags & POST and amount > pending.amount:
            return "exceeds_pending_transfer_amount"
        if t.flags & VOID and t.amount not in (0, pending.amount):
            return "pending_transfer_has_different_amount"
        if t.id in self.transfers:
            old = self.transfers[t.id]
            same = (old.amount, old.flags, old.pending_id, old.code, old.ref) == (
                amount,
                t.flags,
                t.pending_id,
                t.code,
                t.ref,
            )
            return "exists" if same else "exists_with_different_fields"
        status = self.status[t.pending_id]
        if status != "open":
            return {
                "posted": "pending_transfer_already_posted",
                "voided": "pending_transfer_already_voided",
                "expired": "pending_transfer_expired",
            }[status]
        if self._expires_at(t.pending_id) <= ts:
            return "pending_transfer_expired"
        dr = self.accounts[pending.debit_account]["balance"]
        cr = self.accounts[pending.credit_account]["balance"]
        dr[0] -= pending.amount
        cr[2] -= pending.amount
        if t.flags & POST:
            dr[1] += amount
            cr[3] += amount
        self.status[t.pending_id] = "posted" if t.flags & POST else "voided"
        self.transfers[t.id] = t._replace(
            debit_account=pending.debit_account,
            credit_account=pending.credit_account,
            amount=amount,
            timestamp=ts,
        )
        return "ok"


transfer_ids = st.integers(min_value=1, max_value=40)
amounts = st.one_of(st.integers(min_value=1, max_value=500), st.sampled_from([0, -3, 10**6]))


@st.composite
def plain_transfers(draw):
    flags = draw(st.sampled_from([0, 0, 0, PENDING]))
    return Transfer(
        draw(transfer_ids),
        draw(st.sampled_from([*ACCOUNT_IDS, 99])),
        draw(st.sampled_from(ACCOUNT_IDS)),
        draw(amounts),
        flags | draw(st.sampled_from([0, 0, LINKED])),
        timeout=draw(st.sampled_from([0, 1, 3])) if flags & PENDING else 0,
        code=draw(st.sampled_from([1, 2])),
    )


@st.composite
def resolving_transfers(draw):
    return Transfer(
        draw(transfer_ids),
        amount=draw(st.sampled_from([0, 0, 50, 100, 600])),
        flags=draw(st.sampled_from([POST, VOID])) | draw(st.sampled_from([0, 0, LINKED])),
        pending_id=draw(transfer_ids),
    )


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="sco-stateful-"))
        self.clock = FakeClock()
        self.ledger = Ledger(SqliteStore(self.directory / "l.db"), self.clock)
        self.model = Model()
        accounts = [
            Account(1, "PBOCCNBJ", "CNY", "issuance"),
            Account(2, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC),
            Account(3, "ICBKCNBJ", "CNY", "settlement", flags=DMNEC, credit_limit=200),
            Account(4, "NBRKKZKX", "CNY", "swap-line", flags=CMNED, credit_limit=300),
            Account(5, "NBRKKZKX", "KZT", "issuance"),
            Account(6, "HSBKKZKX", "KZT", "settlement", flags=DMNEC),
        ]
        self._check_accounts(accounts)

    def _check_accounts(self, batch):
        expected = self.model.create_accounts(batch, self.clock())
        assert [str(r) for r in self.ledger.create_accounts(batch)] == expected

    @rule(
        batch=st.lists(st.one_of(plain_transfers(), resolving_transfers()), min_size=1, max_size=8)
    )
    def create_transfers(self, batch):
        expected = self.model.create_transfers(batch, self.clock())
        actual = [str(r) for r in self.ledger.create_transfers(batch)]
        assert actual == expected, (batch, actual, expected)

    @rule(seconds=st.integers(min_value=0, max_value=3))
    def advance_clock(self, seconds):
        self.clock.advance(seconds)

    @rule()
    def restart(self):
        self.ledger.close()
        self.ledger = Ledger(SqliteStore(self.directory / "l.db"), self.clock)

    @precondition(lambda self: len(self.model.accounts) < 8)
    @rule(account_id=st.integers(min_value=2, max_value=8), constrained=st.booleans())
    def create_account(self, account_id, constrained):
        self._check_accounts(
            [Account(account_id, "BKCHCNBJ", "CNY", "customer", flags=DMNEC if constrained else 0)]
        )

    @invariant()
    def balances_agree(self):
        for account_id, entry in self.model.accounts.items():
            assert self.ledger.lookup_account(account_id).balance_tuple() == tuple(entry["balance"])
        self.ledger.state.check_totals()

    def teardown(self):
        self.ledger.close()
        store = SqliteStore(self.directory / "l.db", readonly=True)
        try:
            report = verify(store)
        finally:
            store.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        assert report.ok, report.violation


TestLedgerStateful = LedgerMachine.TestCase
TestLedgerStateful.settings = settings(
    max_examples=int(__import__("os").environ.get("SCO_STATEFUL_EXAMPLES", "60")),
    stateful_step_count=25,
    deadline=None,
    # Reproducible in CI; explore with --hypothesis-seed or SCO_STATEFUL_RANDOM=1.
    derandomize=not __import__("os").environ.get("SCO_STATEFUL_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow],
)
