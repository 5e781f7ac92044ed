"""Verify an audit chain and the rows it explains. Pure: it is handed the rows, in order.

What is found, each as an ``AuditFinding`` naming the entry or the row:

- in the chain: an entry whose hash does not match its content (edited), an entry whose
  previous hash is not its predecessor's hash (inserted, deleted or reordered), a gap in the
  seqs (deleted), a payload that is not canonical JSON, a head that ends before an exported
  checkpoint or differs from it (truncated or rewritten);
- in the ledger: a batch whose rows (accounts, transfers, pending resolutions in its timestamp
  range) do not match its digest, and a row in no batch's range (not explained);
- in the payment records: a payment whose events differ from the events its entries appended
  (edited, deleted, inserted or reordered events), or that has events and no entry;
- in the API tables: a key or netting cycle whose row differs from its last entry, or that has
  no entry.

The verifier resynchronises after each broken link (it takes the stored hash as the next
expected one), so one edit is reported once, not as a cascade.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sco_settle.audit.chain import GENESIS_HASH, AuditEntry, AuditKind, Checkpoint, canonical_json
from sco_settle.audit.ledger_rows import ROW_KINDS, LedgerBatchPayload, rows_digest
from sco_settle.audit.records import KEY_FIELDS, PaymentRecordsPayload

__all__ = [
    "CYCLE_FIELDS",
    "AuditFinding",
    "AuditReport",
    "FindingKind",
    "LedgerRows",
    "TableRows",
    "verify_audit",
]

# Where the ledger timestamp sits in each row form (``audit.ledger_rows``).
_TIMESTAMP_COLUMN = {"accounts": 8, "transfers": 9, "resolutions": 2}
_KEY_KINDS = {
    AuditKind.KEY_CREATED.value,
    AuditKind.KEY_ROTATED.value,
    AuditKind.KEY_REVOKED.value,
    AuditKind.KEY_SECRET_UPGRADED.value,
}


class FindingKind(enum.StrEnum):
    ENTRY_EDITED = "entry_edited"
    ENTRY_OUT_OF_CHAIN = "entry_out_of_chain"  # Inserted, deleted before it, or reordered.
    ENTRIES_MISSING = "entries_missing"
    PAYLOAD_INVALID = "payload_invalid"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    LEDGER_ROWS_CHANGED = "ledger_rows_changed"
    LEDGER_ROW_UNEXPLAINED = "ledger_row_unexplained"
    PAYMENT_EVENTS_CHANGED = "payment_events_changed"
    PAYMENT_EVENTS_UNEXPLAINED = "payment_events_unexplained"
    ROW_CHANGED = "row_changed"  # A key or netting cycle.
    ROW_UNEXPLAINED = "row_unexplained"


@dataclass(frozen=True, slots=True)
class AuditFinding:
    kind: FindingKind
    detail: str
    seq: int | None = None  # The entry concerned, when there is one.

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "seq": self.seq, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class LedgerRows:
    """Each table's rows in timestamp order, in the row forms of ``audit.ledger_rows``."""

    accounts: Iterable[Sequence[Any]]
    transfers: Iterable[Sequence[Any]]
    resolutions: Iterable[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class TableRows:
    """The API tables' rows, or None where the database has none (a bare ledger file).

    ``payment_events``: (payment_id, status, at, detail) by payment id, then event order;
    ``keys``: the ``KEY_FIELDS`` values and the secret digest; ``cycles``: the
    ``api_netting_cycles`` columns with ``currencies`` and ``report`` decoded from JSON.
    """

    payment_events: Iterable[Sequence[Any]] | None = None
    keys: Iterable[Sequence[Any]] | None = None
    cycles: Iterable[Sequence[Any]] | None = None


@dataclass
class AuditReport:
    entries: int = 0
    head: Checkpoint = field(default_factory=lambda: Checkpoint(0, GENESIS_HASH))
    findings: list[AuditFinding] = field(default_factory=list)
    rows_checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head.as_dict(),
            "rows_checked": self.rows_checked,
            "findings": [finding.as_dict() for finding in self.findings],
        }


@dataclass
class _Explained:
    """What the chain states, gathered while it is walked."""

    batches: list[tuple[int, LedgerBatchPayload]] = field(default_factory=list)
    events: dict[str, tuple[int, Any]] = field(default_factory=dict)  # id -> (count, sha256)
    keys: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    cycles: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)


