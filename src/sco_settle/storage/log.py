"""Log store: the ledger as an append-only log of packed, checksummed batches.

A commit is one record appended to one file and ``fdatasync``'d before ``commit_batch`` returns;
there is no other write on the commit path (no B-tree, no index, no second file). The state the
ledger decides against lives in memory as ``ledger.columnar.Tables`` (columns of accounts,
transfers, resolutions and history with hash indexes by id), rebuilt from the log at open. Reads
are served from those tables; the by-account index is built on the first read that needs it,
off the commit path, and extended lazily as batches arrive.

File layout (little-endian): a 16-byte file header (``SCOLEDG1``, version), then records. A record
is a 64-byte header (magic ``SCOB``, version, sequence number, last timestamp, first transfer row,
the length of each section, a CRC-32 of the payload and a CRC-32 of the header) and its payload:
the accounts created (JSON), the transfers (``TRANSFER_DTYPE`` rows, 64 bytes each), the non-empty
refs, the final counters of every touched account, the pending resolutions and the history
snapshots. Recovery needs no replay of rules: it loads each record into the tables
(``Tables.apply_record``).

Durability and recovery. A batch is acknowledged only after its record is written and the file
``fdatasync``'d. A crash can leave a torn last record (its header or payload incomplete or failing
its checksum); that record was never acknowledged, so the writer that opens the log next cuts it
off. A damaged record with a valid record after it is not a torn write but corruption, and the
store refuses to open rather than drop acknowledged batches.

Single writer: an exclusive ``flock`` on ``<path>.lock``, as ``SqliteStore``. Readers
(``readonly=True``) take no lock and read the records present when they open.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sco_settle.domain.account import Account, AccountBalance
from sco_settle.domain.transfer import PendingStatus, Transfer
from sco_settle.ledger.columnar import (
    BALANCE_DTYPE,
    HISTORY_DTYPE,
    RESOLUTION_DTYPE,
    TRANSFER_DTYPE,
    BatchRecord,
    Tables,
)
from sco_settle.ledger.state_machine import Changes
from sco_settle.ledger.store import StoredAccount
from sco_settle.storage.sqlite import LOG_FILE_MAGIC, StoreFormatError, StoreLockedError

FILE_MAGIC = LOG_FILE_MAGIC
FILE_VERSION = 1
_FILE_HEADER = struct.Struct("<8sII")
_RECORD_MAGIC = b"SCOB"
_RECORD = struct.Struct("<4sHHQqqIIIIIIII")
_PAGE_ROWS = 10_000
_CHUNKS_MAX = 8
assert _RECORD.size == 64


def is_log_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a log store (its first bytes are the file magic)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(FILE_MAGIC)) == FILE_MAGIC
    except OSError:
        return False


def encode_record(sequence: int, record: BatchRecord) -> bytes:
    accounts = (
        json.dumps([[str(a.id), *a[1:]] for a in record.accounts]).encode()
        if record.accounts
        else b""
    )
    refs = b""
    if record.refs:
        encoded = [ref.encode() for _, ref in record.refs]
        table = np.zeros((len(encoded), 2), np.uint32)
        table[:, 0] = [offset for offset, _ in record.refs]
        table[:, 1] = [len(item) for item in encoded]
        refs = struct.pack("<I", len(encoded)) + table.tobytes() + b"".join(encoded)
    payload = b"".join(
        (
            accounts,
            record.transfers.tobytes(),
            refs,
            record.balances.tobytes(),
            record.resolutions.tobytes(),
            record.history.tobytes(),
        )
    )
    header = _RECORD.pack(
        _RECORD_MAGIC,
        FILE_VERSION,
        0,
        sequence,
        record.last_timestamp,
        record.first_row,
        len(accounts),
        len(record.transfers),
        len(refs),
        len(record.balances),
        len(record.resolutions),
        len(record.history),
        zlib.crc32(payload),
        0,
    )
    header = header[:-4] + struct.pack("<I", zlib.crc32(header[:-4]))
    return header + payload


class _Torn(Exception):
    """The log ends here: an incomplete or damaged record."""


def _header_at(data: memoryview, offset: int) -> tuple[int, ...]:
    if len(data) - offset < _RECORD.size:
        raise _Torn("a record header is cut short")
    raw = data[offset : offset + _RECORD.size]
    fields = _RECORD.unpack(raw)
    if fields[0] != _RECORD_MAGIC or zlib.crc32(raw[:-4]) != fields[-1]:
        raise _Torn("a record header fails its checksum")
    return tuple(fields)


def _payload_size(fields: tuple[int, ...]) -> int:
    accounts, transfers, refs, balances, resolutions, history = fields[6:12]
    return (
        accounts
        + transfers * TRANSFER_DTYPE.itemsize
        + refs
        + balances * BALANCE_DTYPE.itemsize
        + resolutions * RESOLUTION_DTYPE.itemsize
        + history * HISTORY_DTYPE.itemsize
    )


def _decode(fields: tuple[int, ...], payload: memoryview) -> BatchRecord:
    accounts_bytes, transfers, refs_bytes, balances, resolutions, history = fields[6:12]
    at = 0

    def take(size: int) -> memoryview:
        nonlocal at
        part = payload[at : at + size]
        at += size
        return part

    accounts = [
        Account(int(item[0]), *item[1:])
        for item in json.loads(bytes(take(accounts_bytes)) or b"[]")
    ]
    rows = np.frombuffer(take(transfers * TRANSFER_DTYPE.itemsize), TRANSFER_DTYPE)
    refs: list[tuple[int, str]] = []
    if refs_bytes:
        blob = take(refs_bytes)
        (count,) = struct.unpack_from("<I", blob)
        table = np.frombuffer(blob[4 : 4 + 8 * count], np.uint32).reshape(count, 2)
        position = 4 + 8 * count
        for offset, size in table.tolist():
            refs.append((offset, bytes(blob[position : position + size]).decode()))
            position += size
    return BatchRecord(
        first_row=fields[5],
        accounts=accounts,
        transfers=rows,
        refs=refs,
        balances=np.frombuffer(take(balances * BALANCE_DTYPE.itemsize), BALANCE_DTYPE),
        resolutions=np.frombuffer(take(resolutions * RESOLUTION_DTYPE.itemsize), RESOLUTION_DTYPE),
        history=np.frombuffer(take(history * HISTORY_DTYPE.itemsize), HISTORY_DTYPE),
        last_timestamp=fields[4],
    )


class LogStore:
    """The ledger's store as a log (see the module docstring); ``path=None`` keeps it in memory
    only (no file, nothing survives the process: the in-memory benchmark)."""

    columnar = True

    def __init__(self, path: str | os.PathLike[str] | None, *, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.readonly = readonly
        self.tables = Tables()
        self.sequence = 0
        self.committed_timestamp = 0  # the last timestamp of the last committed record
        self.recovered_bytes_dropped = 0
        self._fd: int | None = None
        self._size = 0  # bytes of the log that are committed
        self._lock_file: int | None = None
        self._chunks: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        self._indexed = 0
        if self.path is None:
            if readonly:
                raise ValueError("an in-memory log store cannot be read-only")
            return
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no log at {self.path}")
            self._recover(truncate=False)
            return
        self._take_writer_lock()
        try:
            if not self.path.exists() or self.path.stat().st_size == 0:
                self._create()
            self._recover(truncate=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except BaseException:
            self.close()
            raise

    # -- setup and recovery -----------------------------------------------------------------

    def _take_writer_lock(self) -> None:
        assert self.path is not None
        lock_path = self.path.with_name(self.path.name + ".lock")
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            os.close(descriptor)
            raise StoreLockedError(f"{self.path} is open for writing by another process") from error
        self._lock_file = descriptor

    def _create(self) -> None:
        assert self.path is not None
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(descriptor, _FILE_HEADER.pack(FILE_MAGIC, FILE_VERSION, 0))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _recover(self, *, truncate: bool) -> None:
        """Load every complete record; cut a torn tail (writer only); refuse corruption."""
        assert self.path is not None
        data = memoryview(self.path.read_bytes())
        if len(data) < _FILE_HEADER.size:
            raise StoreFormatError(f"{self.path}: too short for a log")
        magic, version, _ = _FILE_HEADER.unpack(data[: _FILE_HEADER.size])
        if magic != FILE_MAGIC:
            raise StoreFormatError(f"{self.path} is not an SCO Settle log")
        if version != FILE_VERSION:
            raise StoreFormatError(f"{self.path}: unsupported log version {version}")
        offset = _FILE_HEADER.size
        tables = self.tables
        while offset < len(data):
            try:
                fields = _header_at(data, offset)
                end = offset + _RECORD.size + _payload_size(fields)
                if end > len(data):
                    raise _Torn("a record is cut short")
                payload = data[offset + _RECORD.size : end]
                if zlib.crc32(payload) != fields[12]:
                    if end < len(data):
                        raise StoreFormatError(
                            f"{self.path}: record {fields[3]} at byte {offset} fails its checksum"
                            " and is not the last one: the log is damaged"
                        )
                    raise _Torn("the last record fails its checksum")
            except _Torn:
                self._check_nothing_after(data, offset)
                break
            if fields[3] != self.sequence + 1:
                raise StoreFormatError(
                    f"{self.path}: record {fields[3]} at byte {offset} follows {self.sequence}"
                )
            record = _decode(fields, payload)
            tables.apply_record(record)
            self.committed_timestamp = max(self.committed_timestamp, record.last_timestamp)
            self.sequence = fields[3]
            offset = end
        self.recovered_bytes_dropped = len(data) - offset
        self._size = offset
        if truncate and offset < len(data):
            descriptor = os.open(self.path, os.O_WRONLY)
            try:
                os.ftruncate(descriptor, offset)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def _check_nothing_after(self, data: memoryview, offset: int) -> None:
        """A torn record is the last thing in the log; a valid record after it is corruption."""
        raw = bytes(data[offset + 1 :])
        at = raw.find(_RECORD_MAGIC)
        while at >= 0:
            try:
                _header_at(data, offset + 1 + at)
            except _Torn:
                at = raw.find(_RECORD_MAGIC, at + 1)
                continue
            raise StoreFormatError(
                f"{self.path}: a damaged record at byte {offset} is followed by valid records:"
                " the log is damaged"
            )

    # -- commits ----------------------------------------------------------------------------

    def commit_batch(self, record: BatchRecord) -> None:
        """Append the record and fdatasync: durable when this returns."""
        if self.readonly:
            raise PermissionError(f"{self.path} is open read-only")
        if record.is_empty():
            return
        if self.path is None:
            self.sequence += 1
            self.committed_timestamp = max(self.committed_timestamp, record.last_timestamp)
            return
        if self._fd is None:
            raise RuntimeError("the log store is closed")
        data = memoryview(encode_record(self.sequence + 1, record))
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fdatasync(self._fd)
        except BaseException:
            # Not durable: take the record back out, so that a reopen cannot find a batch that
            # was never acknowledged (after a failed fsync its bytes may still be in the file).
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
                os.fsync(self._fd)
            raise
        self._size += len(data)
        self.sequence += 1
        self.committed_timestamp = max(self.committed_timestamp, record.last_timestamp)

    def commit(self, changes: Changes) -> None:
        """The row-by-row port of the reference ledger. A log store is written by the compiled
        engine (``Ledger`` on a columnar store is a ``FastLedger``), through ``commit_batch``."""
        if self.readonly:
            raise PermissionError(f"{self.path} is open read-only")
        raise NotImplementedError("a log store is written through commit_batch (FastLedger)")

    # -- Store port: loading and prefetch -----------------------------------------------------

    def load_accounts(self) -> Iterator[StoredAccount]:
        tables = self.tables
        balances = tables.bal[: tables.n_acc].tolist()
        for account, balance in zip(list(tables.accounts), balances, strict=True):
            yield StoredAccount(account, *balance)

    iter_accounts = load_accounts

    def load_open_pending(self) -> Iterator[Transfer]:
        return iter(self.tables.transfers(self.tables.open_pending_rows()))

    def last_timestamp(self) -> int:
        return self.committed_timestamp

    def get_transfers(self, ids: Collection[int]) -> dict[int, Transfer]:
        rows = [row for row in self.tables.find_rows(list(ids)) if row >= 0]
        return {transfer.id: transfer for transfer in self.tables.transfers(rows)}

    def get_pending_statuses(self, ids: Collection[int]) -> dict[int, PendingStatus]:
        found: dict[int, PendingStatus] = {}
        ids = list(ids)
        status = self.tables.t_status
        for transfer_id, row in zip(ids, self.tables.find_rows(ids), strict=True):
            if row >= 0 and status[row] >= PendingStatus.POSTED:
                found[transfer_id] = PendingStatus(int(status[row]))
        return found

    # -- Store port: reads ------------------------------------------------------------------

    def _account_rows(self, index: int) -> npt.NDArray[np.int64]:
        """Rows debiting or crediting account ``index``, in timestamp order. The index is built
        here, on read, for the rows committed since the last read (off the commit path)."""
        tables = self.tables
        if self._indexed < tables.n_tr:
            first, end = self._indexed, tables.n_tr
            rows = np.arange(first, end, dtype=np.int64)
            keys = np.concatenate((tables.t_debit[first:end], tables.t_credit[first:end]))
            both = np.concatenate((rows, rows))
            order = np.lexsort((both, keys))
            self._chunks.append((keys[order], both[order]))
            self._indexed = end
            if len(self._chunks) > _CHUNKS_MAX:
                keys = np.concatenate([k for k, _ in self._chunks])
                both = np.concatenate([r for _, r in self._chunks])
                order = np.lexsort((both, keys))
                self._chunks = [(keys[order], both[order])]
        parts = []
        for keys, rows in self._chunks:
            start = int(np.searchsorted(keys, index, "left"))
            stop = int(np.searchsorted(keys, index, "right"))
            parts.append(rows[start:stop])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def get_account_transfers(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[Transfer]:
        index = self.tables.account_index.get(account_id)
        if index is None:
            return []
        rows = self._account_rows(index)
        stamps = self.tables.t_ts[rows]
        rows = rows[
            np.searchsorted(stamps, timestamp_min, "left") : np.searchsorted(
                stamps, timestamp_max, "right"
            )
        ]
        if reverse:
            rows = rows[::-1]
        return self.tables.transfers(rows[: max(limit, 0)])

    def get_account_history(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        tables = self.tables
        index = tables.account_index.get(account_id)
        if index is None:
            return []
        count = tables.n_hist
        stamps = tables.h_ts[:count]
        selected = np.flatnonzero(
            (tables.h_acc[:count] == index) & (stamps >= timestamp_min) & (stamps <= timestamp_max)
        )
        if reverse:
            selected = selected[::-1]
        selected = selected[: max(limit, 0)]
        return [
            AccountBalance(account_id, timestamp, *balance)
            for timestamp, balance in zip(
                stamps[selected].tolist(), tables.h_bal[selected].tolist(), strict=True
            )
        ]

    def iter_transfers(self) -> Iterator[Transfer]:
        count = self.tables.n_tr
        for start in range(0, count, _PAGE_ROWS):
            yield from self.tables.transfers(np.arange(start, min(start + _PAGE_ROWS, count)))

    def iter_pending_resolutions(self) -> Iterator[tuple[int, PendingStatus, int]]:
        tables = self.tables
        count = tables.n_res
        rows = tables.r_row[:count]
        ids = [
            lo | hi << 64
            for lo, hi in zip(tables.t_lo[rows].tolist(), tables.t_hi[rows].tolist(), strict=True)
        ]
        for pending_id, status, timestamp in zip(
            ids, tables.r_status[:count].tolist(), tables.r_ts[:count].tolist(), strict=True
        ):
            yield pending_id, PendingStatus(status), timestamp

    def count_transfers(self) -> int:
        return self.tables.n_tr

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None
