"""Honest clients' latency while one client attacks the API: p50/p99 with and without attack.

For each attack kind a real server (``sco-settle serve``, one process) runs on a copy of one
fresh SQLite ledger, whose keys were made with ``sco-settle keys create``. Honest clients, four
Chinese banks paying each other 1 fen and reading their own settlement account (one thread each,
a payment and a read every ``--pace`` seconds), are measured first alone (the baseline), then
while an attacker process holds ``--attackers`` connections busy with one of:

- ``wrong_secret``: ``GET /v1/participants`` with a known key id (HSBK's, unused by the honest
  clients: key ids are not secret) and a random secret;
- ``unfundable``: HSBK posts ``POST /v1/payment-batches`` of 1,000 payments to KCJB that no one
  can fund (2^62 and AMOUNT_MAX minor units, alternately);
- ``big_batches``: HSBK posts 1,000-payment batches of 1 tiyn each to KCJB, which all settle;
- ``unknown_key``: ``GET /v1/participants`` with random key ids.

The attacker is a separate process (asyncio, one connection and one client per task), so it
does not share a GIL with the measurement; it does share the machine's CPUs with the server, as a
client on the same host would. (It used one client with a pool of 64 connections: httpcore then
scans every connection for every request, ~13 ms of CPU each, so the attacker spent a whole core
on its own bookkeeping and reached the server with at most ~75 requests/s; one client per
connection sends ~5 times as many for half the CPU.) Attackers do not slow down on 429 (they
ignore ``Retry-After``) and send their next request as soon as an answer comes. Each attack
gets its own server (a copy of the same database) so that what one leaves behind (parked
payments, a backlog) does not spill into the next; its baseline is measured on that server
just before the attack. Prints one JSON document: per attack the honest p50/p99 of payments and
reads, and ``p99 under attack / p99 baseline`` (target: at most 2.0).

    python benchmarks/abuse_bench.py --quick        # under ~60 s (CI)
    python benchmarks/abuse_bench.py --seconds 15 --attacks big_batches unfundable
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
HONEST = ("BKCHCNBJ", "ICBKCNBJ", "XIHCCNB2", "BOXJCNU0")  # CNY banks, paying each other
ATTACKER, ATTACKED = "HSBKKZKX", "KCJBKZKX"  # KZT banks
ATTACKS = ("wrong_secret", "unfundable", "big_batches", "unknown_key")
AMOUNT_MAX = 2**63 - 1
TARGET_RATIO = 2.0
BATCH = 1000


# -- the server ----------------------------------------------------------------------------------


def cli_command() -> list[str]:
    """``sco-settle`` next to this interpreter, else the module (same code either way)."""
    script = Path(sys.executable).with_name("sco-settle")
    if script.exists():
        return [str(script)]
    found = shutil.which("sco-settle")
    return (
        [found] if found else [sys.executable, "-c", "from sco_settle.cli.main import main; main()"]
    )


def create_key(db: str, participant: str) -> dict[str, str]:
    done = subprocess.run(
        [*cli_command(), "keys", "create", "--db", db, "--participant", participant],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    fields = dict(re.findall(r"^(key id|api key):\s+(\S+)$", done.stdout, flags=re.MULTILINE))
    return {"key_id": fields["key id"], "api_key": fields["api key"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*cli_command(), "serve", "--db", db, "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start in 60 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """A throwaway copy: a short graceful stop, then kill (a backlog may still be queued)."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- honest clients ------------------------------------------------------------------------------