def verify_audit(
    entries: Iterable[AuditEntry],
    ledger: LedgerRows,
    tables: TableRows,
    checkpoint: Checkpoint | None = None,
) -> AuditReport:
    """Check the chain (against ``checkpoint`` when given) and every row against it."""
    report = AuditReport()
    explained = _Explained()
    _walk_chain(entries, report, explained, checkpoint)
    if checkpoint is not None and report.head.seq < checkpoint.seq:
        detail = (
            f"the chain ends at seq {report.head.seq} but the checkpoint is at seq"
            f" {checkpoint.seq}: entries were removed from the end (truncated)"
        )
        report.findings.append(AuditFinding(FindingKind.CHECKPOINT_MISMATCH, detail))
    report.findings += _check_ranges(explained.batches)
    for kind in ROW_KINDS:
        rows = _counted(report, kind, getattr(ledger, kind))
        report.findings += _check_ledger_rows(kind, explained.batches, rows)
    if tables.payment_events is not None:
        events = _counted(report, "payment_events", tables.payment_events)
        report.findings += _check_payment_events(explained.events, events)
    if tables.keys is not None:
        report.findings += _check_keys(explained.keys, _counted(report, "keys", tables.keys))
    if tables.cycles is not None:
        rows = _counted(report, "netting_cycles", tables.cycles)
        report.findings += _check_cycles(explained.cycles, rows)
    return report


def _counted(report: AuditReport, name: str, rows: Iterable[Any]) -> Iterator[Any]:
    report.rows_checked.setdefault(name, 0)
    for row in rows:
        report.rows_checked[name] += 1
        yield row


# -- the chain ----------------------------------------------------------------------------------


def _walk_chain(
    entries: Iterable[AuditEntry],
    report: AuditReport,
    explained: _Explained,
    checkpoint: Checkpoint | None,
) -> None:
    previous = Checkpoint(0, GENESIS_HASH)
    for entry in entries:
        report.entries += 1
        report.findings += _check_link(entry, previous)
        if checkpoint is not None and entry.seq == checkpoint.seq and entry.hash != checkpoint.hash:
            detail = "the entry at the checkpoint's seq has another hash (history rewritten)"
            report.findings.append(AuditFinding(FindingKind.CHECKPOINT_MISMATCH, detail, entry.seq))
        previous = Checkpoint(entry.seq, entry.hash)
        try:
            _gather(entry, explained)
        except (ValueError, KeyError, TypeError) as error:
            detail = f"payload of a {entry.kind} entry unreadable: {error!r}"
            report.findings.append(AuditFinding(FindingKind.PAYLOAD_INVALID, detail, entry.seq))
    report.head = previous


def _check_link(entry: AuditEntry, previous: Checkpoint) -> list[AuditFinding]:
    found = []
    if entry.seq != previous.seq + 1:
        found.append(
            AuditFinding(
                FindingKind.ENTRIES_MISSING,
                f"entries {previous.seq + 1}..{entry.seq - 1} are missing (deleted)"
                if entry.seq > previous.seq + 1
                else f"seq {entry.seq} follows seq {previous.seq} (reordered or duplicated)",
                entry.seq,
            )
        )
    if entry.hash != entry.expected_hash():
        found.append(
            AuditFinding(
                FindingKind.ENTRY_EDITED,
                f"{entry.kind} entry's hash does not match its content (edited)",
                entry.seq,
            )
        )
    elif entry.prev_hash != previous.hash:
        found.append(
            AuditFinding(
                FindingKind.ENTRY_OUT_OF_CHAIN,
                f"{entry.kind} entry does not follow the entry before it"
                " (inserted, reordered, or its predecessor deleted or rewritten)",
                entry.seq,
            )
        )
    return found


def _gather(entry: AuditEntry, explained: _Explained) -> None:
    data = json.loads(entry.payload)
    if canonical_json(data) != entry.payload:
        raise ValueError("not canonical JSON")
    if entry.kind == AuditKind.LEDGER_BATCH:
        explained.batches.append((entry.seq, LedgerBatchPayload.from_dict(data)))
    elif entry.kind == AuditKind.PAYMENT_RECORDS:
        payload = PaymentRecordsPayload.from_dict(data)
        for change in payload.changes:
            count, digest = explained.events.get(change.payment_id, (0, hashlib.sha256()))
            for status, detail in change.events:
                digest.update(_event_line(status, payload.at, detail))
            explained.events[change.payment_id] = (count + len(change.events), digest)
    elif entry.kind in _KEY_KINDS:
        explained.keys[str(data["key_id"])] = (entry.seq, data)
    elif entry.kind == AuditKind.NETTING_CYCLE:
        explained.cycles[int(data["cycle_id"])] = (entry.seq, data)


# -- the ledger ---------------------------------------------------------------------------------


def _check_ranges(batches: Sequence[tuple[int, LedgerBatchPayload]]) -> list[AuditFinding]:
    found = []
    for (_, before), (seq, batch) in itertools.pairwise(batches):
        if batch.timestamp_min <= before.timestamp_max:
            detail = "ledger batch's timestamps overlap the batch before it"
            found.append(AuditFinding(FindingKind.PAYLOAD_INVALID, detail, seq))
    return found


