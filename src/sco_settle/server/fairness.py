"""Fairness between participants: write quotas, and the writer's per-participant queues.

Two mechanisms, both measured in *units* of writer work (a transfer is 1 unit, a payment
``write_units_per_payment``; see ``ServerConfig``, "Fairness limits"):

- ``WriteQuota``: a token bucket per participant and one per API key. A write that finds one of
  its buckets short is refused before it is queued (429 ``rate_limited`` with ``Retry-After``).
- ``FairQueue``: the jobs waiting for the writer thread, one FIFO ("lane") per participant,
  served by deficit round robin. A participant with a backlog gets one quantum per round, like
  every other participant with something waiting, so it delays another's small request by about
  one quantum of work, not by its whole backlog. Each lane is bounded (jobs and units), so one
  caller cannot fill the queue for everyone.

Both are in memory and bounded; they reset when the server restarts.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any, Protocol

from sco_settle.server.errors import RateLimitedError


class WriteQuota:
    """Token buckets by name (``participant:<BIC>``, ``key:<key id>``), in a bounded LRU.

    A bucket holds at most ``burst`` units and refills at ``per_second``. A write is admitted
    while every one of its buckets holds more than nothing, and then takes its whole cost from
    each: a bucket may go into debt (by at most one write), repaid by waiting. So the check needs
    no cost (``admits``: a request can be refused before its body is even read), a write larger
    than the burst is still possible, and over time a name gets ``per_second`` units on average.
    An evicted bucket (least recently used, beyond ``buckets_max``) starts again full; names
    come from authenticated callers only.
    """

    def __init__(self, per_second: float, burst: int, buckets_max: int) -> None:
        assert per_second > 0 and burst >= 1 and buckets_max >= 1
        self.per_second = float(per_second)
        self.burst = int(burst)
        self.buckets_max = buckets_max
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # name -> [tokens, at]
        self._lock = threading.Lock()

    def _bucket(self, name: str, now: float) -> list[float]:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = [float(self.burst), now]
            self._buckets[name] = bucket
            while len(self._buckets) > self.buckets_max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
            bucket[0] = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.per_second)
            bucket[1] = now
        return bucket

    def admits(self, names: Sequence[str], now: float | None = None) -> None:
        """Raise ``RateLimitedError`` if a write under these names would be refused now."""
        self.take(names, 0, now)

    def take(self, names: Sequence[str], units: int, now: float | None = None) -> None:
        """Take ``units`` from every named bucket, or raise ``RateLimitedError`` (taking none)
        when one of them is empty or in debt."""
        if not names:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            buckets = [(name, self._bucket(name, now)) for name in names]
            name, poorest = min(buckets, key=lambda item: item[1][0])
            if poorest[0] <= 0:
                wait = (1 - poorest[0]) / self.per_second  # Until it holds a unit again.
                who = name.replace(":", " ", 1)
                raise RateLimitedError(
                    f"{who} is over its write quota ({self.per_second:g} units per second,"
                    f" burst {self.burst})",
                    math.ceil(wait),
                )
            for _, bucket in buckets:
                bucket[0] -= units

    def give_back(self, names: Sequence[str], units: int) -> None:
        """Return units taken for a write that was then not queued."""
        with self._lock:
            for name in names:
                bucket = self._buckets.get(name)
                if bucket is not None:
                    bucket[0] = min(float(self.burst), bucket[0] + units)

    def __len__(self) -> int:
        return len(self._buckets)


class Job(Protocol):
    """What ``FairQueue`` needs of a job (``service._Job``)."""

    participant: str
    units: int

    def sliceable(self) -> bool:
        """True: the job can be handed over in parts (``take``)."""

    def remaining_units(self) -> int:
        """Units not handed over yet."""

    def take(self, units: int) -> Any:
        """A part of the job worth at most ``units`` (at least its smallest part), or None."""

    def settled(self) -> bool:
        """True: the job is already answered (a part of it failed); drop what is left."""


class _Lane:
    __slots__ = ("credit", "jobs", "units")

    def __init__(self) -> None:
        self.jobs: deque[Any] = deque()
        self.units = 0  # of the waiting jobs, not yet handed over
        self.credit = 0


class FairQueue:
    """The writer's waiting jobs: a FIFO per participant, served by deficit round robin.

    ``round`` visits every lane that has jobs once, in rotating order, adds ``quantum`` units to
    its credit and hands over jobs from its head while their units fit the credit. A job larger
    than the credit waits for later rounds (the credit accumulates), except a sliceable one (a
    payments job), which is handed over a part at a time: a 1,000-payment batch advances about
    ``quantum`` units per round while every other participant is served every round. A lane that
    empties loses its credit. Within a lane arrival order is kept.

    A round comes as tiers: internal jobs (``put_internal``: idempotency records, the stop
    marker), then the lanes that emptied within one quantum (nothing more waiting: these are the
    participants that are not behind), then the lanes with a backlog. The writer runs the tiers in
    order, so a participant without a backlog is not merged behind another's.

    Between the groups of a round the writer asks for ``interim`` work: internal jobs that came
    meanwhile (the idempotency record of a request it just answered), and the jobs of lanes that
    were not served in this round yet and have at most one quantum waiting (a participant that
    was idle when the round began). They run before the rest of the round, so such a request
    waits for the group that is running, not for every backlog's slice of the round. A lane is
    still served at most once per round, so a backlog keeps its quantum per round.

    Bounds: ``jobs_max`` jobs in all (then ``queue.Full``), and per lane ``lane_jobs_max`` jobs
    and ``lane_units_max`` units (then ``RateLimitedError`` for that participant only). Internal
    jobs are not bounded: each answers a request that was already admitted.

    ``put``/``get_nowait``/``qsize`` keep the ``queue.Queue`` shape the service's shutdown and
    failure paths use.
    """

    def __init__(
        self,
        *,
        jobs_max: int,
        lane_jobs_max: int,
        lane_units_max: int,
        quantum: int,
        round_jobs_max: int = 4096,
    ) -> None:
        assert jobs_max >= 1 and lane_jobs_max >= 1 and lane_units_max >= 1 and quantum >= 1
        self.jobs_max = jobs_max
        self.lane_jobs_max = lane_jobs_max
        self.lane_units_max = lane_units_max
        self.quantum = quantum
        self.round_jobs_max = round_jobs_max
        self._internal: deque[Any] = deque()
        self._lanes: dict[str, _Lane] = {}
        self._ring: deque[str] = deque()  # lanes with jobs, in service order
        self._served: set[str] = set()  # lanes served in the current round (``interim``)
        self._count = 0  # jobs in lanes (a job handed over in parts counts until its last part)
        self._stopping = False
        self._ready = threading.Condition(threading.Lock())

    # -- producers (request handlers) ------------------------------------------------------

    def put_nowait(self, job: Job) -> None:
        units = max(0, job.units)
        with self._ready:
            if self._count >= self.jobs_max:
                raise queue.Full
            lane = self._lanes.get(job.participant)
            if lane is not None:
                self._check_room(lane, job.participant, units)
            else:
                lane = self._lanes[job.participant] = _Lane()
                self._ring.append(job.participant)
            lane.jobs.append(job)
            lane.units += units
            self._count += 1
            self._ready.notify()

    def put_internal(self, item: Any) -> None:
        with self._ready:
            self._internal.append(item)
            self._ready.notify()

    def put(self, item: Any) -> None:
        """As ``queue.Queue.put``, for the stop marker: the next round hands over everything."""
        with self._ready:
            self._stopping = True
            self._internal.append(item)
            self._ready.notify()

    def qsize(self) -> int:
        with self._ready:
            return self._count + len(self._internal)

    def admits(self, participant: str) -> None:
        """Raise ``RateLimitedError`` if the participant's queue is already at its bounds."""
        with self._ready:
            lane = self._lanes.get(participant)
            if lane is not None:
                self._check_room(lane, participant, 0)

    def _check_room(self, lane: _Lane, participant: str, units: int) -> None:
        if len(lane.jobs) >= self.lane_jobs_max:
            raise RateLimitedError(
                f"{len(lane.jobs)} writes of {participant or 'this caller'} are waiting"
                f" (at most {self.lane_jobs_max})",
                1,
            )
        if lane.jobs and lane.units + max(units, 1) > self.lane_units_max:
            raise RateLimitedError(
                f"{lane.units} units of writes of {participant or 'this caller'} are waiting"
                f" (at most {self.lane_units_max})",
                1,
            )

    def lane_depth(self, participant: str) -> int:
        with self._ready:
            lane = self._lanes.get(participant)
            return 0 if lane is None else len(lane.jobs)

    def get_nowait(self) -> Any:
        """Any waiting job, whole (internal ones first); ``queue.Empty`` when there is none."""
        with self._ready:
            if self._internal:
                return self._internal.popleft()
            while self._ring:
                name = self._ring[0]
                lane = self._lanes[name]
                if lane.jobs:
                    job = lane.jobs[0]
                    self._pop(lane, max(0, job.remaining_units()))
                    return job
                self._drop_lane(name)
            raise queue.Empty

    # -- the consumer (the writer thread) --------------------------------------------------

    def round(self, timeout: float, *, everything: bool = False) -> list[list[Any]]:
        """The next round as tiers (see the class docs), waiting up to ``timeout`` seconds for a
        first job; ``[]`` if none came. ``everything``: every waiting job, whole (at shutdown)."""
        with self._ready:
            if not self._internal and not self._count:
                self._ready.wait(timeout)
            internal = list(self._internal)
            self._internal.clear()
            everything = everything or self._stopping
            light: list[tuple[int, list[Any]]] = []
            heavy: list[tuple[int, list[Any]]] = []
            taken_jobs = len(internal)
            self._served = set()
            for _ in range(len(self._ring)):
                if taken_jobs >= self.round_jobs_max and not everything:
                    break
                name = self._ring[0]
                self._ring.rotate(-1)
                self._served.add(name)
                lane = self._lanes[name]
                taken, units = self._serve(lane, everything, self.round_jobs_max - taken_jobs)
                taken_jobs += len(taken)
                if not lane.jobs:
                    self._drop_lane(name)
                    if taken and units <= self.quantum:
                        light.append((units, taken))
                        continue
                if taken:
                    heavy.append((units, taken))
            tiers = [internal] if internal else []
            for part in (light, heavy):
                part.sort(key=lambda item: item[0])  # Lightest lanes first (stable).
                jobs = [job for _, taken in part for job in taken]
                if jobs:
                    tiers.append(jobs)
            return tiers

    def interim(self, timeout: float = 0.0) -> list[list[Any]]:
        """Work that should not wait for the rest of the current round (see the class docs), as
        tiers: internal jobs, then the light lanes not served in this round yet, lightest first.
        Waits up to ``timeout`` seconds for some to come; ``[]`` if none did (and always once
        the stop marker is queued: the next round takes everything)."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                if self._stopping:
                    return []
                internal = list(self._internal)
                self._internal.clear()
                light: list[tuple[int, list[Any]]] = []
                for name in list(self._ring):
                    lane = self._lanes[name]
                    if name in self._served or not lane.jobs or lane.units > self.quantum:
                        continue
                    self._served.add(name)
                    taken, units = self._serve(lane, False, self.round_jobs_max)
                    if not lane.jobs:
                        self._drop_lane(name)
                    if taken:
                        light.append((units, taken))
                light.sort(key=lambda item: item[0])
                jobs = [job for _, taken in light for job in taken]
                tiers = [tier for tier in (internal, jobs) if tier]
                left = deadline - time.monotonic()
                if tiers or left <= 0:
                    return tiers
                self._ready.wait(left)

    def _serve(self, lane: _Lane, everything: bool, jobs_max: int) -> tuple[list[Any], int]:
        """Hand over the lane's jobs that its credit covers (one quantum more than before)."""
        taken: list[Any] = []
        units_taken = 0
        lane.credit += self.quantum
        while lane.jobs and (everything or len(taken) < jobs_max):
            head = lane.jobs[0]
            cost = max(0, head.remaining_units())
            if head.settled():  # Answered already (a part failed): the rest never runs.
                self._pop(lane, cost)
                continue
            if everything or cost <= lane.credit:
                part = head.take(cost) if head.sliceable() else head
                self._pop(lane, cost)
                lane.credit -= cost
                units_taken += cost
                taken.append(part)
                continue
            if head.sliceable():
                part = head.take(lane.credit)
                if part is not None:
                    lane.credit -= part.units
                    lane.units -= part.units
                    units_taken += part.units
                    taken.append(part)
            break
        if not lane.jobs or everything:
            lane.credit = 0
        return taken, units_taken

    def _pop(self, lane: _Lane, units: int) -> None:
        lane.jobs.popleft()
        lane.units -= units
        self._count -= 1

    def _drop_lane(self, name: str) -> None:
        lane = self._lanes.pop(name, None)
        if lane is not None:
            assert not lane.jobs
            self._ring.remove(name)
