"""Every result code of create_accounts and create_transfers, each with the rule that yields it."""

from __future__ import annotations

import pytest

from sco_settle.domain.account import Account
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.domain.results import CreateAccountResult as AR
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.ledger import BATCH_EVENTS_MAX, BatchTooLargeError

from .conftest import CMNED, DMNEC

LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING)
VOID = int(TransferFlags.VOID_PENDING)


def balances(ledger, account_id):
    return ledger.lookup_account(account_id).balance_tuple()


def snapshot(ledger):
    return {a.id: a.balance_tuple() for a in ledger.accounts()}


def fund(ledger, account_id=2, amount=1_000, transfer_id=900):
    assert ledger.create_transfers([Transfer(transfer_id, 1, account_id, amount)]) == [TR.OK]


ACCOUNT_CASES = [
    (Account(0, "BKCHCNBJ", "CNY", "settlement"), AR.ID_INVALID),
    (Account(ID_MAX, "BKCHCNBJ", "CNY", "settlement"), AR.ID_INVALID),
    (Account(-5, "BKCHCNBJ", "CNY", "settlement"), AR.ID_INVALID),
    (Account(10, "BKCHCNBJ", "CNY", "settlement", flags=1 << 9), AR.FLAGS_UNKNOWN),
    (
        Account(10, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC | CMNED),
        AR.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
    ),
    (Account(10, "NOTABIC", "CNY", "settlement"), AR.PARTICIPANT_INVALID),
    (Account(10, "bkchcnbj", "CNY", "settlement"), AR.PARTICIPANT_INVALID),
    (Account(10, "BKCHCNBJ", "XYZ", "settlement"), AR.CURRENCY_INVALID),
    (Account(10, "BKCHCNBJ", "CNY", "piggy-bank"), AR.KIND_INVALID),
    (
        Account(10, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC, credit_limit=-1),
        AR.CREDIT_LIMIT_INVALID,
    ),
    (
        Account(10, "BKCHCNBJ", "CNY", "settlement", credit_limit=5),
        AR.CREDIT_LIMIT_REQUIRES_BALANCE_FLAG,
    ),
    (Account(10, "BKCHCNBJ", "CNY", "settlement", code=70_000), AR.CODE_INVALID),
    (Account(10, "BKCHCNBJ", "CNY", "settlement", ref="x" * 141), AR.REF_TOO_LONG),
    (Account(2, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC), AR.EXISTS),
    (Account(2, "BKCHCNBJ", "CNY", "nostro", flags=DMNEC), AR.EXISTS_WITH_DIFFERENT_FIELDS),
    (Account(10, "BKCHCNBJ", "CNY", "settlement"), AR.OK),
]


@pytest.mark.parametrize(("account", "expected"), ACCOUNT_CASES)
def test_create_account_result(ledger, account, expected):
    before = snapshot(ledger)
    assert ledger.create_accounts([account]) == [expected]
    if expected is not AR.OK:
        assert snapshot(ledger) == before


def test_linked_accounts_fail_together(ledger):
    results = ledger.create_accounts(
        [
            Account(20, "BKCHCNBJ", "CNY", "settlement", flags=1),
            Account(21, "BKCHCNBJ", "XXX", "settlement", flags=1),
            Account(22, "BKCHCNBJ", "CNY", "settlement"),
            Account(23, "BKCHCNBJ", "CNY", "settlement"),
        ]
    )
    assert results == [AR.LINKED_EVENT_FAILED, AR.CURRENCY_INVALID, AR.LINKED_EVENT_FAILED, AR.OK]
    assert ledger.lookup_account(20) is None and ledger.lookup_account(22) is None
    assert ledger.lookup_account(23) is not None


def test_open_account_chain(ledger):
    results = ledger.create_accounts(
        [
            Account(30, "BKCHCNBJ", "CNY", "settlement"),
            Account(31, "BKCHCNBJ", "CNY", "settlement", flags=1),
        ]
    )
    assert results == [AR.OK, AR.LINKED_EVENT_CHAIN_OPEN]
    assert ledger.lookup_account(31) is None


