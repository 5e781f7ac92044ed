"""The event stream's messages, made from audit entries and the rows they name. Pure.

Each audit entry of a ledger batch or of a payment record becomes a list of messages, in a
fixed order, and message ``n`` of entry ``seq`` has the id ``sco-<seq>-<n>``: the same id
however often the entry is published, so JetStream keeps one copy (``Nats-Msg-Id``) and a
consumer that saw an id once can drop it again.

Subjects are ``sco.events.<BIC>.<currency>``: a transfer is published once for each side, to the
debit account's participant and currency and to the credit account's; a payment's status once
to its debtor agent (in its currency) and once to its creditor agent (in the creditor
currency). So a participant's subjects carry its own events only.

A transfer message carries the change of the account's four counters (``delta``), so a
consumer rebuilds every balance, pending and posted, by adding them up: a pending transfer
moves the pending counters, a post moves the reservation's full amount out of pending and the
posted amount into posted, a void or an expiry releases the reservation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sco_settle.audit.records import PaymentRecordsPayload
from sco_settle.domain.transfer import PendingStatus, Transfer, TransferFlags

__all__ = [
    "SUBJECT_PREFIX",
    "AccountOwner",
    "EventMessage",
    "payment_messages",
    "subject_for",
    "transfer_messages",
]

SUBJECT_PREFIX = "sco.events"
# A subject token must be a BIC and a currency code: a refused payment may name anything.
_PARTICIPANT = re.compile(r"[A-Z0-9]{8}(?:[A-Z0-9]{3})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTERS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


@dataclass(frozen=True, slots=True)
class AccountOwner:
    participant: str
    currency: str


@dataclass(frozen=True, slots=True)
class EventMessage:
    subject: str
    msg_id: str
    body: dict[str, Any]


def subject_for(participant: str, currency: str) -> str:
    return f"{SUBJECT_PREFIX}.{participant}.{currency}"


def _delta(side: str, pending: int, posted: int) -> dict[str, int]:
    """The counters' change on one side: ``side`` is "debits" or "credits"."""
    delta = dict.fromkeys(_COUNTERS, 0)
    delta[f"{side}_pending"], delta[f"{side}_posted"] = pending, posted
    return delta


def _effect(transfer: Transfer, pendings: Mapping[int, Transfer]) -> tuple[int, int]:
    """(pending, posted) change of both sides' counters for ``transfer``."""
    flags = transfer.flags
    if flags & TransferFlags.PENDING:
        return transfer.amount, 0
    if flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING):
        reserved = pendings[transfer.pending_id].amount
        posted = transfer.amount if flags & TransferFlags.POST_PENDING else 0
        return -reserved, posted
    return 0, transfer.amount


def transfer_messages(
    seq: int,
    transfers: Sequence[Transfer],
    resolutions: Sequence[tuple[int, PendingStatus, int]],
    pendings: Mapping[int, Transfer],
    owners: Mapping[int, AccountOwner],
) -> list[EventMessage]:
    """Messages of a ledger batch: each transfer's two sides, then each expiry's two sides.

    ``pendings``: the pending transfers the batch posts, voids or expires, by id.
    """
    sides: list[tuple[int, dict[str, Any]]] = []
    for t in transfers:
        pending, posted = _effect(t, pendings)
        common = {
            "type": "transfer",
            "transfer_id": str(t.id),
            "timestamp": t.timestamp,
            "amount": t.amount,
            "flags": t.flags,
            "pending_id": str(t.pending_id) if t.pending_id else None,
            "code": t.code,
            "ref": t.ref,
        }
        for side, account, other in (
            ("debits", t.debit_account, t.credit_account),
            ("credits", t.credit_account, t.debit_account),
        ):
            body = {**common, "side": side[:-1], "counterparty_account_id": str(other)}
            sides.append((account, {**body, "delta": _delta(side, pending, posted)}))
    for pending_id, status, stamp in resolutions:
        if status is not PendingStatus.EXPIRED:
            continue  # Posts and voids are their transfers' messages.
        p = pendings[pending_id]
        common = {"type": "pending_expired", "pending_id": str(pending_id), "timestamp": stamp}
        for side, account in (("debits", p.debit_account), ("credits", p.credit_account)):
            body = {**common, "side": side[:-1], "delta": _delta(side, -p.amount, 0)}
            sides.append((account, body))
    return [
        _account_message(seq, n, owners[account], account, body)
        for n, (account, body) in enumerate(sides)
    ]


def _account_message(
    seq: int, n: int, owner: AccountOwner, account: int, body: dict[str, Any]
) -> EventMessage:
    full = {
        **body,
        "audit_seq": seq,
        "account_id": str(account),
        "participant": owner.participant,
        "currency": owner.currency,
    }
    return EventMessage(subject_for(owner.participant, owner.currency), f"sco-{seq}-{n}", full)


def payment_messages(seq: int, payload: PaymentRecordsPayload) -> list[EventMessage]:
    """Messages of a payment record: each payment's new status to both its agents."""
    messages: list[EventMessage] = []
    for change in payload.changes:
        body = {"type": "payment_status", "audit_seq": seq, "at": payload.at, **change.as_dict()}
        for role, participant, currency in (
            ("debtor", change.debtor_agent, change.currency),
            ("creditor", change.creditor_agent, change.creditor_currency),
        ):
            if not (_PARTICIPANT.fullmatch(participant) and _CURRENCY.fullmatch(currency)):
                continue  # Refused for naming no participant or currency: nobody to tell.
            n = len(messages)
            messages.append(
                EventMessage(
                    subject_for(participant, currency),
                    f"sco-{seq}-{n}",
                    {**body, "role": role, "participant": participant},
                )
            )
    return messages
