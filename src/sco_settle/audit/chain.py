"""The audit chain: entries, their canonical form and their hashes. Pure: no I/O, no clock.

Invariants:

- Each entry's ``hash`` is ``SHA-256(canonical_entry(seq, kind, actor, payload, prev_hash))``
  and its ``prev_hash`` is the hash of the entry before it (``GENESIS_HASH`` for seq 1). So an
  entry edited, deleted, inserted or moved breaks the chain at that point, and the head (last
  seq and hash, a *checkpoint*) commits to every entry before it.
- ``payload`` is stored as the exact canonical JSON text that was hashed
  (``canonical_json``): keys sorted, no spaces, ASCII only. A reader re-canonicalises it and
  flags a text that differs, so the JSON cannot be rewritten into an equivalent-looking form.
- Seqs start at 1 and increase by one: a gap is a deleted entry.

Why a hash chain and not a signature per entry: the chain needs no key to manage, and together
with a checkpoint kept outside the database (the server log, an export) it shows any change to
the history, which is what an auditor asks for. A signed checkpoint would add who vouches for it.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENESIS_HASH",
    "LEDGER_ACTOR",
    "PAYMENTS_ACTOR",
    "AuditEntry",
    "AuditKind",
    "Checkpoint",
    "canonical_entry",
    "canonical_json",
    "chain_entry",
    "entry_hash",
]

# The previous hash of the first entry: 64 zeros, so every entry has the same shape.
GENESIS_HASH = "0" * 64
_DOMAIN_TAG = b"sco-settle audit v1\x00"  # Hashes of other formats can never collide with ours.
# The actors of the entries the stores write: the ledger's commits and the payment records'.
LEDGER_ACTOR = "ledger"
PAYMENTS_ACTOR = "payments"


class AuditKind(enum.StrEnum):
    """What an entry records. Each kind's payload is described in docs/audit-and-events.md."""

    LEDGER_BATCH = "ledger_batch"  # Accounts, transfers and pending resolutions of one commit.
    PAYMENT_RECORDS = "payment_records"  # Outcomes and events of one ``record``.
    KEY_CREATED = "key_created"
    KEY_ROTATED = "key_rotated"
    KEY_REVOKED = "key_revoked"
    KEY_SECRET_UPGRADED = "key_secret_upgraded"  # A legacy argon2 hash replaced by its digest.
    NETTING_CYCLE = "netting_cycle"
    CONFIGURATION = "configuration"  # A server's configuration at its start.


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value`` that is hashed and stored: sorted keys, no whitespace,
    ASCII (so the text never depends on a Unicode table). Integers of any size stay integers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_entry(seq: int, kind: str, actor: str, payload: str, prev_hash: str) -> bytes:
    """The bytes an entry's hash covers: the tag, then a canonical JSON array of the fields
    (the payload as its canonical text, so no field can bleed into another)."""
    return _DOMAIN_TAG + canonical_json([seq, kind, actor, payload, prev_hash]).encode("ascii")


def entry_hash(seq: int, kind: str, actor: str, payload: str, prev_hash: str) -> str:
    return hashlib.sha256(canonical_entry(seq, kind, actor, payload, prev_hash)).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry as stored. ``kind`` is text: a stored row may carry a kind this code lacks."""

    seq: int
    kind: str
    actor: str
    payload: str  # Canonical JSON text.
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return entry_hash(self.seq, self.kind, self.actor, self.payload, self.prev_hash)

    def data(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of a chain: its last seq and that entry's hash (seq 0: the empty chain)."""

    seq: int
    hash: str

    def as_dict(self) -> dict[str, object]:
        return {"seq": self.seq, "hash": self.hash}

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
            raise ValueError("a checkpoint is a JSON object with an integer 'seq' and a 'hash'")
        digest = data.get("hash")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError("a checkpoint's 'hash' is 64 hexadecimal digits")
        return cls(data["seq"], digest)


def chain_entry(head: Checkpoint, kind: AuditKind, actor: str, payload: Any) -> AuditEntry:
    """The entry that follows ``head``, recording ``payload`` (any JSON value)."""
    assert head.seq >= 0 and len(head.hash) == 64, head
    text = canonical_json(payload)
    seq = head.seq + 1
    return AuditEntry(
        seq, kind.value, actor, text, head.hash, entry_hash(seq, kind.value, actor, text, head.hash)
    )
