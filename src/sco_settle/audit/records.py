"""What the audit chain records of the payment records and of the API's tables. Pure.

A ``payment_records`` entry is written in the transaction of one ``PaymentRecords.record``: for
each payment recorded, its new outcome (status, reason, parties, currencies and amounts) and the
events appended to its life, each ``[status, detail]`` at the record's time ``at``. Replaying the
entries in chain order gives, per payment, exactly its ``payment_events`` rows in their order;
``audit.verify`` compares the two. The outcome is what the event stream publishes
(``events.messages``).

Key entries carry the key's public fields and ``secret_digest``: the SHA-256 of its stored secret
hash and signing secret together, never either of them, so a row whose secrets were swapped is
found without the chain holding a secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["KEY_FIELDS", "PaymentChange", "PaymentRecordsPayload", "key_secret_digest"]

# The api_keys columns a key entry states (besides ``secret_digest``), in this order.
KEY_FIELDS = (
    "key_id",
    "participant",
    "role",
    "label",
    "created_at",
    "expires_at",
    "revoked_at",
    "rotated_from",
    "rotated_to",
)


def key_secret_digest(secret_hash: str, signing_secret: str) -> str:
    return hashlib.sha256(f"{secret_hash}\x00{signing_secret}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PaymentChange:
    """One payment's new state and the events added to its life in one record."""

    payment_id: str
    status: str
    reason: str | None
    debtor_agent: str
    creditor_agent: str
    currency: str
    creditor_currency: str
    amount_sent_minor: int
    amount_delivered_minor: int
    amount_returned_minor: int
    events: tuple[tuple[str, str], ...]  # (status, detail), in order

    def as_dict(self) -> dict[str, object]:
        return {
            "payment_id": self.payment_id,
            "status": self.status,
            "reason": self.reason,
            "debtor_agent": self.debtor_agent,
            "creditor_agent": self.creditor_agent,
            "currency": self.currency,
            "creditor_currency": self.creditor_currency,
            "sent": self.amount_sent_minor,
            "delivered": self.amount_delivered_minor,
            "returned": self.amount_returned_minor,
            "events": [list(event) for event in self.events],
        }

    @classmethod
    def from_dict(cls, data: Any) -> PaymentChange:
        return cls(
            str(data["payment_id"]),
            str(data["status"]),
            None if data["reason"] is None else str(data["reason"]),
            str(data["debtor_agent"]),
            str(data["creditor_agent"]),
            str(data["currency"]),
            str(data["creditor_currency"]),
            int(data["sent"]),
            int(data["delivered"]),
            int(data["returned"]),
            tuple((str(status), str(detail)) for status, detail in data["events"]),
        )


@dataclass(frozen=True, slots=True)
class PaymentRecordsPayload:
    at: int  # The record's time (ledger ns), the ``at`` of every event it added.
    changes: tuple[PaymentChange, ...]

    def as_dict(self) -> dict[str, object]:
        return {"at": self.at, "payments": [change.as_dict() for change in self.changes]}

    @classmethod
    def from_dict(cls, data: Any) -> PaymentRecordsPayload:
        return cls(int(data["at"]), tuple(PaymentChange.from_dict(p) for p in data["payments"]))


def key_payload(fields: Sequence[object], secret_digest: str) -> dict[str, object]:
    """A key entry's payload from the ``KEY_FIELDS`` values of its row after the change."""
    assert len(fields) == len(KEY_FIELDS), fields
    return {**dict(zip(KEY_FIELDS, fields, strict=True)), "secret_digest": secret_digest}