def _check_ledger_rows(
    kind: str, batches: Sequence[tuple[int, LedgerBatchPayload]], rows: Iterable[Sequence[Any]]
) -> list[AuditFinding]:
    """Cut ``rows`` (in timestamp order) at the batches' ranges and compare each digest."""
    column = _TIMESTAMP_COLUMN[kind]
    found: list[AuditFinding] = []
    index, current = 0, list[Sequence[Any]]()
    for row in rows:
        stamp = row[column]
        while index < len(batches) and batches[index][1].timestamp_max < stamp:
            found += _compare_batch(kind, batches[index], current)
            index, current = index + 1, []
        if index < len(batches) and batches[index][1].timestamp_min <= stamp:
            current.append(row)
        else:
            detail = f"{kind[:-1]} {row[0]} (timestamp {stamp}) is in no audited batch"
            found.append(AuditFinding(FindingKind.LEDGER_ROW_UNEXPLAINED, detail))
    for batch in batches[index:]:
        found += _compare_batch(kind, batch, current)
        current = []
    return found


def _compare_batch(
    kind: str, batch: tuple[int, LedgerBatchPayload], rows: Sequence[Sequence[Any]]
) -> list[AuditFinding]:
    seq, payload = batch
    expected, actual = payload.digests[kind], rows_digest(rows)
    if actual == expected:
        return []
    detail = (
        f"{kind} of the ledger batch at timestamps {payload.timestamp_min}..{payload.timestamp_max}"
        f" do not match it: {actual.count} rows stored, {expected.count} committed"
        + (" (rows edited)" if actual.count == expected.count else " (rows inserted or deleted)")
    )
    return [AuditFinding(FindingKind.LEDGER_ROWS_CHANGED, detail, seq)]


# -- payment events, keys, cycles -----------------------------------------------------------------


def _event_line(status: str, at: int, detail: str) -> bytes:
    return canonical_json([status, at, detail]).encode("ascii") + b"\n"


def _check_payment_events(
    explained: dict[str, tuple[int, Any]], rows: Iterable[Sequence[Any]]
) -> list[AuditFinding]:
    """``rows``: (payment_id, status, at, detail) grouped by payment, in event order."""
    found: list[AuditFinding] = []
    seen: dict[str, tuple[int, Any]] = {}
    for payment_id, status, at, detail in rows:
        count, digest = seen.get(payment_id, (0, hashlib.sha256()))
        digest.update(_event_line(status, at, detail))
        seen[payment_id] = (count + 1, digest)
    for payment_id in sorted(seen.keys() | explained.keys()):
        stored, stated = seen.get(payment_id), explained.get(payment_id)
        if stated is None:
            detail = f"payment {payment_id}: {stored[0] if stored else 0} events, no entry"
            found.append(AuditFinding(FindingKind.PAYMENT_EVENTS_UNEXPLAINED, detail))
        elif stored is None or (stored[0], stored[1].digest()) != (stated[0], stated[1].digest()):
            detail = (
                f"payment {payment_id}: {stored[0] if stored else 0} events stored,"
                f" {stated[0]} recorded in the chain (edited, deleted, inserted or reordered)"
            )
            found.append(AuditFinding(FindingKind.PAYMENT_EVENTS_CHANGED, detail))
    return found


def _check_keys(
    explained: dict[str, tuple[int, dict[str, Any]]], rows: Iterable[Sequence[Any]]
) -> list[AuditFinding]:
    stored = {
        str(row[0]): {**dict(zip(KEY_FIELDS, row, strict=False)), "secret_digest": row[-1]}
        for row in rows
    }
    return _compare_rows("key", explained, stored)


def _check_cycles(
    explained: dict[int, tuple[int, dict[str, Any]]], rows: Iterable[Sequence[Any]]
) -> list[AuditFinding]:
    stored = {int(row[0]): dict(zip(CYCLE_FIELDS, row, strict=True)) for row in rows}
    return _compare_rows("netting cycle", explained, stored)


CYCLE_FIELDS = (
    "cycle_id", "kind", "currencies", "requested_by", "started_at", "finished_at", "report",
)  # fmt: skip


def _compare_rows(
    what: str, explained: dict[Any, tuple[int, dict[str, Any]]], stored: dict[Any, dict[str, Any]]
) -> list[AuditFinding]:
    found = []
    for key in sorted(stored.keys() | explained.keys(), key=str):
        row, stated = stored.get(key), explained.get(key)
        if stated is None:
            found.append(AuditFinding(FindingKind.ROW_UNEXPLAINED, f"{what} {key} has no entry"))
        elif row is None:
            detail = f"{what} {key} is in the chain but not stored (deleted)"
            found.append(AuditFinding(FindingKind.ROW_CHANGED, detail, stated[0]))
        elif any(canonical_json(row[name]) != canonical_json(stated[1].get(name)) for name in row):
            detail = f"{what} {key} differs from its last entry (edited)"
            found.append(AuditFinding(FindingKind.ROW_CHANGED, detail, stated[0]))
    return found