def honest_client(
    base: str,
    bic: str,
    api_key: str,
    creditor: str,
    seconds: float,
    pace: float,
    out: dict[str, Any],
) -> None:
    payments: list[float] = []
    reads: list[float] = []
    errors: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {api_key}"}
    run = uuid.uuid4().hex[:10]
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        deadline = time.perf_counter() + seconds
        sequence = 0
        while time.perf_counter() < deadline:
            sequence += 1
            started = time.perf_counter()
            try:
                paid = http.post(
                    "/v1/payments",
                    json={
                        "instruction_id": f"h{run}-{sequence}",
                        "creditor_agent": creditor,
                        "amount_minor": 1,
                        "currency": "CNY",
                    },
                    headers={"Idempotency-Key": f"h{run}-{sequence}"},
                )
                payments.append(time.perf_counter() - started)
                if paid.status_code != 201 or paid.json().get("status") != "settled":
                    errors[f"payment {paid.status_code}"] += 1
            except httpx.HTTPError as error:
                errors[f"payment {type(error).__name__}"] += 1
            started = time.perf_counter()
            try:
                read = http.get(f"/v1/accounts/settlement:{bic}:CNY")
                reads.append(time.perf_counter() - started)
                if read.status_code != 200:
                    errors[f"read {read.status_code}"] += 1
            except httpx.HTTPError as error:
                errors[f"read {type(error).__name__}"] += 1
            time.sleep(max(0.0, pace - (time.perf_counter() - started)))
    out[bic] = {"payments": payments, "reads": reads, "errors": errors}


def measure_honest(
    base: str, keys: dict[str, dict[str, str]], seconds: float, pace: float
) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=honest_client,
            args=(
                base,
                bic,
                keys[bic]["api_key"],
                HONEST[(n + 1) % len(HONEST)],
                seconds,
                pace,
                parts,
            ),
        )
        for n, bic in enumerate(HONEST)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    payments = sorted(x for part in parts.values() for x in part["payments"])
    reads = sorted(x for part in parts.values() for x in part["reads"])
    errors: Counter[str] = Counter()
    for part in parts.values():
        errors.update(part["errors"])
    return {
        "payments": len(payments),
        "payment_ms_p50": ms(statistics.median(payments)) if payments else None,
        "payment_ms_p99": ms(percentile(payments, 0.99)) if payments else None,
        "reads": len(reads),
        "read_ms_p50": ms(statistics.median(reads)) if reads else None,
        "read_ms_p99": ms(percentile(reads, 0.99)) if reads else None,
        "errors": dict(errors),
    }


def percentile(ordered: list[float], share: float) -> float:
    return ordered[max(math.ceil(len(ordered) * share) - 1, 0)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# -- the attacker (a process of its own) ---------------------------------------------------------


def attacker_process(
    kind: str,
    base: str,
    key: dict[str, str],
    connections: int,
    ready: Any,
    stop: Any,
    results: Any,
) -> None:
    results.put(asyncio.run(_attack(kind, base, key, connections, ready, stop)))


def _batch_body(run: str, sequence: int, amounts: tuple[int, ...]) -> str:
    items = ",".join(
        f'{{"instruction_id":"a{run}-{sequence}-{n}","creditor_agent":"{ATTACKED}",'
        f'"amount_minor":{amounts[n % len(amounts)]},"currency":"KZT"}}'
        for n in range(BATCH)
    )
    return f'{{"payments":[{items}]}}'


async def _attack(
    kind: str, base: str, key: dict[str, str], connections: int, ready: Any, stop: Any
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()  # of the attacker's payments, by status and reason
    run = uuid.uuid4().hex[:10]
    # One client (one connection) per attacking task: see the module docs.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(300, connect=30)
    clients = [
        httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) for _ in range(connections)
    ]
    try:
        stopping = asyncio.Event()

        async def one(number: int) -> None:
            http = clients[number]
            sequence = 0
            while not stopping.is_set():
                sequence += 1
                try:
                    if kind in ("wrong_secret", "unknown_key"):
                        key_id = key["key_id"] if kind == "wrong_secret" else secrets.token_hex(8)
                        token = f"scos_{key_id}_{secrets.token_urlsafe(32)}"
                        answer = await http.get(
                            "/v1/participants", headers={"Authorization": f"Bearer {token}"}
                        )
                    else:
                        amounts = (2**62, AMOUNT_MAX) if kind == "unfundable" else (1,)
                        answer = await http.post(
                            "/v1/payment-batches",
                            content=_batch_body(f"{run}-{number}", sequence, amounts),
                            headers={
                                "Authorization": f"Bearer {key['api_key']}",
                                "Content-Type": "application/json",
                                "Idempotency-Key": f"a{run}-{number}-{sequence}",
                            },
                        )
                    statuses[str(answer.status_code)] += 1
                    if answer.status_code == 200 and kind in ("unfundable", "big_batches"):
                        for outcome in answer.json()["outcomes"]:
                            outcomes[f"{outcome['status']} {outcome['reason'] or ''}".strip()] += 1
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1
                    await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(one(n)) for n in range(connections)]
        began = time.monotonic()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - began
        stopping.set()
        _, pending = await asyncio.wait(tasks, timeout=2)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        unanswered = len(pending)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)
    return {
        "requests": sum(statuses.values()),
        "requests_per_s": round(sum(statuses.values()) / elapsed, 1),
        "statuses": dict(statuses),
        "payment_outcomes": dict(outcomes),
        "unanswered_at_stop": unanswered,
    }


