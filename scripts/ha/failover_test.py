"""Failover under load: the primary is killed with SIGKILL while clients pay; nothing is lost.

One run, on the pg_auto_failover formation of ``scripts/ha/cluster.sh`` (started if it is not
up; docs/deployment-ha.md):

1. ``sco-settle serve --ha`` on the formation URI, a fresh schema (the SCO network installed).
2. Clients pay at a steady rate through the real API, each request with an ``Idempotency-Key``;
   a request answered 503 or cut off is retried with the same key (after its Retry-After) until
   it is answered.
3. Mid-load the primary node is lost: its pg_auto_failover keeper and its postgres (postmaster
   and every child) are killed with SIGKILL at once. (Killing only the postmaster is not a
   failover: the keeper restarts it in place within a second.) The monitor promotes the
   synchronous standby; the server fences itself and reconnects to it.
4. Afterwards: every acknowledged payment is there exactly once with the acknowledged status, a
   retry of each with its key gets the same outcome, the payment records hold exactly the
   payments issued (none twice, none extra), and ``sco-settle verify`` (the journal replay and
   the reconciliation of the payment records with the ledger) passes.
5. The killed node is started again and rejoins as the new synchronous standby, for the next run.

Prints one JSON object per run (``write_gap_seconds``: the longest time without an acknowledged
write, around the kill) and a summary; exits 1 if any run lost, doubled or failed to verify::

    python scripts/ha/failover_test.py --runs 10
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "ha" / "cluster.sh"
SERVER_START_SECONDS_MAX = 120
PAIRS = (  # Funded in the SCO network's opening balances (an assumption of the simulator).
    ("HSBKKZKX", "KCJBKZKX", "KZT", "KZT"),
    ("KCJBKZKX", "HSBKKZKX", "KZT", "KZT"),
    ("HSBKKZKX", "BKCHCNBJ", "KZT", "CNY"),
    ("BKCHCNBJ", "HSBKKZKX", "CNY", "KZT"),
)


@dataclass(frozen=True)
class Options:
    rate_per_second: float
    clients: int
    before_seconds: float
    after_seconds: float
    request_deadline_seconds: float
    cluster_env: dict[str, str]


@dataclass
class Request:
    """One payment request, retried with the same key until it is answered."""

    debtor: str
    body: dict[str, Any]
    idempotency_key: str
    sent_at: float = 0.0
    attempts: int = 0
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)
    acked_at: float = 0.0


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Request] = field(default_factory=list)
    retries: int = 0
    unavailable: int = 0  # 503 answers (fenced, reconnecting)
    server_errors: int = 0  # other 5xx: must stay 0
    cut_off: int = 0  # connection errors and timeouts


@dataclass
class RunReport:
    run: int
    schema: str
    killed_node: str
    issued: int
    acknowledged: int
    unanswered: int
    retries: int
    http_503: int
    http_5xx_other: int
    cut_off: int
    missing: int
    status_mismatches: int
    replay_mismatches: int
    recorded_payments: int
    duplicates: int
    verify_ok: bool
    write_gap_seconds: float
    writes_resumed_after_kill_seconds: float  # the first ack of a payment sent after the kill
    server_terms: int
    rejoin_seconds: float

    @property
    def ok(self) -> bool:
        return (
            self.verify_ok
            and self.missing == self.duplicates == self.unanswered == 0
            and self.status_mismatches == self.replay_mismatches == self.http_5xx_other == 0
            and self.recorded_payments == self.issued
        )


# -- the formation ------------------------------------------------------------------------------


def cluster(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        ["bash", str(CLUSTER), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


def database_url(env: dict[str, str]) -> str:
    """The formation URI (``target_session_attrs=read-write``), as the postgres user."""
    uri = cluster(env, "start").splitlines()[-1]
    assert uri.startswith("postgres://"), uri
    return uri.replace("postgres://", "postgresql://postgres@", 1)


def primary_node(url: str) -> str:
    """The name of the node that takes writes now (nodes are node1, node2 on ports +1, +2)."""
    with psycopg.connect(url, connect_timeout=5) as connection:
        row = connection.execute("SELECT inet_server_port()").fetchone()
    assert row is not None
    monitor_port = int(os.environ.get("SCO_HA_PORT", "6540"))
    return f"node{int(row[0]) - monitor_port}"


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found = [root]
    for pid in found:
        found.extend(child for child, parent in parents.items() if parent == pid)
    return found


def kill_node(env: dict[str, str], node: str) -> list[int]:
    """SIGKILL the node's keeper and postgres, every process of both, at once: a lost machine."""
    words = cluster(env, "node", node, "pids").split()
    keeper, postmaster = int(words[1]), int(words[3])
    pids = sorted(set(descendants(keeper)) | set(descendants(postmaster)))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


