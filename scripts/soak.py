"""Soak: the real server under steady load, killed with SIGKILL again and again (issue 12, §5).

One run, one JSON document on stdout (the benchmarks' habit):

1. Capacity: a fresh SQLite ledger with the SCO network; ``--clients`` clients post single
   payments (``POST /v1/payments``, CNY between the five Chinese banks, RTGS) as fast as the
   server answers, for ``--capacity-seconds``: capacity is acknowledged payments per second.
2. Soak: for ``--minutes``, the same clients pay at ``--load`` (0.8) of that capacity, paced
   (each client keeps its own schedule; slots missed while the server is down are skipped, not
   sent in a burst). Every ``--kill-every`` seconds the server gets SIGKILL and is restarted at
   once on the same port. A client whose request fails (connection refused, reset, 5xx) retries
   the same request with the same ``Idempotency-Key`` until it is answered: what a bank's
   client does, and what makes "acknowledged" mean something.
3. Audit: the server is stopped cleanly, ``sco-settle verify`` must pass (journal replay and
   payment records reconciled with the ledger both ways), and every acknowledged payment must be
   in the payment records with its acknowledged final status (payment ids are the primary key, so
   one record each; ``verify`` finds money moved twice or without a record).

Reported: capacity, target and achieved rate, per server life its RSS (resident memory, from
/proc) after start-up and at the kill, per restart the time from the kill to the first
acknowledged write and the p50/p99 latency of the writes answered in the 10 s after it, and the
audit's result. ``--kill-every 0`` soaks without kills (memory over time).

    python scripts/soak.py --minutes 30                  # the closing note's run
    python scripts/soak.py --minutes 1 --kill-every 25   # about a minute, 2 kills (the CI test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BANKS = ("BKCHCNBJ", "ICBKCNBJ", "ICBKCNBJSJG", "XIHCCNB2", "BOXJCNU0")
START_SECONDS_MAX = 60
AFTER_RESTART_WINDOW_SECONDS = 10.0
RETRY_PAUSE_SECONDS = 0.05
DRAIN_SECONDS_MAX = 120  # after the soak: unanswered requests retried this long at most


# ---------------------------------------------------------------------------------------------
# The server process.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, from /proc (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


@dataclass
class Life:
    """One server process, from spawn to kill."""

    number: int
    spawned_at: float  # seconds since the soak started
    ready_seconds: float = 0.0  # spawn to the first 200 from /health
    rss_mb_samples: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        samples = self.rss_mb_samples
        return {
            "life": self.number,
            "spawned_at_s": round(self.spawned_at, 1),
            "ready_seconds": round(self.ready_seconds, 2),
            "rss_mb_first": samples[0] if samples else None,
            "rss_mb_last": samples[-1] if samples else None,
            "rss_mb_max": max(samples) if samples else None,
        }


class Server:
    """``sco-settle serve`` on one port, restarted after each SIGKILL; RSS sampled each second."""

    def __init__(self, db: str, work: Path, started: float) -> None:
        self.db = db
        self.work = work
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.started = started
        self.lives: list[Life] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> Life:
        life = Life(len(self.lives), time.monotonic() - self.started)
        command = [sys.executable, "-m", "sco_settle", "serve", "--db", self.db]
        command += ["--port", str(self.port), "--log-level", "warning"]
        with open(self.work / f"server-{life.number}.log", "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
        spawned = time.monotonic()
        self._wait_ready()
        life.ready_seconds = time.monotonic() - spawned
        self.lives.append(life)
        if not self._sampler.is_alive():
            self._sampler.start()
        return life

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_SECONDS_MAX
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.work}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"server did not answer in {START_SECONDS_MAX} s; see {self.work}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self._sampling.set()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _sample(self) -> None:
        while not self._sampling.wait(1.0):
            process, lives = self.process, self.lives
            if process is not None and lives and process.poll() is None:
                found = rss_mb(process.pid)
                if found is not None:
                    lives[-1].rss_mb_samples.append(found)


def make_keys(db: str) -> dict[str, str]:
    from sco_settle.server import parse_database_url
    from sco_settle.server.db import StateDb
    from sco_settle.server.keys import KeyStore, Role

    state = StateDb(parse_database_url(db))
    try:
        store = KeyStore(state)
        return {bic: store.create(bic, Role.PARTICIPANT).api_key for bic in BANKS}
    finally:
        state.close()


# ---------------------------------------------------------------------------------------------
# Clients.


@dataclass(frozen=True)
class Ack:
    """An acknowledged payment: when it was answered, how long its last attempt took."""

    payment_id: str
    status: str
    sent_at: float  # seconds since the soak started, the attempt that was answered
    answered_at: float  # seconds since the soak started
    latency: float  # seconds, the attempt that was answered
    attempts: int


class Clients:
    """``count`` client threads; each pays from its own bank, paced or as fast as answered."""

    def __init__(self, base_url: str, keys: dict[str, str], count: int, started: float) -> None:
        self.base_url = base_url
        self.keys = keys
        self.count = count
        self.started = started
        self.acks: list[Ack] = []
        self.refused: list[tuple[str, int, str]] = []  # 4xx: a bug in the soak or the server
        self.skipped_slots = 0
        self.rate = 0.0  # payments/s over all clients; 0: as fast as answered
        self.stop = threading.Event()
        self.draining = threading.Event()  # no new payments; finish those in flight
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def run(self, rate: float) -> None:
        self.rate = rate
        self.stop.clear()
        self.draining.clear()
        self._threads = [
            threading.Thread(target=self._client, args=(number,), daemon=True)
            for number in range(self.count)
        ]
        for thread in self._threads:
            thread.start()

    def join(self, drain: bool) -> None:
        (self.draining if drain else self.stop).set()
        for thread in self._threads:
            thread.join(timeout=DRAIN_SECONDS_MAX + 30)

    def _client(self, number: int) -> None:
        debtor = BANKS[number % len(BANKS)]
        creditors = [bank for bank in BANKS if bank != debtor]
        headers = {"Authorization": f"Bearer {self.keys[debtor]}"}
        interval = self.count / self.rate if self.rate else 0.0
        next_at = time.monotonic() + interval * number / max(self.count, 1)
        sequence = 0
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=30) as http:
            while not (self.stop.is_set() or self.draining.is_set()):
                if interval:
                    next_at = self._pace(next_at, interval)
                    if next_at < 0:
                        break
                sequence += 1
                body = {
                    "instruction_id": f"S{number}-{sequence}-{uuid.uuid4().hex[:8]}",
                    "creditor_agent": creditors[sequence % len(creditors)],
                    "amount_minor": 100 + (sequence * 7919) % 100_000,
                    "currency": "CNY",
                }
                self._pay(http, debtor, body)

    def _pace(self, next_at: float, interval: float) -> float:
        """Sleep until the next slot; skip slots already missed by more than a second."""
        now = time.monotonic()
        if now - next_at > 1.0:
            missed = int((now - next_at) / interval)
            with self._lock:
                self.skipped_slots += missed
            next_at += missed * interval
        if next_at > now and self.stop.wait(next_at - now):
            return -1.0
        return next_at + interval

    def _pay(self, http: httpx.Client, debtor: str, body: dict[str, Any]) -> None:
        """Post until answered (2xx or 4xx), with the same Idempotency-Key every time."""
        headers = {"Idempotency-Key": f"soak-{uuid.uuid4().hex}"}
        deadline = None
        attempts = 0
        while True:
            attempts += 1
            sent = time.monotonic()
            try:
                answer = http.post("/v1/payments", json=body, headers=headers)
                code = answer.status_code
            except httpx.HTTPError:
                code = 0
            if code in (200, 201):
                self._acked(debtor, body, answer.json(), sent, attempts)
                return
            if 400 <= code < 500 and code != 429:
                with self._lock:
                    self.refused.append((body["instruction_id"], code, answer.text[:300]))
                return
            if self.stop.is_set():
                return
            if self.draining.is_set():  # After the soak: retry for a bounded time only.
                deadline = deadline or time.monotonic() + DRAIN_SECONDS_MAX
                if time.monotonic() > deadline:
                    return
            time.sleep(RETRY_PAUSE_SECONDS)

    def _acked(
        self, debtor: str, body: dict[str, Any], answer: dict[str, Any], sent: float, attempts: int
    ) -> None:
        now = time.monotonic()
        ack = Ack(
            payment_id=answer["payment_id"],
            status=answer["status"],
            sent_at=sent - self.started,
            answered_at=now - self.started,
            latency=now - sent,
            attempts=attempts,
        )
        assert ack.payment_id == f"{debtor}:{body['instruction_id']}", answer
        with self._lock:
            self.acks.append(ack)


# ---------------------------------------------------------------------------------------------
# Figures.


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def milliseconds(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


_NO_WRITE = {"first_write_s": None, "p50_ms_first_10s": None, "p99_ms_first_10s": None}


def restart_figures(kills: list[float], acks: list[Ack]) -> list[dict[str, Any]]:
    """Per kill: seconds to the first acknowledged write sent after it (only the new server can
    have answered it), and the latency of the writes answered in the 10 s after that one."""
    answered = sorted(acks, key=lambda ack: ack.answered_at)
    figures = []
    for number, killed_at in enumerate(kills):
        after = [ack for ack in answered if ack.sent_at > killed_at]
        if not after:
            figures.append({"kill": number, "killed_at_s": round(killed_at, 1)} | _NO_WRITE)
            continue
        first = after[0].answered_at
        window = [
            ack.latency for ack in after if ack.answered_at <= first + AFTER_RESTART_WINDOW_SECONDS
        ]
        figures.append(
            {
                "kill": number,
                "killed_at_s": round(killed_at, 1),
                "first_write_s": round(first - killed_at, 3),
                "writes_in_first_10s": len(window),
                "p50_ms_first_10s": milliseconds(percentile(window, 0.50)),
                "p99_ms_first_10s": milliseconds(percentile(window, 0.99)),
            }
        )
    return figures


def steady_latency(kills: list[float], acks: list[Ack], begin: float) -> dict[str, Any]:
    """Latency of writes answered more than 10 s after the last kill before them."""
    latencies = []
    for ack in acks:
        last_kill = max([k for k in kills if k < ack.answered_at], default=begin)
        if ack.answered_at - last_kill > AFTER_RESTART_WINDOW_SECONDS:
            latencies.append(ack.latency)
    return {
        "writes": len(latencies),
        "p50_ms": milliseconds(percentile(latencies, 0.50)),
        "p99_ms": milliseconds(percentile(latencies, 0.99)),
    }


def memory_figures(lives: list[Life]) -> dict[str, Any]:
    """RSS across server lives: each life's last sample (just before its kill)."""
    lasts = [life.rss_mb_samples[-1] for life in lives if life.rss_mb_samples]
    firsts = [life.rss_mb_samples[0] for life in lives if life.rss_mb_samples]
    return {
        "rss_mb_first_life_last": lasts[0] if lasts else None,
        "rss_mb_last_life_last": lasts[-1] if lasts else None,
        "rss_mb_min_of_lasts": min(lasts, default=None),
        "rss_mb_max_of_lasts": max(lasts, default=None),
        "rss_mb_median_after_start": statistics.median(firsts) if firsts else None,
        "rss_growth_last_over_first": round(lasts[-1] / lasts[0], 3) if len(lasts) > 1 else None,
    }


