"""The simulated disk and the log on it: what a crash keeps, and how the log copes with torn,
short and failed writes."""

from __future__ import annotations

import errno
import random

import pytest

from sco_settle.dst.disk import FaultProfile, Faults, SimClock, SimFile
from sco_settle.dst.wal import TAG_LEDGER, TAG_RECORDS, Wal


def disk(profile: FaultProfile | None = None) -> tuple[SimFile, Faults]:
    faults = Faults(random.Random(1), profile or FaultProfile(), SimClock())
    faults.enabled = True
    return SimFile(faults), faults


def test_a_torn_tail_is_cut_off_and_the_log_goes_on_after_the_last_whole_record():
    file, faults = disk()
    wal, _ = Wal.open(file, faults)
    for number in range(3):
        wal.append(TAG_LEDGER, ("batch", number), sync=True)
    whole = len(file.data)
    wal.append(TAG_RECORDS, ("begin", "unsynced"), sync=False)
    file.lose_power(random.Random(7), torn=1.0)  # keeps a part of the unsynced frame, and garbage
    wal, records = Wal.open(file, faults)
    assert records == [(TAG_LEDGER, ("batch", n)) for n in range(3)]
    assert len(file.data) == whole == file.synced and wal.truncated > 0
    wal.append(TAG_LEDGER, ("batch", 3), sync=True)
    assert [record for _, record in Wal.open(file, faults)[1]][-1] == ("batch", 3)


@pytest.mark.parametrize("kept", [True, False])
def test_a_crash_keeps_the_synced_prefix_and_loses_or_keeps_the_rest(kept):
    file, faults = disk()
    wal, _ = Wal.open(file, faults)
    wal.append(TAG_LEDGER, "durable", sync=True)
    wal.append(TAG_RECORDS, "unsynced", sync=False)
    rng = random.Random(0 if kept else 1)
    while True:  # Find a seed of the power cut that keeps (or loses) the tail whole.
        fate = SimFile(faults)
        fate.data, fate.synced = bytearray(file.data), file.synced
        text = fate.lose_power(rng, torn=0.0)
        if text.startswith("kept" if kept else "lost"):
            break
    records = [record for _, record in Wal.open(fate, faults)[1]]
    assert records == (["durable", "unsynced"] if kept else ["durable"])


def test_short_writes_are_completed():
    file, faults = disk(FaultProfile(short_write=1.0))
    wal, _ = Wal.open(file, faults)
    wal.append(TAG_LEDGER, list(range(500)), sync=True)
    assert faults.counts["short_write"] > 0
    assert Wal.open(file, faults)[1] == [(TAG_LEDGER, list(range(500)))]


def test_a_full_disk_fails_the_write_and_leaves_no_partial_record():
    file, faults = disk()
    wal, _ = Wal.open(file, faults)
    wal.append(TAG_LEDGER, "first", sync=True)
    file.fill(10)
    with pytest.raises(OSError) as failed:
        wal.append(TAG_LEDGER, "x" * 100, sync=True)
    assert failed.value.errno == errno.ENOSPC
    assert Wal.open(file, faults)[1] == [(TAG_LEDGER, "first")]  # Nothing torn left behind.
    file.free()
    wal.append(TAG_LEDGER, "after", sync=True)
    assert [record for _, record in Wal.open(file, faults)[1]] == ["first", "after"]


def test_after_a_failed_fsync_the_log_refuses_every_write():
    file, faults = disk(FaultProfile(fsync_eio=1.0))
    wal, _ = Wal.open(file, faults)
    with pytest.raises(OSError) as failed:
        wal.append(TAG_LEDGER, "maybe", sync=True)
    assert failed.value.errno == errno.EIO and wal.failed
    faults.profile = FaultProfile()  # Even when the disk works again: the node must restart.
    with pytest.raises(OSError):
        wal.append(TAG_LEDGER, "next", sync=False)
    assert file.synced == 0  # What the failed fsync was to flush is not durable.