# -- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, schema: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable, "-c", "from sco_settle.cli.main import main; main()",
        "serve", "--ha", "--db", url, "--schema", schema, "--port", str(port),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: see {log_path}")
        try:
            if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not become the writer in time: see {log_path}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api_keys(url: str, schema: str) -> dict[str, str]:
    """A participant key for each paying bank (created in the API schema, durably)."""
    from sco_settle.server import parse_database_url
    from sco_settle.server.db import StateDb
    from sco_settle.server.keys import KeyStore, Role

    state_db = StateDb(parse_database_url(url, schema=schema))
    try:
        store = KeyStore(state_db)
        debtors = sorted({pair[0] for pair in PAIRS})
        return {bic: store.create(bic, Role.PARTICIPANT).api_key for bic in debtors}
    finally:
        state_db.close()


# -- the clients ---------------------------------------------------------------------------------


def settle(http: httpx.Client, key: str, request: Request, options: Options, tally: Tally) -> None:
    """Send ``request`` until it is answered (anything but a 5xx, a 429 or a cut connection),
    always with the same Idempotency-Key. Retries come after the server's Retry-After, at most
    0.25 s: the clients are impatient so that the gap measured is the server's, not theirs."""
    deadline = time.monotonic() + options.request_deadline_seconds
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": request.idempotency_key}
    while time.monotonic() < deadline:
        request.attempts += 1
        try:
            answer = http.post("/v1/payments", json=request.body, headers=headers)
        except httpx.HTTPError:
            with tally.lock:
                tally.cut_off += 1
            time.sleep(0.25)
            continue
        if answer.status_code < 500 and answer.status_code != 429:
            request.status, request.answer = answer.status_code, answer.json()
            request.acked_at = time.monotonic()
            return
        with tally.lock:
            if answer.status_code == 503:
                tally.unavailable += 1
            elif answer.status_code >= 500:
                tally.server_errors += 1
        time.sleep(min(0.25, float(answer.headers.get("Retry-After", "0.25"))))


def client(base_url: str, keys: dict[str, str], number: int, options: Options, tally: Tally,
           stop: threading.Event) -> None:  # fmt: skip
    interval = options.clients / options.rate_per_second
    next_at = time.monotonic() + interval * number / options.clients
    with httpx.Client(base_url=base_url, timeout=10) as http:
        sent = 0
        while not stop.is_set():
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            debtor, creditor, currency, to = PAIRS[(number + sent) % len(PAIRS)]
            body = {
                "instruction_id": f"HA{number}-{uuid.uuid4().hex[:20]}",
                "creditor_agent": creditor,
                "amount_minor": 1_000 + 7 * sent,
                "currency": currency,
                "creditor_currency": to,
            }
            request = Request(debtor, body, f"ha-{uuid.uuid4().hex}", time.monotonic())
            with tally.lock:
                tally.requests.append(request)
            settle(http, keys[debtor], request, options, tally)
            sent += 1


def write_gap(acks: list[float], start: float, end: float) -> float:
    """The longest time in [start, end] without an acknowledged write."""
    times = [start, *sorted(t for t in acks if start <= t <= end), end]
    return max(later - earlier for earlier, later in itertools.pairwise(times))


# -- the checks ----------------------------------------------------------------------------------


def payment_id(request: Request) -> str:
    return f"{request.debtor}:{request.body['instruction_id']}"


def check_acknowledged(base_url: str, keys: dict[str, str], acked: list[Request]) -> dict[str, int]:
    """Each acknowledged payment is shown with its acknowledged status, and a retry with its key
    gets the same outcome again."""
    found = {"missing": 0, "status_mismatches": 0, "replay_mismatches": 0}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for request in acked:
            auth = {"Authorization": f"Bearer {keys[request.debtor]}"}
            shown = http.get(f"/v1/payments/{request.answer['payment_id']}", headers=auth)
            if shown.status_code != 200:
                found["missing"] += 1
                continue
            final = request.answer["status"] in ("settled", "rejected")
            if final and shown.json()["status"] != request.answer["status"]:
                found["status_mismatches"] += 1
            headers = {**auth, "Idempotency-Key": request.idempotency_key}
            again = http.post("/v1/payments", json=request.body, headers=headers)
            same = again.status_code == request.status and (
                again.json().get("payment_id") == request.answer["payment_id"]
                and (not final or again.json().get("status") == request.answer["status"])
            )
            found["replay_mismatches"] += 0 if same else 1
    return found


def recorded(url: str, schema: str, issued: set[str]) -> tuple[int, int, int]:
    """(payments recorded, recorded more than once, issued but not recorded)."""
    query = f'SELECT payment_id FROM "{schema}".payments'  # schema: made here, [a-z0-9_]
    with psycopg.connect(url, connect_timeout=5) as connection:
        ids = [row[0] for row in connection.execute(query)]
    return len(ids), len(ids) - len(set(ids)), len(issued - set(ids))


def verify(url: str, schema: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", "from sco_settle.cli.main import main; main()",
         "verify", "--db", url, "--schema", schema],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    ok = done.returncode == 0 and "payment records reconcile with the ledger" in done.stdout
    if not ok:
        sys.stderr.write(done.stdout + done.stderr)
    return ok


