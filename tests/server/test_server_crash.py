"""The real server killed with SIGKILL under load, again and again (security review M4, issue 8
#3): after every restart each acknowledged payment is there with its answer, a retry of an
unacknowledged one gets a final answer, and the payment records reconcile with the ledger
(``verify``: no money moved without a record, no record without its money)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid

import httpx
import pytest

from .conftest import cli, start_server

KILLS = int(os.environ.get("SCO_CRASH_KILLS", "4"))  # more for a closing note; CI runs 4
CLIENTS = 8
PAIRS = (
    ("HSBKKZKX", "KCJBKZKX", "KZT", "KZT"),
    ("KCJBKZKX", "HSBKKZKX", "KZT", "KZT"),
    ("HSBKKZKX", "BKCHCNBJ", "KZT", "CNY"),
    ("BKCHCNBJ", "HSBKKZKX", "CNY", "KZT"),
)


def client_loop(server, keys, number, stop, acked, unacked):
    rng = random.Random(number)
    while not stop.is_set():
        debtor, creditor, currency, to = PAIRS[rng.randrange(len(PAIRS))]
        size = rng.choice((1, 1, 5))
        body = [
            {
                "instruction_id": f"K{number}-{uuid.uuid4().hex[:16]}",
                "creditor_agent": creditor,
                "amount_minor": rng.randint(1_00, 50_000_00),
                "currency": currency,
                "creditor_currency": to,
            }
            for _ in range(size)
        ]
        path, json = (
            ("/v1/payments", body[0]) if size == 1 else ("/v1/payment-batches", {"payments": body})
        )
        idempotency = f"crash-{uuid.uuid4().hex}"
        request = (keys[debtor], path, json, idempotency)
        try:
            with server.client(keys[debtor]) as http:
                answer = http.post(path, json=json, headers={"Idempotency-Key": idempotency})
        except httpx.HTTPError:
            unacked.append(request)
            return  # The server is gone.
        if answer.status_code in (200, 201):
            acked.append((request, answer.json()))
        elif answer.status_code >= 500:
            unacked.append(request)


def outcomes_of(answer: dict) -> list[dict]:
    return answer.get("outcomes", [answer])


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """(URL, server arguments, audit): a fresh ledger, with its payment records, on SQLite or on
    PostgreSQL, and how to reconcile the records with the ledger (``sco-settle verify``)."""
    if request.param == "sqlite":
        db = tmp_path / "crash.db"
        url, audit_args, options = f"sqlite:///{db}", ("--db", str(db)), {}
    else:
        url = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")
        audit_args, options = ("--db", url, "--schema", schema), {"schema": schema}

    def audit() -> None:
        verified = cli("verify", *audit_args)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "payment records reconcile with the ledger" in verified.stdout
        assert "0 in flight" in verified.stdout

    return url, (), options, audit


@pytest.mark.slow
def test_sigkill_under_load_loses_nothing_and_records_reconcile(tmp_path, database):
    url, extra, options, audit = database
    rng = random.Random(5)
    acked: list = []
    unacked: list = []
    keys: dict = {}
    for kill in range(KILLS):
        server = start_server(url, tmp_path / f"server{kill}.log", *extra, **options)
        if not keys:
            keys = {bic: server.key(bic) for bic in {p[0] for p in PAIRS}}
        stop = threading.Event()
        threads = [
            threading.Thread(target=client_loop, args=(server, keys, n, stop, acked, unacked))
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(1.0, 2.5))
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server.stop()
    server = start_server(url, tmp_path / "final.log", *extra, **options)
    try:
        assert acked, "no request was acknowledged before the kills"
        for (issued, path, json, idempotency), first in acked:
            with server.client(issued) as http:
                replay = http.post(path, json=json, headers={"Idempotency-Key": idempotency})
                assert replay.json() == first  # The acknowledged answer, byte for byte.
                for outcome in outcomes_of(first):
                    shown = http.get(f"/v1/payments/{outcome['payment_id']}")
                    assert shown.status_code == 200, outcome  # Acknowledged: never lost.
                    if outcome["status"] in ("settled", "rejected"):
                        assert shown.json()["status"] == outcome["status"]
        for issued, path, json, idempotency in unacked:
            with server.client(issued) as http:
                again = http.post(path, json=json, headers={"Idempotency-Key": idempotency})
                assert again.status_code in (200, 201), again.text
                for outcome in outcomes_of(again.json()):
                    assert outcome["status"] in ("settled", "queued", "rejected"), outcome
    finally:
        server.stop()
    audit()
