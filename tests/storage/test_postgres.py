"""PostgreSQL-only guarantees: fencing of a writer that lost its lock, a connection lost in the
middle of a commit, durable session settings, and refusing schemas that are not ours."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import Ledger, LedgerClosedError
from sco_settle.ledger.invariants import verify
from sco_settle.ledger.state_machine import Changes
from sco_settle.storage.postgres import (
    SCHEMA_VERSION,
    PostgresStore,
    StoreFencedError,
    StoreFormatError,
    StoreLockedError,
)

from .conftest import ACCOUNTS

# The ledger fixture runs on the store kind chosen here.
on_postgres = pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)


def snapshot(ledger):
    return {a.id: a.balance_tuple() for a in ledger.accounts()}


@on_postgres
def test_writer_session_is_durable_and_locked(ledger, pg_admin):
    store = ledger.store
    assert store.connection.execute("SHOW synchronous_commit").fetchone() == ("on",)
    assert store.writer_epoch == 1
    locks = pg_admin.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted",
        (store.connection.info.backend_pid,),
    ).fetchone()
    assert locks == (1,)


@on_postgres
def test_a_writer_that_lost_its_lock_is_fenced(ledger, store_factory, clock):
    assert ledger.create_transfers([Transfer(900, 1, 2, 1_000)]) == [TR.OK]
    # The lock goes away while the session lives on (an operator, or a pooling proxy).
    ledger.store.connection.execute("SELECT pg_advisory_unlock_all()")
    newer = Ledger(store_factory(), clock)
    assert newer.store.writer_epoch == ledger.store.writer_epoch + 1
    with pytest.raises(StoreFencedError):
        ledger.create_transfers([Transfer(10, 2, 3, 600)])
    with pytest.raises(LedgerClosedError):
        ledger.create_transfers([Transfer(11, 2, 3, 1)])
    assert newer.create_transfers([Transfer(10, 2, 3, 400)]) == [TR.OK]
    assert newer.store.get_transfers([10])[10].amount == 400  # Not the fenced writer's 600.
    newer.close()
    reader = store_factory(readonly=True)
    assert verify(reader).ok


@on_postgres
def test_connection_lost_during_commit_leaves_nothing(ledger, store_factory, clock, pg_admin):
    assert ledger.create_transfers([Transfer(900, 1, 2, 1_000)]) == [TR.OK]
    before = snapshot(ledger)
    store = ledger.store
    update_balances = store._update_balances

    def killed_after_the_copy(cursor, balances):
        # The transfers are already COPYed into the open transaction when the session dies.
        pg_admin.execute("SELECT pg_terminate_backend(%s)", (store.connection.info.backend_pid,))
        update_balances(cursor, balances)

    store._update_balances = killed_after_the_copy
    with pytest.raises(psycopg.OperationalError):
        ledger.create_transfers([Transfer(10, 2, 3, 100), Transfer(11, 2, 3, 200)])
    with pytest.raises(LedgerClosedError):
        ledger.create_transfers([Transfer(12, 2, 3, 1)])
    ledger.store.close()
    ledger = Ledger(store_factory(), clock)  # The dead session's lock went with it.
    assert snapshot(ledger) == before
    assert ledger.store.get_transfers([10, 11]) == {}
    assert ledger.store.count_transfers() == 1
    assert ledger.create_transfers([Transfer(10, 2, 3, 100)]) == [TR.OK]


@on_postgres
def test_readonly_store_refuses_writes_at_the_server(ledger, store_factory):
    reader = store_factory(readonly=True)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader.connection.execute("UPDATE meta SET value = 0 WHERE key = 'last_timestamp'")
    with pytest.raises(PermissionError):
        reader.commit(Changes())


def test_readonly_needs_an_existing_store(postgres_dsn, pg_schema):
    with pytest.raises(StoreFormatError, match="no SCO Settle store"):
        PostgresStore(postgres_dsn, schema=pg_schema, readonly=True)


def test_refuses_a_schema_that_is_not_a_store(postgres_dsn, pg_schema, pg_admin):
    pg_admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
    pg_admin.execute(sql.SQL("CREATE TABLE {}.other (x int)").format(sql.Identifier(pg_schema)))
    with pytest.raises(StoreFormatError, match="not an SCO Settle store"):
        PostgresStore(postgres_dsn, schema=pg_schema)


@on_postgres
def test_refuses_a_newer_schema_version(ledger, store_factory, pg_admin):
    ledger.close()
    pg_admin.execute(
        sql.SQL("UPDATE {}.meta SET value = %s WHERE key = 'schema_version'").format(
            sql.Identifier(store_factory.schema)
        ),
        (SCHEMA_VERSION + 1,),
    )
    with pytest.raises(StoreFormatError, match="unsupported schema version"):
        store_factory()


def test_schema_names_are_plain_identifiers(postgres_dsn):
    with pytest.raises(ValueError, match="schema name"):
        PostgresStore(postgres_dsn, schema='x"; DROP TABLE y; --')


@on_postgres
def test_schemas_are_independent(ledger, postgres_dsn, pg_schema, clock):
    # Another schema in the same database has its own lock, epoch and contents.
    other = Ledger(PostgresStore(postgres_dsn, schema=pg_schema + "_b"), clock)
    try:
        assert other.store.writer_epoch == 1
        assert set(other.create_accounts(ACCOUNTS[:2])) == {"ok"}
        assert len(ledger.accounts()) == 7 and len(other.accounts()) == 2
    finally:
        other.close()
        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg_schema + "_b"))
            )


@on_postgres
def test_locked_error_names_the_schema(ledger, store_factory):
    with pytest.raises(StoreLockedError, match=store_factory.schema):
        store_factory()