def drop_schemas(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        for name in (schema, f"{schema}_api"):
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


# -- one run -------------------------------------------------------------------------------------


def load(base_url: str, keys: dict[str, str], options: Options, env: dict[str, str],
         url: str) -> tuple[Tally, str, float, float]:  # fmt: skip
    """Pay, kill the primary mid-load, pay on until ``after_seconds`` past the first write
    acknowledged after the kill. (tally, killed node, kill time, end time)."""
    tally, stop = Tally(), threading.Event()
    threads = [
        threading.Thread(target=client, args=(base_url, keys, n, options, tally, stop))
        for n in range(options.clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(options.before_seconds)
    node = primary_node(url)
    killed_at = time.monotonic()
    kill_node(env, node)
    give_up = killed_at + 180
    while time.monotonic() < give_up and not resumed_after(tally.requests, killed_at):
        time.sleep(0.1)
    time.sleep(options.after_seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return tally, node, killed_at, time.monotonic()


def resumed_after(requests: list[Request], killed_at: float) -> list[float]:
    """When payments first sent after the kill were acknowledged."""
    return [r.acked_at for r in list(requests) if r.sent_at > killed_at and r.acked_at]


def run_once(number: int, options: Options, work: Path) -> RunReport:
    env = options.cluster_env
    url = database_url(env)
    schema = f"ha_failover_{number}_{uuid.uuid4().hex[:8]}"
    log_path = work / f"server-{schema}.log"
    process, base_url = start_server(url, schema, log_path)
    try:
        keys = api_keys(url, schema)
        started_at = time.monotonic()
        tally, node, killed_at, ended_at = load(base_url, keys, options, env, url)
        acked = [r for r in tally.requests if r.acked_at]
        after = resumed_after(acked, killed_at)
        found = check_acknowledged(base_url, keys, acked)
        issued = {payment_id(r) for r in tally.requests}
        count, duplicates, missing = recorded(url, schema, issued)
        terms = log_path.read_text().count('"event": "ha_term_opened"')
    finally:
        stop_server(process)
    verified = verify(url, schema)
    rejoin_started = time.monotonic()
    cluster(env, "node", node, "start")
    cluster(env, "wait")
    report = RunReport(
        run=number, schema=schema, killed_node=node, issued=len(tally.requests),
        acknowledged=len(acked), unanswered=len(tally.requests) - len(acked),
        retries=sum(r.attempts - 1 for r in tally.requests), http_503=tally.unavailable,
        http_5xx_other=tally.server_errors, cut_off=tally.cut_off,
        missing=found["missing"] + missing, status_mismatches=found["status_mismatches"],
        replay_mismatches=found["replay_mismatches"], recorded_payments=count,
        duplicates=duplicates, verify_ok=verified,
        write_gap_seconds=round(write_gap([r.acked_at for r in acked], started_at, ended_at), 3),
        writes_resumed_after_kill_seconds=round(min(after) - killed_at, 3) if after else -1.0,
        server_terms=terms, rejoin_seconds=round(time.monotonic() - rejoin_started, 3),
    )  # fmt: skip
    if report.ok:
        drop_schemas(url, schema)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=40.0, help="payments per second, in all")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--before", type=float, default=4.0, help="seconds of load before the kill")
    parser.add_argument(
        "--after", type=float, default=4.0, help="seconds of load after writes resume"
    )
    parser.add_argument("--dir", default=os.environ.get("SCO_HA_DIR", "/tmp/sco-ha"))
    parser.add_argument("--port", default=os.environ.get("SCO_HA_PORT", "6540"))
    parser.add_argument("--destroy", action="store_true", help="remove the formation at the end")
    args = parser.parse_args()
    env = {"SCO_HA_DIR": args.dir, "SCO_HA_PORT": str(args.port)}
    os.environ.update(env)
    options = Options(args.rate, args.clients, args.before, args.after, 120.0, env)
    work = Path(args.dir + "-logs")
    work.mkdir(parents=True, exist_ok=True)
    reports = []
    try:
        for number in range(1, args.runs + 1):
            report = run_once(number, options, work)
            reports.append(report)
            print(json.dumps({**asdict(report), "ok": report.ok}), flush=True)
    finally:
        if args.destroy:
            cluster(env, "destroy")
    gaps = sorted(report.write_gap_seconds for report in reports)
    summary = {
        "runs": len(reports),
        "ok": all(report.ok for report in reports),
        "acknowledged": sum(report.acknowledged for report in reports),
        "lost": sum(report.missing for report in reports),
        "duplicates": sum(report.duplicates for report in reports),
        "write_gap_seconds_max": gaps[-1] if gaps else None,
        "write_gap_seconds_median": gaps[len(gaps) // 2] if gaps else None,
    }
    print(json.dumps({"summary": summary}), flush=True)
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
