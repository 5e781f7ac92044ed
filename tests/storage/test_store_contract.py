"""The Store contract, run against every store: memory (the reference), SQLite and PostgreSQL.

A ledger must give the same results, and a reopened ledger the same state, whichever store it
runs on. Most tests reopen the ledger on purpose: the results after a reopen come from what the
store kept (prefetched transfers, pending statuses, open pending transfers, balances), not from
memory. Durable stores also have to refuse a second writer and keep a failed commit invisible.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from sco_settle.domain.account import Account
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import PendingStatus, Transfer, TransferFlags
from sco_settle.ledger import Ledger, LedgerClosedError
from sco_settle.ledger.invariants import verify
from sco_settle.ledger.state_machine import Changes
from sco_settle.storage import StoreLockedError

from .conftest import HISTORY

LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING)
VOID = int(TransferFlags.VOID_PENDING)

durable = pytest.mark.parametrize("store_factory", ["sqlite", "postgres"], indirect=True)


def snapshot(ledger):
    return {a.id: a.balance_tuple() for a in ledger.accounts()}


def reopen(ledger, store_factory, clock):
    ledger.close()
    return Ledger(store_factory(), clock)


def fund(ledger, account_id=2, amount=1_000, transfer_id=900):
    assert ledger.create_transfers([Transfer(transfer_id, 1, account_id, amount)]) == [TR.OK]


def store_contents(store):
    """Everything a store holds, through the read side of the port."""
    return {
        "accounts": list(store.load_accounts()),
        "open_pending": list(store.load_open_pending()),
        "last_timestamp": store.last_timestamp(),
        "transfers": list(store.iter_transfers()),
        "resolutions": list(store.iter_pending_resolutions()),
    }


def mixed_workload(ledger, clock):
    """Plain, linked (one failing chain), pending with post/void/expiry, on a history account."""
    fund(ledger, account_id=2, amount=5_000)
    fund(ledger, account_id=7, amount=5_000, transfer_id=901)
    batches = [
        [Transfer(10, 2, 3, 100), Transfer(11, 7, 3, 50, flags=PENDING, timeout=5)],
        [Transfer(12, 2, 3, 10, flags=LINKED), Transfer(13, 2, 99, 10)],  # Chain fails.
        [Transfer(14, flags=POST, pending_id=11, amount=20), Transfer(15, 2, 7, 30)],
        [Transfer(16, 2, 3, 40, flags=PENDING), Transfer(17, 7, 3, 5, flags=PENDING, timeout=2)],
        [Transfer(18, flags=VOID, pending_id=16), Transfer(19, 1, 6, 1_000)],
    ]
    for batch in batches:
        ledger.create_transfers(batch)
    clock.advance(3)
    assert ledger.expire_pending() == 1  # Transfer 17.
    ledger.create_transfers([Transfer(20, 7, 2, 1, flags=PENDING)])  # Stays open.


# -- result codes ----------------------------------------------------------------------------

RESULT_CASES = [
    (Transfer(10, 1, 2, 10), TR.OK),
    (Transfer(ID_MAX - 1, 1, 2, 10), TR.OK),
    (Transfer(10, 1, 2, AMOUNT_MAX + 1), TR.AMOUNT_INVALID),
    (Transfer(10, 99, 2, 10), TR.DEBIT_ACCOUNT_NOT_FOUND),
    (Transfer(10, 4, 2, 10), TR.CURRENCY_MISMATCH),
    (Transfer(10, 2, 3, 1_001), TR.EXCEEDS_CREDITS),
    (Transfer(10, 5, 4, 501), TR.EXCEEDS_CREDITS),
    (Transfer(10, 1, 6, 1_001), TR.EXCEEDS_DEBITS),
    (Transfer(900, 1, 2, 1_000), TR.EXISTS),  # The committed funding transfer, prefetched.
    (Transfer(900, 1, 2, 999), TR.EXISTS_WITH_DIFFERENT_FIELDS),
    (Transfer(10, flags=POST, pending_id=900), TR.PENDING_TRANSFER_NOT_PENDING),
    (Transfer(10, flags=VOID, pending_id=77), TR.PENDING_TRANSFER_NOT_FOUND),
]


@pytest.mark.parametrize(("transfer", "expected"), RESULT_CASES)
def test_result_codes_after_reopen(ledger, store_factory, clock, transfer, expected):
    fund(ledger)
    ledger = reopen(ledger, store_factory, clock)
    before = snapshot(ledger)
    assert ledger.create_transfers([transfer]) == [expected]
    after = snapshot(ledger)
    if expected is not TR.OK:
        assert after == before
    assert snapshot(reopen(ledger, store_factory, clock)) == after


def test_linked_chain_is_all_or_nothing_in_the_store(ledger, store_factory, clock):
    fund(ledger)
    results = ledger.create_transfers(
        [
            Transfer(10, 2, 3, 400, flags=LINKED),
            Transfer(11, 3, 7, 400, flags=LINKED | PENDING),
            Transfer(12, 2, 3, 700),  # 400 + 700 > 1,000: the chain fails.
            Transfer(13, 2, 3, 100),
        ]
    )
    assert results == [TR.LINKED_EVENT_FAILED, TR.LINKED_EVENT_FAILED, TR.EXCEEDS_CREDITS, TR.OK]
    ledger = reopen(ledger, store_factory, clock)
    assert set(ledger.store.get_transfers([10, 11, 12, 13])) == {13}
    assert list(ledger.store.load_open_pending()) == []
    assert snapshot(ledger)[2] == (0, 100, 0, 1_000)
    assert ledger.create_transfers([Transfer(10, 2, 3, 1), Transfer(11, 2, 3, 1)]) == [TR.OK, TR.OK]


def test_pending_post_void_and_expiry_across_reopens(ledger, store_factory, clock):
    fund(ledger)
    assert ledger.create_transfers(
        [
            Transfer(10, 2, 3, 300, flags=PENDING),
            Transfer(11, 2, 3, 200, flags=PENDING),
            Transfer(12, 2, 3, 100, flags=PENDING, timeout=10),
        ]
    ) == [TR.OK, TR.OK, TR.OK]
    ledger = reopen(ledger, store_factory, clock)
    assert [t.id for t in ledger.store.load_open_pending()] == [10, 11, 12]
    post, void = (
        Transfer(13, flags=POST, pending_id=10, amount=250),
        Transfer(14, flags=VOID, pending_id=11),
    )
    assert ledger.create_transfers([post, void]) == [TR.OK, TR.OK]
    ledger = reopen(ledger, store_factory, clock)
    assert ledger.store.get_pending_statuses([10, 11, 12, 99]) == {
        10: PendingStatus.POSTED,
        11: PendingStatus.VOIDED,
    }
    assert ledger.create_transfers([post, Transfer(15, flags=POST, pending_id=11)]) == [
        TR.EXISTS,
        TR.PENDING_TRANSFER_ALREADY_VOIDED,
    ]
    clock.advance(11)
    ledger = reopen(ledger, store_factory, clock)  # The timeout of 12 comes from the store.
    assert ledger.expire_pending() == 1
    ledger = reopen(ledger, store_factory, clock)
    assert ledger.create_transfers([Transfer(16, flags=VOID, pending_id=12)]) == [
        TR.PENDING_TRANSFER_EXPIRED
    ]
    assert list(ledger.store.load_open_pending()) == []
    assert [(i, s) for i, s, _ in ledger.store.iter_pending_resolutions()] == [
        (10, PendingStatus.POSTED),
        (11, PendingStatus.VOIDED),
        (12, PendingStatus.EXPIRED),
    ]
    assert snapshot(ledger)[2] == (0, 250, 0, 1_000)


# -- reads -----------------------------------------------------------------------------------


def test_account_transfers_and_history_pagination(ledger, store_factory, clock):
    fund(ledger, account_id=7, amount=10_000)
    for start in range(10, 40, 10):  # Three batches, 30 transfers; every third is a credit.
        batch = [
            Transfer(i, 3, 7, 1) if i % 3 == 0 else Transfer(i, 7, 3, 2)
            for i in range(start, start + 10)
        ]
        assert set(ledger.create_transfers(batch)) == {TR.OK}
    ledger = reopen(ledger, store_factory, clock)
    store = ledger.store
    every = store.get_account_transfers(7, limit=1_000)
    assert [t.id for t in every] == [900, *range(10, 40)]
    stamps = [t.timestamp for t in every]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    pages, after = [], 0
    while page := store.get_account_transfers(7, timestamp_min=after, limit=7):
        pages.append([t.id for t in page])
        after = page[-1].timestamp + 1
    assert [len(p) for p in pages] == [7, 7, 7, 7, 3]
    assert [i for page in pages for i in page] == [t.id for t in every]
    newest = store.get_account_transfers(7, reverse=True, limit=5)
    assert [t.id for t in newest] == [39, 38, 37, 36, 35]
    window = store.get_account_transfers(7, timestamp_min=stamps[3], timestamp_max=stamps[5])
    assert [t.id for t in window] == [12, 13, 14]
    assert store.get_account_transfers(99) == []
    history = store.get_account_history(7, limit=1_000)
    assert len(history) == 31 and history[0][2:] == (0, 0, 0, 10_000)
    assert history[-1] == ledger.get_account_history(7, reverse=True, limit=1)[0]
    assert history[-1][2:] == ledger.lookup_account(7).balance_tuple()
    middle = store.get_account_history(7, timestamp_min=stamps[1], timestamp_max=stamps[2])
    assert [h.timestamp for h in middle] == stamps[1:3]
    assert store.get_account_history(2) == []  # No history flag.


def test_extreme_values_round_trip(ledger, store_factory, clock):
    big = ID_MAX - 1
    ref = "Оплата по договору 合同付款 " * 5
    ref = ref[:140]
    assert ledger.create_accounts(
        [Account(big, "BKCHCNBJ", "CNY", "customer", flags=HISTORY, code=65535, ref=ref)]
    ) == ["ok"]
    transfer = Transfer(
        big, 1, big, AMOUNT_MAX, flags=PENDING, timeout=2**31 - 1, code=65535, ref=ref
    )
    assert ledger.create_transfers([transfer]) == [TR.OK]
    ledger = reopen(ledger, store_factory, clock)
    stored = ledger.store.get_transfers([big, 1, 5])
    assert list(stored) == [big]
    assert stored[big]._replace(timestamp=0, currency="") == transfer
    assert list(ledger.store.load_open_pending()) == [stored[big]]
    account = ledger.lookup_account(big)
    assert account.account.ref == ref and account.account.code == 65535
    assert account.balance_tuple() == (0, 0, AMOUNT_MAX, 0)
    assert ledger.store.get_account_history(big)[0][2:] == (0, 0, AMOUNT_MAX, 0)


def test_reopen_recovers_exactly(ledger, store_factory, clock):
    mixed_workload(ledger, clock)
    before_state = (snapshot(ledger), dict(ledger.state.pending_open), ledger.state.last_timestamp)
    before_store = store_contents(ledger.store)
    ledger = reopen(ledger, store_factory, clock)
    assert store_contents(ledger.store) == before_store
    assert (
        snapshot(ledger),
        dict(ledger.state.pending_open),
        ledger.state.last_timestamp,
    ) == before_state
    assert [t.id for t in before_store["transfers"]] == [
        900,
        901,
        10,
        11,
        14,
        15,
        16,
        17,
        18,
        19,
        20,
    ]
    if hasattr(ledger.store, "count_transfers"):
        assert ledger.store.count_transfers() == 11


def test_verify_passes(ledger, store_factory, clock):
    mixed_workload(ledger, clock)
    ledger.close()
    store = store_factory(readonly=True)
    report = verify(store)
    assert report.ok, report.violation
    assert (report.accounts, report.transfers, report.resolutions) == (7, 11, 3)
    assert report.currencies == {"CNY": (10_000 + 100 + 20 + 30 + 1_000, 1), "KZT": (0, 0)}


def test_a_batch_that_changes_nothing_stores_nothing(ledger, store_factory, clock):
    before = store_contents(ledger.store)
    assert ledger.create_transfers([Transfer(10, 2, 3, 1)]) == [TR.EXCEEDS_CREDITS]
    assert ledger.expire_pending() == 0
    assert store_contents(reopen(ledger, store_factory, clock).store) == before


# -- single writer ---------------------------------------------------------------------------


@durable
def test_second_writer_refused(ledger, store_factory, clock):
    with pytest.raises(StoreLockedError):
        store_factory()
    reader = store_factory(readonly=True)  # Readers take no lock.
    assert len(list(reader.load_accounts())) == 7
    with pytest.raises(PermissionError):
        reader.commit(Changes())
    ledger.close()
    Ledger(store_factory(), clock).close()  # Released by close.


_RACER = """
import sys
from sco_settle.storage import SqliteStore, StoreLockedError
kind, where, schema = sys.argv[1:4]
print("ready", flush=True)
sys.stdin.readline()
try:
    if kind == "sqlite":
        store = SqliteStore(where)
    else:
        from sco_settle.storage.postgres import PostgresStore
        store = PostgresStore(where, schema=schema)
