"""The write-ahead log of one node on the simulated disk: framed, checksummed records.

The ledger's store, the payment records and the idempotency records of a node append to one log,
as they share one SQLite file (and its WAL) in a deployment. Each record is one transaction of one
of them, told apart by a tag.

Frame: the payload's length (4 bytes, little-endian), its CRC-32 (4 bytes), then the payload: a
tag byte and the pickled record. ``open`` reads frames up to the first one that is short or fails
its checksum: a torn write, the last thing the dying machine wrote. That frame and whatever
follows are cut off (and the file truncated), so the next record follows the last whole one.

Invariants:
- A record is durable once an fsync after it returned: ``append(sync=True)`` fsyncs before it
  returns; ``append(sync=False)`` is made durable by the next synced append (the log is one file,
  written in order), as SQLite's ``synchronous=NORMAL`` commits are by the next ``FULL`` one.
- After a failed fsync the log refuses every further write (``failed``): what that fsync was to
  flush is in an unknown state, and retrying it could report success for data the kernel already
  dropped (PostgreSQL's "fsyncgate"). The node must restart and read back what survived.
- A failed write (a full disk) leaves no partial record behind: the file is cut back first.
"""

from __future__ import annotations

import errno
import pickle
import struct
import zlib
from typing import Any

from sco_settle.dst.disk import AFTER_FSYNC, AFTER_WRITE, BEFORE_WRITE, Faults, SimFile

TAG_LEDGER = 1  # a ledger commit (``ledger.state_machine.Changes``)
TAG_RECORDS = 2  # a payment records transaction
TAG_API = 3  # a transaction of the server's own tables (idempotency records)
_TAGS = (TAG_LEDGER, TAG_RECORDS, TAG_API)
_HEADER = struct.Struct("<II")
_WRITE_CALLS_MAX = 10_000  # a write loop that makes no progress is a bug, not a slow disk


class Wal:
    def __init__(self, file: SimFile, faults: Faults) -> None:
        self.file = file
        self.faults = faults
        self.failed = False
        self.truncated = 0  # bytes of torn tail cut off at open

    @classmethod
    def open(cls, file: SimFile, faults: Faults) -> tuple[Wal, list[tuple[int, Any]]]:
        """The log and its whole records, in order; a torn tail is cut off."""
        wal = cls(file, faults)
        records: list[tuple[int, Any]] = []
        data = file.data
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length
            if length == 0 or end > len(data):
                break
            payload = bytes(data[offset + _HEADER.size : end])
            if zlib.crc32(payload) != crc or payload[0] not in _TAGS:
                break
            records.append((payload[0], pickle.loads(payload[1:])))
            offset = end
        wal.truncated = len(data) - offset
        if wal.truncated:
            file.truncate(offset)
            file.synced = offset  # The cut is made durable before anything is appended.
        return wal, records

    def append(self, tag: int, record: Any, *, sync: bool) -> int:
        """Write one record; with ``sync``, make it (and all before it) durable. Returns the
        offset just past it: the record is durable once the file is synced that far."""
        assert tag in _TAGS, tag
        if self.failed:
            raise OSError(errno.EIO, "an earlier fsync failed: the node must restart")
        payload = bytes([tag]) + pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        self.faults.boundary(BEFORE_WRITE)
        self._write_all(frame)
        self.faults.boundary(AFTER_WRITE)
        end = len(self.file.data)
        if sync:
            try:
                self.file.fsync()
            except OSError:
                self.failed = True
                raise
            self.faults.boundary(AFTER_FSYNC)
        return end

    def _write_all(self, frame: bytes) -> None:
        """Write the whole frame, however many calls it takes; on a full disk, cut the partial
        frame off again and fail."""
        start = len(self.file.data)
        written = 0
        try:
            for _ in range(_WRITE_CALLS_MAX):
                if written == len(frame):
                    return
                written += self.file.write(frame[written:])
            raise AssertionError("a write made no progress")
        except OSError:
            self.file.truncate(start)
            raise
