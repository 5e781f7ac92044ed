"""The server's own tables (API keys, idempotency records, netting cycles), in SQLite or PostgreSQL.

The ledger's Store port does not hold these: they are facts about the API, not about money. They
live beside the ledger so that one backup holds both (see ``config`` for where exactly):

- SQLite: tables ``api_*`` in the ledger's database file. The file is created as a ledger store
  first (``SqliteStore`` refuses a file holding foreign tables), so ``sco-settle keys create`` may
  run before the first ``serve``.
- PostgreSQL: the schema ``<schema>_api`` of the ledger's database, beside the store's schema (a
  separate schema, because ``PostgresStore`` refuses a schema holding foreign tables).

Durability: key changes are committed synchronously (a revocation survives a power cut).
Idempotency records are committed without waiting for the disk (SQLite ``synchronous=NORMAL``,
PostgreSQL ``synchronous_commit=off``): losing the last ones in a power cut is safe, because the
effect they describe is idempotent by itself (transfer ids, payment ids), so a retried request
finds it and answers ``exists`` / ``duplicate`` instead of moving money twice.

Failover (``server.ha``, docs/deployment-ha.md): a reader connection that a failover broke is
dropped, never pooled again. In HA mode every write is committed as durable ones are
(``always_durable``): an idempotency record committed without waiting could be missing on the
promoted standby, and a retry would then run again and get an answer of its own (a payment's
first outcome, but as ``duplicate``) instead of the acknowledged one.

Every statement here is a primary-key read or write, or a bounded range.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sco_settle.server.config import Database, DatabaseKind

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS api_meta (
    key TEXT PRIMARY KEY,
    value {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    signing_secret TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at {int} NOT NULL,
    expires_at {int},
    revoked_at {int},
    rotated_from TEXT,
    rotated_to TEXT
);
CREATE TABLE IF NOT EXISTS api_idempotency (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status {int} NOT NULL,
    media_type TEXT NOT NULL,
    body {blob} NOT NULL,
    created_at {int} NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX IF NOT EXISTS api_idempotency_by_age ON api_idempotency (created_at);
CREATE TABLE IF NOT EXISTS api_netting_cycles (
    cycle_id {int} PRIMARY KEY,
    kind TEXT NOT NULL,
    currencies TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    started_at {int} NOT NULL,
    finished_at {int} NOT NULL,
    report TEXT NOT NULL
);
"""


class StateDb:
    """A tiny SQL adapter: statements are written with ``?`` placeholders for both dialects.

    Reads (``execute``) use connections of their own, one per thread for SQLite and a small pool
    for PostgreSQL, so they never wait behind a write. Writes (``transaction``) use one
    connection under a lock; in the server they are made by the ledger's writer thread, which
    also commits the ledger, so a SQLite file never has two writers waiting on each other.
    """

    def __init__(self, database: Database, *, readers_max: int = 4) -> None:
        self.database = database
        self.kind = database.kind
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[Any] = []
        self._readers_lock = threading.Lock()
        self._pool: queue.Queue[Any] = queue.Queue()
        self._pool_slots = threading.BoundedSemaphore(readers_max)
        if database.kind is DatabaseKind.SQLITE:
            self._connection: Any = _open_sqlite(database)
            types = {"int": "INTEGER", "blob": "BLOB"}
        else:
            self._connection = _open_postgres(database)
            types = {"int": "BIGINT", "blob": "BYTEA"}
        with self.transaction(durable=True) as execute:
            for statement in _DDL.format(**types).split(";"):
                if statement.strip():
                    execute(statement)
            rows = execute("SELECT value FROM api_meta WHERE key = 'schema_version'")
            if not rows:
                execute("INSERT INTO api_meta (key, value) VALUES ('schema_version', ?)", (1,))
            elif rows[0][0] != SCHEMA_VERSION:
                raise RuntimeError(f"API tables are at version {rows[0][0]}, expected 1")

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.kind is DatabaseKind.POSTGRES else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read-only statement on a reader connection; the rows it returned."""
        if self.kind is DatabaseKind.SQLITE:
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = _open_sqlite_reader(self.database)
                self._local.connection = connection
                with self._readers_lock:
                    self._readers.append(connection)
            return _rows(connection.execute(statement, tuple(params)))
        with self._pool_slots:
            try:
                connection = self._pool.get_nowait()
            except queue.Empty:
                connection = _open_postgres(self.database)
                with self._readers_lock:
                    self._readers.append(connection)
            try:
                return _rows(connection.execute(self._sql(statement), tuple(params)))
            finally:
                if connection.broken:  # The server went away (a failover): never reuse it.
                    with self._readers_lock:
                        self._readers.remove(connection)
                    connection.close()
                else:
                    self._pool.put(connection)

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[Any]:
        """Run statements atomically on the write connection; ``durable`` waits for the disk."""
        with self._write_lock:
            connection = self._connection
            if self.kind is DatabaseKind.SQLITE:
                if durable:
                    connection.execute("PRAGMA synchronous=FULL")
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield lambda s, p=(): _rows(connection.execute(s, tuple(p)))
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
                finally:
                    if durable:
                        connection.execute("PRAGMA synchronous=NORMAL")
            else:
                with connection.transaction():
                    if durable:
                        connection.execute("SET LOCAL synchronous_commit = on")
                    yield lambda s, p=(): _rows(connection.execute(self._sql(s), tuple(p)))

    def always_durable(self) -> None:
        """Commit every write from now on as ``durable`` ones are (PostgreSQL: with the
        synchronous standby; SQLite has none, so nothing changes there)."""
        if self.kind is DatabaseKind.POSTGRES:
            with self._write_lock:
                self._connection.execute("SET synchronous_commit = on")

    def close(self) -> None:
        with self._write_lock:
            self._connection.close()
        with self._readers_lock:
            for connection in self._readers:
                connection.close()
            self._readers.clear()


def _rows(cursor: Any) -> list[tuple[Any, ...]]:
    if cursor.description is None:
        return []
    return [tuple(row) for row in cursor.fetchall()]


def _open_sqlite(database: Database) -> sqlite3.Connection:
    from sco_settle.storage.sqlite import SqliteStore

    assert database.path is not None
    path = database.path
    if not _has_ledger_tables(path):
        SqliteStore(path).close()  # Lay out the ledger first: it refuses files with other tables.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _open_sqlite_reader(database: Database) -> sqlite3.Connection:
    assert database.path is not None
    # Used by one thread only; closed by ``StateDb.close`` from another, hence no thread check.
    return sqlite3.connect(database.path, isolation_level=None, check_same_thread=False, timeout=30)


def _has_ledger_tables(path: Any) -> bool:
    if not path.exists():
        return False
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    finally:
        connection.close()
    return any(name == "meta" for (name,) in rows)


def _open_postgres(database: Database) -> Any:
    import psycopg
    from psycopg import sql

    connection = psycopg.connect(
        database.dsn, autocommit=True, application_name=f"sco-settle api {database.schema}"
    )
    try:
        schema = sql.Identifier(database.api_schema)
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        connection.execute(sql.SQL("SET search_path TO {}").format(schema))
        connection.execute("SET synchronous_commit = off")
    except BaseException:
        connection.close()
        raise
    return connection