except StoreLockedError:
    print("refused", flush=True)
else:
    print("writer", flush=True)
    sys.stdin.read()
    store.close()
"""


@durable
def test_two_processes_race_for_the_writer_lock(store_factory, clock):
    where = str(store_factory.location) if store_factory.kind == "sqlite" else store_factory.dsn
    command = [sys.executable, "-c", _RACER, store_factory.kind, where]
    command.append(getattr(store_factory, "schema", "-"))
    with contextlib.ExitStack() as stack:
        racers = [
            stack.enter_context(
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
            for _ in range(2)
        ]
        assert [r.stdout.readline().strip() for r in racers] == ["ready", "ready"]
        for racer in racers:  # Both are past their imports: release them together.
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outcomes = [r.stdout.readline().strip() for r in racers]
        assert sorted(outcomes) == ["refused", "writer"]
        with pytest.raises(StoreLockedError):
            store_factory()  # A third writer, in this process, while the winner lives.
        for racer in racers:
            racer.stdin.close()
            assert racer.wait(timeout=30) == 0
    Ledger(store_factory(), clock).close()  # The winner's exit released the lock.


# -- failed commits --------------------------------------------------------------------------


def insert_conflicting_transfer(store_factory, timestamp):
    """Write, behind the ledger's back, a transfer row holding ``timestamp`` (a primary key)."""
    columns = "id, debit_account, credit_account, amount, flags, timeout, code, ref, timestamp"
    row = ((77).to_bytes(16, "big"), (1).to_bytes(16, "big"), (2).to_bytes(16, "big"), timestamp)
    if store_factory.kind == "sqlite":
        with contextlib.closing(sqlite3.connect(store_factory.location)) as connection, connection:
            connection.execute(
                f"INSERT INTO transfers ({columns}, currency)"
                " VALUES (?, ?, ?, 1, 0, 0, 0, '', ?, 'CNY')",
                row,
            )
        return
    with psycopg.connect(store_factory.dsn, autocommit=True) as connection:
        connection.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(store_factory.schema))
        )
        connection.execute(
            f"INSERT INTO transfers ({columns}, currency)"
            " VALUES (%s, %s, %s, 1, 0, 0, 0, '', %s, 'CNY')",
            row,
        )