TRANSFER_CASES = [
    (Transfer(0, 1, 2, 10), TR.ID_INVALID),
    (Transfer(ID_MAX, 1, 2, 10), TR.ID_INVALID),
    (Transfer(-1, 1, 2, 10), TR.ID_INVALID),
    (Transfer(2**130, 1, 2, 10), TR.ID_INVALID),
    (Transfer(10, 1, 2, 10, flags=1 << 7), TR.FLAGS_UNKNOWN),
    (Transfer(10, 1, 2, 10, flags=PENDING | POST), TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
    (Transfer(10, 0, 2, 10), TR.DEBIT_ACCOUNT_INVALID),
    (Transfer(10, 1, 0, 10), TR.CREDIT_ACCOUNT_INVALID),
    (Transfer(10, 2, 2, 10), TR.ACCOUNTS_MUST_BE_DIFFERENT),
    (Transfer(10, 1, 2, 10, pending_id=5), TR.PENDING_ID_MUST_BE_ZERO),
    (Transfer(10, 1, 2, 10, timeout=5), TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
    (Transfer(10, 1, 2, 10, flags=PENDING, timeout=-1), TR.TIMEOUT_INVALID),
    (Transfer(10, 1, 2, 0), TR.AMOUNT_INVALID),
    (Transfer(10, 1, 2, -10), TR.AMOUNT_INVALID),
    (Transfer(10, 1, 2, AMOUNT_MAX + 1), TR.AMOUNT_INVALID),
    (Transfer(10, 1, 2, 10, code=-1), TR.CODE_INVALID),
    (Transfer(10, 1, 2, 10, ref="r" * 141), TR.REF_TOO_LONG),
    (Transfer(10, 99, 2, 10), TR.DEBIT_ACCOUNT_NOT_FOUND),
    (Transfer(10, 1, 99, 10), TR.CREDIT_ACCOUNT_NOT_FOUND),
    (Transfer(10, 4, 2, 10), TR.CURRENCY_MISMATCH),
    (Transfer(10, 2, 3, 1_001), TR.EXCEEDS_CREDITS),
    (Transfer(10, 5, 4, 501), TR.EXCEEDS_CREDITS),  # Credit limit 500 on an empty account.
    (Transfer(10, 5, 4, 500), TR.OK),
    (Transfer(10, 1, 6, 1_001), TR.EXCEEDS_DEBITS),  # Swap line: credits <= debits + 1,000.
    (Transfer(10, 1, 6, 1_000), TR.OK),
    (Transfer(10, 1, 2, 10), TR.OK),
]


@pytest.mark.parametrize(("transfer", "expected"), TRANSFER_CASES)
def test_create_transfer_result(ledger, transfer, expected):
    fund(ledger)
    before = snapshot(ledger)
    assert ledger.create_transfers([transfer]) == [expected]
    if expected is not TR.OK:
        assert snapshot(ledger) == before


def test_exists_and_exists_with_different_fields(ledger):
    fund(ledger)
    original = Transfer(10, 2, 3, 100, code=7, ref="invoice 1")
    assert ledger.create_transfers([original]) == [TR.OK]
    before = snapshot(ledger)
    assert ledger.create_transfers([original]) == [TR.EXISTS]
    for changed in (
        original._replace(amount=101),
        original._replace(credit_account=7),
        original._replace(code=8),
        original._replace(ref="invoice 2"),
        original._replace(flags=PENDING),
    ):
        assert ledger.create_transfers([changed]) == [TR.EXISTS_WITH_DIFFERENT_FIELDS]
    assert snapshot(ledger) == before
    # Inside one batch, the second occurrence of an id sees the first.
    assert ledger.create_transfers(
        [Transfer(11, 2, 3, 5), Transfer(11, 2, 3, 5), Transfer(11, 2, 3, 6)]
    ) == [
        TR.OK,
        TR.EXISTS,
        TR.EXISTS_WITH_DIFFERENT_FIELDS,
    ]


def test_overflows(ledger):
    # Overflow is checked before balance limits: a counter can never wrap past AMOUNT_MAX.
    assert ledger.create_transfers([Transfer(10, 1, 3, AMOUNT_MAX)]) == [TR.OK]
    assert ledger.create_transfers([Transfer(11, 1, 7, 1)]) == [TR.OVERFLOWS_DEBITS]
    assert ledger.create_transfers([Transfer(12, 1, 7, 1, flags=PENDING)]) == [TR.OK]
    assert ledger.create_transfers([Transfer(13, 4, 3, 1)]) == [TR.CURRENCY_MISMATCH]
    assert ledger.create_transfers([Transfer(14, 2, 3, 1)]) == [TR.OVERFLOWS_CREDITS]
    assert ledger.create_transfers([Transfer(15, 2, 3, 1, flags=PENDING)]) == [TR.EXCEEDS_CREDITS]
    assert ledger.create_transfers([Transfer(16, 3, 2, AMOUNT_MAX)]) == [TR.OK]
    assert ledger.create_transfers([Transfer(17, 3, 7, 1)]) == [TR.OVERFLOWS_DEBITS]


def test_linked_chain_is_all_or_nothing(ledger):
    fund(ledger)
    before = snapshot(ledger)
    results = ledger.create_transfers(
        [
            Transfer(10, 2, 3, 400, flags=LINKED),  # Would succeed alone.
            Transfer(11, 3, 7, 400, flags=LINKED | PENDING),  # Would succeed alone.
            Transfer(12, 2, 3, 700),  # 400 + 700 > 1,000: fails, so the chain fails.
            Transfer(13, 2, 3, 100),  # Not in the chain.
        ]
    )
    assert results == [TR.LINKED_EVENT_FAILED, TR.LINKED_EVENT_FAILED, TR.EXCEEDS_CREDITS, TR.OK]
    after = snapshot(ledger)
    assert after[2] == (0, 100, 0, 1_000) and after[3] == (0, 0, 0, 100)
    assert after[7] == before[7]
    # Ids of a failed chain are free to use again.
    assert ledger.create_transfers([Transfer(10, 2, 3, 1), Transfer(11, 2, 3, 1)]) == [TR.OK, TR.OK]


def test_linked_events_after_failure_are_not_run(ledger):
    fund(ledger)
    results = ledger.create_transfers(
        [
            Transfer(10, 2, 99, 1, flags=LINKED),
            Transfer(11, 2, 3, 1, flags=LINKED),
            Transfer(12, 2, 3, 1),
        ]
    )
    assert results == [TR.CREDIT_ACCOUNT_NOT_FOUND, TR.LINKED_EVENT_FAILED, TR.LINKED_EVENT_FAILED]


def test_linked_chain_open(ledger):
    fund(ledger)
    before = snapshot(ledger)
    results = ledger.create_transfers(
        [Transfer(10, 2, 3, 1, flags=LINKED), Transfer(11, 2, 3, 1, flags=LINKED)]
    )
    assert results == [TR.LINKED_EVENT_FAILED, TR.LINKED_EVENT_CHAIN_OPEN]
    assert snapshot(ledger) == before


def test_pending_post_in_full_and_in_part(ledger):
    fund(ledger)
    assert ledger.create_transfers([Transfer(10, 2, 3, 600, flags=PENDING)]) == [TR.OK]
    assert balances(ledger, 2) == (600, 0, 0, 1_000)
    assert ledger.create_transfers([Transfer(11, 2, 3, 500)]) == [TR.EXCEEDS_CREDITS]  # Reserved.
    assert ledger.create_transfers([Transfer(12, flags=POST, pending_id=10, amount=601)]) == [
        TR.EXCEEDS_PENDING_TRANSFER_AMOUNT
    ]
    assert ledger.create_transfers([Transfer(12, flags=POST, pending_id=10, amount=250)]) == [TR.OK]
    assert balances(ledger, 2) == (0, 250, 0, 1_000)
    assert balances(ledger, 3) == (0, 0, 0, 250)
    assert ledger.create_transfers([Transfer(12, flags=POST, pending_id=10, amount=250)]) == [
        TR.EXISTS
    ]
    assert ledger.create_transfers([Transfer(13, flags=POST, pending_id=10)]) == [
        TR.PENDING_TRANSFER_ALREADY_POSTED
    ]
    assert ledger.create_transfers([Transfer(14, flags=VOID, pending_id=10)]) == [
        TR.PENDING_TRANSFER_ALREADY_POSTED
    ]
    assert ledger.create_transfers(
        [Transfer(20, 2, 3, 100, flags=PENDING), Transfer(21, flags=POST, pending_id=20)]
    ) == [
        TR.OK,
        TR.OK,
    ]
    assert balances(ledger, 2) == (0, 350, 0, 1_000)


def test_void_and_resolution_codes(ledger):
    fund(ledger)
    assert ledger.create_transfers(
        [Transfer(10, 2, 3, 600, flags=PENDING), Transfer(11, 2, 3, 5)]
    ) == [TR.OK, TR.OK]
    cases = [
        (Transfer(12, flags=VOID), TR.PENDING_ID_REQUIRED),
        (Transfer(12, flags=VOID, pending_id=12), TR.PENDING_ID_MUST_BE_DIFFERENT),
        (
            Transfer(12, flags=VOID, pending_id=10, timeout=3),
            TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
        ),
        (Transfer(12, flags=VOID, pending_id=77), TR.PENDING_TRANSFER_NOT_FOUND),
        (Transfer(12, flags=VOID, pending_id=11), TR.PENDING_TRANSFER_NOT_PENDING),
        (
            Transfer(12, 3, flags=VOID, pending_id=10),
            TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT,
        ),
        (
            Transfer(12, 2, 7, flags=VOID, pending_id=10),
            TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT,
        ),
        (
            Transfer(12, flags=VOID, pending_id=10, amount=5),
            TR.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
        ),
        (Transfer(12, flags=VOID, pending_id=10, amount=-5), TR.AMOUNT_INVALID),
        (Transfer(12, 2, 3, flags=VOID, pending_id=10, amount=600), TR.OK),
        (Transfer(13, flags=POST, pending_id=10), TR.PENDING_TRANSFER_ALREADY_VOIDED),
    ]
    for transfer, expected in cases:
        before = snapshot(ledger)
        assert ledger.create_transfers([transfer]) == [expected], transfer
        if expected is not TR.OK:
            assert snapshot(ledger) == before
    assert balances(ledger, 2) == (0, 5, 0, 1_000)


def test_pending_timeout_expires(ledger, clock):
    fund(ledger)
    assert ledger.create_transfers([Transfer(10, 2, 3, 600, flags=PENDING, timeout=60)]) == [TR.OK]
    clock.advance(59)
    assert ledger.expire_pending() == 0
    assert balances(ledger, 2) == (600, 0, 0, 1_000)
    clock.advance(2)  # The pending transfer's timestamp is a few ns after the clock reading.
    # Expiry happens at the start of the next batch (or on expire_pending), before its events.
    assert ledger.create_transfers([Transfer(11, flags=POST, pending_id=10)]) == [
        TR.PENDING_TRANSFER_EXPIRED
    ]
    assert balances(ledger, 2) == (0, 0, 0, 1_000)
    assert ledger.create_transfers([Transfer(12, flags=VOID, pending_id=10)]) == [
        TR.PENDING_TRANSFER_EXPIRED
    ]


def test_expire_pending_explicitly(ledger, clock):
    fund(ledger)
    assert ledger.create_transfers([Transfer(10, 2, 3, 600, flags=PENDING, timeout=1)]) == [TR.OK]
    clock.advance(2)
    assert ledger.expire_pending() == 1
    assert balances(ledger, 2) == (0, 0, 0, 1_000)


def test_pending_created_and_posted_in_a_failed_chain_is_gone(ledger):
    fund(ledger)
    results = ledger.create_transfers(
        [
            Transfer(10, 2, 3, 100, flags=PENDING | LINKED),
            Transfer(11, flags=POST | LINKED, pending_id=10),
            Transfer(12, 2, 99, 1),
        ]
    )
    assert results == [TR.LINKED_EVENT_FAILED, TR.LINKED_EVENT_FAILED, TR.CREDIT_ACCOUNT_NOT_FOUND]
    assert ledger.create_transfers([Transfer(13, flags=POST, pending_id=10)]) == [
        TR.PENDING_TRANSFER_NOT_FOUND
    ]
    assert ledger.state.pending_open == {}


def test_history_and_account_transfers(ledger):
    fund(ledger, account_id=7)
    assert ledger.create_transfers(
        [Transfer(10, 7, 3, 100), Transfer(11, 7, 3, 50, flags=PENDING)]
    ) == [TR.OK, TR.OK]
    history = ledger.get_account_history(7)
    assert [h[2:] for h in history] == [(0, 0, 0, 1_000), (0, 100, 0, 1_000), (50, 100, 0, 1_000)]
    transfers = ledger.get_account_transfers(7)
    assert [t.id for t in transfers] == [900, 10, 11]
    assert [t.id for t in ledger.get_account_transfers(7, reverse=True, limit=2)] == [11, 10]
    page = ledger.get_account_transfers(7, timestamp_min=transfers[1].timestamp + 1)
    assert [t.id for t in page] == [11]


def test_timestamps_strictly_increase_even_if_clock_goes_back(ledger, clock):
    fund(ledger)
    first = ledger.create_transfers([Transfer(10, 2, 3, 1), Transfer(11, 2, 3, 1)])
    clock.now -= 10**12
    second = ledger.create_transfers([Transfer(12, 2, 3, 1)])
    assert first == [TR.OK, TR.OK] and second == [TR.OK]
    stamps = [t.timestamp for t in ledger.get_account_transfers(2)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_batch_too_large_is_refused_whole(ledger):
    before = snapshot(ledger)
    with pytest.raises(BatchTooLargeError):
        ledger.create_transfers([Transfer(10 + i, 1, 2, 1) for i in range(BATCH_EVENTS_MAX + 1)])
    assert snapshot(ledger) == before


def test_same_batch_same_state_same_results(store_factory, clock):
    from sco_settle.ledger import Ledger
    from sco_settle.storage import MemoryStore

    outcomes = []
    for _ in range(2):
        ledger = Ledger(MemoryStore(), type(clock)())
        ledger.create_accounts(
            [
                Account(1, "PBOCCNBJ", "CNY", "issuance"),
                Account(2, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC),
                Account(3, "ICBKCNBJ", "CNY", "settlement"),
            ]
        )
        batch = [
            Transfer(i, 1 + i % 2, 2 + i % 2, 10 + i, flags=PENDING if i % 3 == 0 else 0)
            for i in range(1, 50)
        ]
        outcomes.append(
            (ledger.create_transfers(batch), {a.id: a.balance_tuple() for a in ledger.accounts()})
        )
    assert outcomes[0] == outcomes[1]
