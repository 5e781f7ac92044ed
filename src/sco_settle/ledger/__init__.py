"""The ledger: a deterministic state machine over accounts and transfers, behind a Store port."""

from sco_settle.ledger.ledger import BatchTooLargeError, Ledger, LedgerClosedError
from sco_settle.ledger.state_machine import BATCH_EVENTS_MAX, InvariantViolation
from sco_settle.ledger.store import Store

__all__ = [
    "BATCH_EVENTS_MAX",
    "BatchTooLargeError",
    "InvariantViolation",
    "Ledger",
    "LedgerClosedError",
    "Store",
]
