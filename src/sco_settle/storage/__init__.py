"""Store adapters for the ledger's Store port: in-memory (reference) and SQLite (embedded)."""

from sco_settle.ledger.store import Store
from sco_settle.storage.memory import MemoryStore
from sco_settle.storage.sqlite import SqliteStore, StoreLockedError

__all__ = ["MemoryStore", "SqliteStore", "StoreLockedError", "open_store"]


def open_store(url: str, *, readonly: bool = False) -> Store:
    """``sqlite:///PATH`` (or a plain path) or ``postgresql://...`` -> a Store."""
    if url.startswith(("postgresql://", "postgres://")):
        from sco_settle.storage.postgres import PostgresStore

        return PostgresStore(url, readonly=readonly)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SqliteStore(path, readonly=readonly)
