"""A simulated disk, and the faults a seeded random source injects into it.

The disk is one file, as in a deployment on SQLite, where the ledger, the payment records and the
server's idempotency records share one database file and one write-ahead log. The file is a byte
array with a *synced* prefix: what ``fsync`` has made durable. Bytes after it are written (the
process reads them back) but not durable: when the machine dies they may be lost, kept, or kept
in part (a torn write, possibly ending in garbage).

Every fault is decided by ``Faults`` from the run's one ``random.Random``, at a *write boundary*:

- before a write, after a write (before its fsync), after an fsync: the process may die there
  (``Crash``, a ``BaseException`` that nothing in the write path may catch);
- a write may be short (fewer bytes than asked: the writer must write the rest) or hit a full disk
  (``ENOSPC``, after writing what fits);
- an fsync may fail (``EIO``: what it was to flush is in an unknown state) or be slow (the
  simulated clock advances, so clients waiting on the answer may time out).

Invariants:
- The synced prefix only grows while the process lives; a crash keeps it whole.
- Nothing here reads the wall clock or global randomness: the same seed makes the same faults.
"""

from __future__ import annotations

import errno
import random
from collections import Counter
from dataclasses import dataclass

# Fault kinds, as counted in a run's summary.
CRASH = "crash"
TORN_WRITE = "torn_write"
LOST_WRITE = "lost_unsynced"
SHORT_WRITE = "short_write"
FSYNC_EIO = "fsync_eio"
DISK_FULL = "disk_full"
SLOW_DISK = "slow_disk"
CLIENT_TIMEOUT = "client_timeout"
RESPONSE_LOST = "response_lost"
RETRY = "retry"
FAULT_KINDS = (
    CRASH,
    TORN_WRITE,
    LOST_WRITE,
    SHORT_WRITE,
    FSYNC_EIO,
    DISK_FULL,
    SLOW_DISK,
    CLIENT_TIMEOUT,
    RESPONSE_LOST,
    RETRY,
)

# Where in a durable write the process may die.
BEFORE_WRITE = "before_write"
AFTER_WRITE = "after_write"
AFTER_FSYNC = "after_fsync"
BOUNDARIES = (BEFORE_WRITE, AFTER_WRITE, AFTER_FSYNC)

NS_PER_MS = 1_000_000


class Crash(BaseException):
    """The process dies here. A ``BaseException``: no ``except Exception`` may carry on."""


class SimClock:
    """Simulated time in ns since the epoch; it moves only when the simulation moves it."""

    def __init__(self, start_ns: int = 1_800_000_000 * 10**9) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance_ms(self, milliseconds: int) -> None:
        assert milliseconds >= 0, milliseconds
        self.now += milliseconds * NS_PER_MS

    def wall(self) -> float:
        """The time in seconds, for code that reads a wall clock (``time.time``)."""
        return self.now / 1e9


@dataclass(frozen=True)
class FaultProfile:
    """How often each fault happens in one run. Each seed draws its own (swarm testing: a run
    with few kinds of faults reaches states a run with all of them at once rarely does)."""

    crash_per_boundary: float = 0.0  # the process dies at a write boundary
    short_write: float = 0.0  # a write writes only part of its bytes
    fsync_eio: float = 0.0  # an fsync fails with EIO
    disk_full_per_step: float = 0.0  # the disk fills up (until the operator frees space)
    slow_fsync: float = 0.0  # an fsync takes up to ``slow_ms_max``
    slow_ms_max: int = 0
    torn_on_crash: float = 0.0  # at a crash, the unsynced tail is kept in part, maybe garbage
    crashes_max: int = 0  # no more crashes than this in a run (it must make progress)

    @staticmethod
    def draw(rng: random.Random) -> FaultProfile:
        def maybe(rate: float) -> float:
            return rate * rng.random() if rng.random() < 0.6 else 0.0

        return FaultProfile(
            crash_per_boundary=maybe(0.08),
            short_write=maybe(0.3),
            fsync_eio=maybe(0.05),
            disk_full_per_step=maybe(0.15),
            slow_fsync=maybe(0.5),
            slow_ms_max=rng.choice((50, 500, 5_000, 30_000)),
            torn_on_crash=rng.random(),
            crashes_max=rng.randint(1, 4),
        )


