"""Store adapters for the ledger's Store port: in-memory (reference) and SQLite (embedded)."""

from sco_settle.storage.memory import MemoryStore
from sco_settle.storage.sqlite import SqliteStore, StoreLockedError

__all__ = ["MemoryStore", "SqliteStore", "StoreLockedError"]