# ---------------------------------------------------------------------------------------------
# Audit.


def audit(db_path: Path, acks: list[Ack]) -> dict[str, Any]:
    """``sco-settle verify``, then every acknowledged payment against the payment records."""
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    verified = subprocess.run(
        [sys.executable, "-m", "sco_settle", "verify", "--db", str(db_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    records = SqlitePaymentRecords(db_path, readonly=True)
    try:
        stored = {payment.payment_id: outcome.status for payment, outcome in records.records()}
    finally:
        records.close()
    acked = {ack.payment_id: ack.status for ack in acks}
    lost = sorted(payment_id for payment_id in acked if payment_id not in stored)
    changed = sorted(
        payment_id
        for payment_id, status in acked.items()
        if status in ("settled", "rejected") and stored.get(payment_id, status) != status
    )
    return {
        "verify_passed": verified.returncode == 0
        and "payment records reconcile with the ledger" in verified.stdout,
        "verify_output": [*verified.stdout.strip().splitlines()[-6:], verified.stderr[-300:]],
        "acknowledged": len(acks),
        "acknowledged_distinct": len(acked),
        "payments_stored": len(stored),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "final_status_changed": len(changed),
        "unacknowledged_stored": len(set(stored) - set(acked)),
    }


# ---------------------------------------------------------------------------------------------
# The run.


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak")
    parser.add_argument("--kill-every", type=float, default=60.0, help="seconds; 0: no kills")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of measured capacity")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--work", type=Path, default=None, help="database and server logs")
    return parser.parse_args(argv)


def measure_capacity(clients: Clients, seconds: float) -> float:
    begin = time.monotonic() - clients.started
    clients.run(rate=0.0)
    time.sleep(seconds)
    clients.join(drain=False)
    answered = [ack for ack in clients.acks if ack.answered_at > begin]
    return len(answered) / seconds


def soak(server: Server, clients: Clients, args: argparse.Namespace) -> list[float]:
    """Run the paced load for ``--minutes``, killing the server at every multiple of
    ``--kill-every`` seconds from the start (restart included) and restarting it; the kill times."""
    kills: list[float] = []
    begin = time.monotonic()
    end = begin + args.minutes * 60
    while True:
        due = begin + (len(kills) + 1) * args.kill_every if args.kill_every > 0 else end
        if due >= end:
            time.sleep(max(end - time.monotonic(), 0))
            return kills
        time.sleep(max(due - time.monotonic(), 0))
        server.kill()
        kills.append(time.monotonic() - clients.started)  # Dead: what is sent now waits.
        server.start()


def run(argv: list[str] | None = None) -> dict[str, Any]:
    args = _arguments(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="sco-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / "soak.db"
    started = time.monotonic()
    server = Server(f"sqlite:///{db_path}", work, started)
    try:
        server.start()
        clients = Clients(server.base_url, make_keys(server.db), args.clients, started)
        capacity = measure_capacity(clients, args.capacity_seconds)
        capacity_acks = len(clients.acks)
        target = args.load * capacity
        begin = time.monotonic() - started
        clients.run(rate=target)
        kills = soak(server, clients, args)
        clients.join(drain=True)
        soak_seconds = time.monotonic() - started - begin
    finally:
        server.stop()
    soak_acks = clients.acks[capacity_acks:]
    return {
        "benchmark": "soak",
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "database": "sqlite",
        "clients": args.clients,
        "capacity_payments_per_s": round(capacity, 1),
        "load_fraction": args.load,
        "target_payments_per_s": round(target, 1),
        "soak_minutes": args.minutes,
        "achieved_payments_per_s": round(len(soak_acks) / max(soak_seconds, 1e-9), 1),
        "slots_skipped_while_down": clients.skipped_slots,
        "kills": len(kills),
        "kill_every_s": args.kill_every,
        "restarts": restart_figures(kills, soak_acks),
        "steady_latency": steady_latency(kills, soak_acks, begin),
        "memory": memory_figures(server.lives),
        "lives": [life.summary() for life in server.lives],
        "refused_4xx": len(clients.refused),
        "refused_examples": clients.refused[:3],
        "audit": audit(db_path, clients.acks),
        "work": str(work),
    }


def main() -> None:
    result = run()
    print(json.dumps(result, indent=2))
    audit_result = result["audit"]
    ok = audit_result["verify_passed"] and not audit_result["lost"] and not result["refused_4xx"]
    sys.exit(0 if ok and not audit_result["final_status_changed"] else 1)


if __name__ == "__main__":
    main()
