"""Store adapters for the ledger's Store port: in-memory (reference) and SQLite (embedded)."""

import os

from sco_settle.ledger.store import Store
from sco_settle.storage.memory import MemoryStore
from sco_settle.storage.sqlite import SqliteStore, StoreLockedError, is_log_file

__all__ = ["MemoryStore", "SqliteStore", "StoreLockedError", "open_database_file", "open_store"]


def open_store(url: str, *, readonly: bool = False) -> Store:
    """``sqlite:///PATH`` (or a plain path), ``postgresql://...`` or ``log:///PATH`` -> a Store.

    ``log:///PATH`` is the log store (``sco_settle.storage.log``): a ``Ledger`` on it runs the
    compiled engine. ``log://:memory:`` is the same without a file (nothing survives).
    """
    if url.startswith(("postgresql://", "postgres://")):
        from sco_settle.storage.postgres import PostgresStore

        return PostgresStore(url, readonly=readonly)
    if url.startswith("log://"):
        from sco_settle.storage.log import LogStore

        rest = url.removeprefix("log://")
        if rest == ":memory:":
            return LogStore(None)
        if not rest.startswith("/") or rest == "/":
            raise ValueError(f"{url!r}: write log:///relative/path or log:////absolute/path")
        return LogStore(rest[1:], readonly=readonly)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SqliteStore(path, readonly=readonly)


def open_database_file(path: str | os.PathLike[str], *, readonly: bool = False) -> Store:
    """The store in the file ``path``: a log store when the file starts with the log's magic
    bytes (``storage/log.py``), else SQLite. For the commands that take ``--db``."""
    if is_log_file(path):
        from sco_settle.storage.log import LogStore

        return LogStore(path, readonly=readonly)
    return SqliteStore(path, readonly=readonly)
