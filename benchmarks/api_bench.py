"""End-to-end API throughput: payments/s and transfers/s over HTTP on loopback.

A real server process (uvicorn, one worker: the ledger is single-writer) is started on a fresh
database; N concurrent clients (httpx AsyncClient, one connection each) then run, for a fixed
time each:

- ``payments``: single ``POST /v1/payments`` (CNY between the five Chinese banks, RTGS);
- ``transfers_batch_<n>``: ``POST /v1/transfer-batches`` of n transfers among the same hot
  accounts (each client debits its own bank's account);
- ``transfers_single``: batches of one transfer (what group commit is for).

Each client holds a participant key; the bearer key is verified with argon2 once and cached.
After the run the server is stopped and the ledger is replayed (``ledger.invariants.verify``).
Latencies are per HTTP request (a batch is one request). Prints one JSON document.

    python benchmarks/api_bench.py --quick            # < 30 s, SQLite (and PostgreSQL if up)
    python benchmarks/api_bench.py --seconds 20 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BANKS = ("BKCHCNBJ", "ICBKCNBJ", "ICBKCNBJSJG", "XIHCCNB2", "BOXJCNU0")
POSTGRES_DSN = os.environ.get("SCO_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(args: argparse.Namespace) -> None:
    """The server process (``--serve``)."""
    import uvicorn

    from sco_settle.server import ServerConfig, create_app, parse_database_url
    from sco_settle.server.logging import configure_logging

    config = ServerConfig(parse_database_url(args.db, schema=args.schema), log_level="WARNING")
    configure_logging("WARNING")
    uvicorn.run(
        create_app(config),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        log_level="warning",
    )


def make_keys(db: str, schema: str) -> dict[str, str]:
    from sco_settle.server import parse_database_url
    from sco_settle.server.db import StateDb
    from sco_settle.server.keys import KeyStore, Role

    state = StateDb(parse_database_url(db, schema=schema))
    try:
        store = KeyStore(state)
        return {bic: store.create(bic, Role.PARTICIPANT).api_key for bic in BANKS}
    finally:
        state.close()


def start_server(db: str, schema: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable,
        __file__,
        "--serve",
        "--db",
        db,
        "--schema",
        schema,
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read() if process.stderr else ''}")
    process.kill()
    raise RuntimeError("server did not start in 60 s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def account_ids(base: str, keys: dict[str, str]) -> dict[str, str]:
    found = {}
    async with httpx.AsyncClient(base_url=base, verify=False) as client:
        for bic, key in keys.items():
            response = await client.get(
                f"/v1/accounts/settlement:{bic}:CNY", headers={"Authorization": f"Bearer {key}"}
            )
            response.raise_for_status()
            found[bic] = response.json()["id"]
    return found


class Phase:
    def __init__(self, name: str, seconds: float, clients: int) -> None:
        self.name = name
        self.seconds = seconds
        self.clients = clients
        self.latencies: list[float] = []
        self.items = 0
        self.failed_requests = 0
        self.refused_items = 0

    def add(self, part: dict[str, Any]) -> None:
        self.latencies += part["latencies"]
        self.items += part["items"]
        self.failed_requests += part["failed_requests"]
        self.refused_items += part["refused_items"]

    def report(self, elapsed: float, unit: str) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "phase": self.name,
            "clients": self.clients,
            "seconds": round(elapsed, 2),
            "requests": len(lat),
            f"{unit}": self.items,
            f"{unit}_per_s": round(self.items / elapsed, 1),
            "latency_ms_p50": round(statistics.median(lat) * 1000, 2) if lat else None,
            "latency_ms_p99": round(lat[max(int(len(lat) * 0.99) - 1, 0)] * 1000, 2)
            if lat
            else None,
            "failed_requests": self.failed_requests,
            "refused_items": self.refused_items,
        }


def client_process(job: dict[str, Any]) -> dict[str, Any]:
    """One load-generating process: ``clients`` concurrent requests on one event loop."""
    return asyncio.run(_clients(**job))


async def _clients(
    base: str,
    keys: dict[str, str],
    accounts: dict[str, str],
    first: int,
    clients: int,
    seconds: float,
    batch: int | None,
    start_at: float,
    payment_batch: int | None = None,
) -> dict[str, Any]:
    """``batch`` None: single payments (or, with ``payment_batch``, payment batches of that
    size); else transfer batches of that size."""
    result: dict[str, Any] = {"latencies": [], "items": 0, "failed_requests": 0, "refused_items": 0}
    run = uuid.uuid4().int % 10**12
    banks = list(keys)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    # verify=False: no TLS here, and building a certificate store costs ~60 ms per client.
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits, verify=False) as http:
        await asyncio.sleep(max(start_at - time.time(), 0))
        deadline = time.perf_counter() + seconds

        async def client(number: int) -> None:
            bic = banks[number % len(banks)]
            others = [accounts[b] for b in banks if b != bic]
            own = accounts[bic]
            headers = {"Authorization": f"Bearer {keys[bic]}", "Content-Type": "application/json"}
            sequence = 0
            while time.perf_counter() < deadline:
                sequence += 1
                tag = f"{run}-{number}-{sequence}"
                if batch is None:
                    count = payment_batch or 1
                    items = []
                    for i in range(count):
                        creditor = banks[(number + sequence + i) % len(banks)]
                        if creditor == bic:
                            creditor = banks[(number + sequence + i + 1) % len(banks)]
                        items.append(
                            {
                                "instruction_id": f"b{tag}-{i}",
                                "creditor_agent": creditor,
                                "amount_minor": 1,
                                "currency": "CNY",
                            }
                        )
                    if payment_batch:
                        path, body = "/v1/payment-batches", json.dumps({"payments": items})
                    else:
                        path, body = "/v1/payments", json.dumps(items[0])
                else:
                    path = "/v1/transfer-batches"
                    base_id = (run * 10**6 + number * 10**4 + sequence) * 10**4
                    body = (
                        '{"transfers":['
                        + ",".join(
                            f'{{"id":"{base_id + i}","debit_account":"{own}",'
                            f'"credit_account":"{others[i % len(others)]}","amount":1}}'
                            for i in range(batch)
                        )
                        + "]}"
                    )
                started = time.perf_counter()
                response = await http.post(
                    path, content=body, headers={**headers, "Idempotency-Key": tag}
                )
                result["latencies"].append(time.perf_counter() - started)
                if response.status_code >= 300:
                    result["failed_requests"] += 1
                    continue
                found = response.json()
                if batch is None and payment_batch:
                    result["items"] += payment_batch
                    result["refused_items"] += sum(
                        o["status"] != "settled" for o in found["outcomes"]
                    )
                elif batch is None:
                    result["items"] += 1
                    result["refused_items"] += found["status"] != "settled"
                else:
                    result["items"] += batch
                    result["refused_items"] += sum(r["result"] != "ok" for r in found["results"])

        await asyncio.gather(*(client(first + n) for n in range(clients)))
        result["elapsed"] = time.perf_counter() - (deadline - seconds)
    return result


def run_phase(
    base: str,
    keys: dict[str, str],
    accounts: dict[str, str],
    phase: Phase,
    batch: int | None,
    processes: int,
    payment_batch: int | None = None,
) -> float:
    """Spread ``phase.clients`` over ``processes`` load generators (one Python process cannot
    drive 32 HTTP clients fast enough); all start together."""
    start_at = time.time() + 0.5
    share = [phase.clients // processes + (i < phase.clients % processes) for i in range(processes)]
    jobs = [
        {
            "base": base,
            "keys": keys,
            "accounts": accounts,
            "first": sum(share[:i]),
            "clients": count,
            "seconds": phase.seconds,
            "batch": batch,
            "payment_batch": payment_batch,
            "start_at": start_at,
        }
        for i, count in enumerate(share)
        if count
    ]
    with ProcessPoolExecutor(len(jobs)) as pool:
        parts = list(pool.map(client_process, jobs))
    elapsed = max(part["elapsed"] for part in parts)
    for part in parts:
        phase.add(part)
    return elapsed


def verify(db: str, schema: str) -> dict[str, Any]:
    from sco_settle.ledger.invariants import verify as verify_store
    from sco_settle.server import parse_database_url

    database = parse_database_url(db, schema=schema)
    if database.path is not None:
        from sco_settle.storage import SqliteStore

        store: Any = SqliteStore(database.path, readonly=True)
    else:
        from sco_settle.storage.postgres import PostgresStore

        store = PostgresStore(database.dsn, schema=database.schema, readonly=True)
    try:
        report = verify_store(store)
    finally:
        store.close()
    return {"ok": report.ok, "transfers": report.transfers, "violation": report.violation}


def backend_run(name: str, db: str, schema: str, args: argparse.Namespace) -> dict[str, Any]:
    keys = make_keys(db, schema)
    process, base = start_server(db, schema)
    phases = []
    try:
        accounts = asyncio.run(account_ids(base, keys))
        plan: list[tuple[str, int | None, str, int | None]] = [
            ("payments", None, "payments", None),
            ("payments_batch_100", None, "payments", 100),
        ]
        plan += [(f"transfers_batch_{size}", size, "transfers", None) for size in args.batch_sizes]
        plan += [("transfers_single", 1, "transfers", None)]
        for label, batch, unit, payment_batch in plan:
            phase = Phase(label, args.seconds, args.clients)
            elapsed = run_phase(
                base, keys, accounts, phase, batch, args.client_processes, payment_batch
            )
            phases.append(phase.report(elapsed, unit))
    finally:
        stop_server(process)
    return {"backend": name, "phases": phases, "verify": verify(db, schema)}


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_DSN, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
        return True
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases: under 30 s total")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--schema", default="sco_settle", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    if args.quick:
        args.seconds, args.batch_sizes = 1.5, [1000]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        db = f"sqlite:///{folder}/bench.db"
        results.append(backend_run("sqlite", db, "sco_settle", args))
        if not args.no_postgres and postgres_reachable():
            schema = f"sco_bench_{uuid.uuid4().hex[:10]}"
            try:
                results.append(backend_run("postgres", POSTGRES_DSN, schema, args))
            finally:
                import psycopg

                with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
                    for name in (schema, f"{schema}_api"):
                        connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    print(
        json.dumps(
            {
                "benchmark": "api_bench",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "quick": args.quick,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
