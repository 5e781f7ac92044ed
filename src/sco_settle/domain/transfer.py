"""Transfers: one debit and one credit of the same amount, in one currency.

Guarantees (kept by ``sco_settle.ledger``; see docs/reference/transfer.md):
- Transfers are immutable once created; corrections are new transfers.
- At most one transfer exists with a given id: the id is also the idempotency key.
- Timestamps are assigned by the ledger and strictly increase in creation order.
- A pending transfer resolves at most once: posted (in full or in part), voided, or expired.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class TransferFlags(enum.IntFlag):
    NONE = 0
    # Succeeds or fails together with the next transfer in the batch (chains end at the first
    # transfer without this flag). Payment-versus-payment is built on this.
    LINKED = 1 << 0
    # Reserve the amount (pending counters) instead of moving it.
    PENDING = 1 << 1
    # Resolve the pending transfer ``pending_id`` by moving all or part of its amount.
    POST_PENDING = 1 << 2
    # Resolve the pending transfer ``pending_id`` by releasing its reservation.
    VOID_PENDING = 1 << 3


TRANSFER_FLAG_NAMES: dict[str, TransferFlags] = {
    "linked": TransferFlags.LINKED,
    "pending": TransferFlags.PENDING,
    "post_pending": TransferFlags.POST_PENDING,
    "void_pending": TransferFlags.VOID_PENDING,
}


class Transfer(NamedTuple):
    """A transfer as submitted; ``timestamp`` and ``currency`` are filled in by the ledger.

    For post/void transfers, ``debit_account``/``credit_account`` may be 0 (take them from the
    pending transfer) and ``amount`` may be 0 (post: the whole pending amount; void: always the
    whole amount).
    """

    id: int
    debit_account: int = 0
    credit_account: int = 0
    amount: int = 0
    flags: int = 0
    pending_id: int = 0
    timeout: int = 0  # seconds; only for pending transfers; 0 means never expires
    code: int = 0
    ref: str = ""
    timestamp: int = 0
    currency: str = ""


class TextError(ValueError):
    """A text field (a transfer's ``ref``) that a store cannot keep."""


def check_text(text: str, *, field: str = "ref") -> str:
    """Return ``text`` if every store can keep it, else raise ``TextError``.

    Stores write text as UTF-8, so a lone UTF-16 surrogate (``"\\ud800"``, which JSON and Python
    strings allow) cannot be stored, and PostgreSQL text cannot hold NUL. Such a string must be
    refused where it enters (the JSON-lines codec, the API), never reach a commit: a failed commit
    stops the ledger. Length is not checked here: over ``REF_LENGTH_MAX`` the ledger answers
    ``ref_too_long``.
    """
    if "\x00" in text:
        raise TextError(f"{field} contains NUL")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise TextError(f"{field} is not valid Unicode (a lone surrogate)") from None
    return text


class PendingStatus(enum.IntEnum):
    PENDING = 1
    POSTED = 2
    VOIDED = 3
    EXPIRED = 4