class Faults:
    """Decides every fault of a run from its random source, and counts what it injected.

    ``crash_at`` forces one crash at the given write boundary (its number, counted from 1 over
    the run, and where in the write), whatever the profile says: a test crashes at each one.
    """

    def __init__(
        self,
        rng: random.Random,
        profile: FaultProfile,
        clock: SimClock,
        *,
        crash_at: tuple[int, str] | None = None,
    ) -> None:
        self.rng = rng
        self.profile = profile
        self.clock = clock
        self.crash_at = crash_at
        self.enabled = False  # Off while the network is installed and while the run quiesces.
        self.counts: Counter[str] = Counter()
        self.writes = 0  # durable writes begun, over the run
        self.crashes = 0
        self.log: list[str] = []  # what was injected, in order (part of the run's trace)

    def note(self, kind: str, detail: str = "") -> None:
        self.counts[kind] += 1
        self.log.append(f"{kind} {detail}".rstrip())

    def boundary(self, where: str) -> None:
        """A write boundary: maybe the process dies here."""
        if not self.enabled:
            return
        if where == BEFORE_WRITE:
            self.writes += 1
        if self.crash_at is not None:
            if self.crash_at == (self.writes, where):
                self._crash(where)
            return
        if (
            self.crashes < self.profile.crashes_max
            and self.rng.random() < self.profile.crash_per_boundary
        ):
            self._crash(where)

    def _crash(self, where: str) -> None:
        self.crashes += 1
        self.note(CRASH, f"at write {self.writes} {where}")
        raise Crash(f"crash at write {self.writes} {where}")

    def short_write(self, size: int) -> int:
        """How many of ``size`` bytes one write call writes."""
        if self.enabled and size > 1 and self.rng.random() < self.profile.short_write:
            written = self.rng.randrange(1, size)
            self.note(SHORT_WRITE, f"{written}/{size}")
            return written
        return size

    def fsync(self) -> None:
        """An fsync: maybe slow (time passes), maybe ``EIO``."""
        if not self.enabled:
            return
        if self.profile.slow_fsync and self.rng.random() < self.profile.slow_fsync:
            latency_ms = self.rng.randint(1, self.profile.slow_ms_max)
            self.clock.advance_ms(latency_ms)
            self.note(SLOW_DISK, f"{latency_ms}ms")
        if self.rng.random() < self.profile.fsync_eio:
            self.note(FSYNC_EIO)
            raise OSError(errno.EIO, "fsync failed (simulated)")


class SimFile:
    """One file on the simulated disk. Only ``Faults`` decides what goes wrong with it."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.data = bytearray()
        self.synced = 0
        self.capacity: int | None = None  # bytes; None: never full

    def write(self, chunk: bytes) -> int:
        """Append up to ``len(chunk)`` bytes; return how many (a short write may be fewer).
        ``ENOSPC`` when not one byte fits."""
        room = len(chunk) if self.capacity is None else self.capacity - len(self.data)
        if room <= 0 and chunk:
            raise OSError(errno.ENOSPC, "no space left on device (simulated)")
        size = self.faults.short_write(min(len(chunk), room))
        self.data += chunk[:size]
        return size

    def fsync(self) -> None:
        self.faults.fsync()
        self.synced = len(self.data)

    def truncate(self, size: int) -> None:
        assert 0 <= size <= len(self.data), (size, len(self.data))
        del self.data[size:]
        self.synced = min(self.synced, size)

    def fill(self, slack: int) -> None:
        """The disk fills up: ``slack`` more bytes fit, then every write fails."""
        self.capacity = len(self.data) + slack

    def free(self) -> None:
        self.capacity = None

    def lose_power(self, rng: random.Random, torn: float) -> str:
        """The machine dies: the synced prefix survives; the unsynced tail is lost, kept, or
        (with probability ``torn``) kept in part, possibly ending in garbage. Returns what
        happened to the tail, for the trace."""
        tail = len(self.data) - self.synced
        if tail == 0:
            return "nothing unsynced"
        choice = rng.random()
        if choice < torn:
            kept = rng.randrange(0, tail)
            garbage = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 16)))
            del self.data[self.synced + kept :]
            self.data += garbage
            self.faults.note(TORN_WRITE, f"{kept}/{tail} bytes kept, {len(garbage)} garbage")
            fate = f"torn: {kept} of {tail} unsynced bytes kept, {len(garbage)} garbage"
        elif choice < torn + (1 - torn) / 2:
            del self.data[self.synced :]
            self.faults.note(LOST_WRITE, f"{tail} bytes")
            fate = f"lost {tail} unsynced bytes"
        else:
            fate = f"kept {tail} unsynced bytes"
        # What survived is on the platter now: a reboot reads it back as written.
        self.synced = len(self.data)
        return fate