# -- one attack ----------------------------------------------------------------------------------


def run_attack(
    kind: str, pristine: Path, folder: Path, keys: dict[str, dict[str, str]], args: Any
) -> dict[str, Any]:
    copy = folder / f"{kind}.db"
    shutil.copyfile(pristine, copy)
    db = f"sqlite:///{copy}"
    process, base = start_server(db, folder / f"{kind}.log")
    try:
        httpx.get(base + "/health", timeout=5)
        # Warm up (key cache, routing graph) so the baseline is steady.
        measure_honest(base, keys, min(1.0, args.seconds), args.pace)
        baseline = measure_honest(base, keys, args.seconds, args.pace)
        context = multiprocessing.get_context("spawn")
        ready, stop, results = context.Event(), context.Event(), context.Queue()
        attacker = context.Process(
            target=attacker_process,
            args=(kind, base, keys[ATTACKER], args.attackers, ready, stop, results),
        )
        attacker.start()
        ready.wait(60)
        time.sleep(args.warmup)
        attacked = measure_honest(base, keys, args.seconds, args.pace)
        stop.set()
        try:
            attack = results.get(timeout=60)
        except Exception:
            attack = {"error": "the attacker did not report"}
        attacker.join(10)
        if attacker.is_alive():
            attacker.kill()
        queue_depth = httpx.get(base + "/health", timeout=30).json().get("queue_depth")
    finally:
        stop_server(process)
    ratios = {
        name: round(attacked[f"{name}_ms_p99"] / baseline[f"{name}_ms_p99"], 2)
        if attacked[f"{name}_ms_p99"] and baseline[f"{name}_ms_p99"]
        else None
        for name in ("payment", "read")
    }
    return {
        "attack": kind,
        "baseline": baseline,
        "under_attack": attacked,
        "ratio_payment_p99": ratios["payment"],
        "ratio_read_p99": ratios["read"],
        "meets_target": all(r is not None and r <= TARGET_RATIO for r in ratios.values()),
        "attacker": attack,
        "queue_depth_after": queue_depth,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases: under ~60 s in all")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="attack before measuring")
    parser.add_argument("--attackers", type=int, default=64, help="attacking connections")
    parser.add_argument("--pace", type=float, default=0.05, help="honest cycle (s)")
    parser.add_argument("--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS))
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = 3.0, 2.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        pristine = folder / "pristine.db"
        db = f"sqlite:///{pristine}"
        keys = {bic: create_key(db, bic) for bic in (*HONEST, ATTACKER)}
        results = [run_attack(kind, pristine, folder, keys, args) for kind in args.attacks]
    print(
        json.dumps(
            {
                "benchmark": "abuse_bench",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "quick": args.quick,
                "attackers": args.attackers,
                "honest": {"clients": list(HONEST), "pace_s": args.pace, "seconds": args.seconds},
                "target_ratio_p99": TARGET_RATIO,
                "attacks": results,
                "elapsed_s": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