@durable
def test_commit_failing_midway_leaves_nothing_and_closes_the_ledger(ledger, store_factory, clock):
    fund(ledger)
    before_state = snapshot(ledger)
    before_store = store_contents(ledger.store)
    # The batch's second transfer will get timestamp last + 2: make that row exist already, so the
    # commit fails midway, after the first transfer's row was written in its transaction.
    conflict = ledger.state.last_timestamp + 2
    insert_conflicting_transfer(store_factory, conflict)
    batch = [Transfer(10, 2, 3, 100), Transfer(11, 2, 3, 200), Transfer(12, 2, 3, 300)]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        ledger.create_transfers(batch)
    with pytest.raises(LedgerClosedError):
        ledger.create_transfers([Transfer(13, 2, 3, 1)])
    # A ledger closed by a failed commit leaves its store open: release the writer lock here.
    ledger.store.close()
    reader = store_factory(readonly=True)
    contents = store_contents(reader)
    assert [t.id for t in contents["transfers"]] == [900, 77]  # Only the injected row is new.
    assert contents["accounts"] == before_store["accounts"]
    assert contents["last_timestamp"] == before_store["last_timestamp"]
    reader.close()
    ledger = Ledger(store_factory(), clock)
    assert snapshot(ledger) == before_state
    assert ledger.store.get_transfers([10, 11, 12]) == {}
    ledger.close()
