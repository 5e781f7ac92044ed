"""Many clients moving money among a few hot accounts at once, through transfer batches and
payments; afterwards every balance is what the acknowledged requests imply, and the journal
replays clean (``ledger.invariants.verify``)."""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from sco_settle.ledger.invariants import verify
from sco_settle.storage import SqliteStore
from tests.server.conftest import CNY_BANKS, start_server

CLIENTS = 16
ROUNDS = 12
TRANSFERS_PER_BATCH = 25


def drive(server, keys, accounts, number: int) -> dict[str, int]:
    """One client: alternate a transfer batch and a payment; return the net moves it was told
    succeeded, per account id."""
    rng = random.Random(number)
    bic = CNY_BANKS[number % len(CNY_BANKS)]
    own = accounts[bic]
    others = [b for b in CNY_BANKS if b != bic]
    moved: dict[str, int] = defaultdict(int)
    with server.client(keys[bic]) as http:
        for round_number in range(ROUNDS):
            transfers = []
            for index in range(TRANSFERS_PER_BATCH):
                # Now and then one far beyond any balance: refused, moves nothing.
                amount = 10**15 if index == 7 else rng.randint(1, 1000)
                linked = ["linked"] if index % 5 in (1, 2) else []
                transfers.append(
                    {
                        "id": str(secrets.randbits(120)),
                        "debit_account": own,
                        "credit_account": accounts[rng.choice(others)],
                        "amount": amount,
                        "flags": linked,
                    }
                )
            response = http.post(
                "/v1/transfer-batches",
                json={"transfers": transfers},
                headers={"Idempotency-Key": f"c{number}-b{round_number}"},
            )
            assert response.status_code == 200, response.text
            for transfer, result in zip(transfers, response.json()["results"], strict=True):
                if result["result"] == "ok":
                    moved[transfer["debit_account"]] -= transfer["amount"]
                    moved[transfer["credit_account"]] += transfer["amount"]
            creditor = rng.choice(others)
            amount = rng.randint(1, 5000)
            response = http.post(
                "/v1/payments",
                json={
                    "instruction_id": f"c{number}-p{round_number}",
                    "creditor_agent": creditor,
                    "amount_minor": amount,
                    "currency": "CNY",
                },
                headers={"Idempotency-Key": f"c{number}-p{round_number}"},
            )
            assert response.status_code == 201, response.text
            if response.json()["status"] == "settled":
                moved[own] -= amount
                moved[accounts[creditor]] += amount
    return moved


@pytest.fixture(scope="module")
def hot(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hot")
    server = start_server(f"sqlite:///{folder}/ledger.db", folder / "server.log")
    yield server, folder / "ledger.db"
    server.stop()


def test_concurrent_clients_conserve_money_and_the_ledger_verifies(hot):
    server, path = hot
    keys = {bic: server.key(bic) for bic in CNY_BANKS}
    accounts = {}
    for bic in CNY_BANKS:
        with server.client(keys[bic]) as http:
            accounts[bic] = http.get(f"/v1/accounts/settlement:{bic}:CNY").json()["id"]

    def balances() -> dict[str, int]:
        found = {}
        for bic, account_id in accounts.items():
            with server.client(keys[bic]) as http:
                account = http.get(f"/v1/accounts/{account_id}").json()
            found[account_id] = account["balance_posted_minor"]
        return found

    before = balances()
    with ThreadPoolExecutor(CLIENTS) as pool:
        moves = list(pool.map(lambda n: drive(server, keys, accounts, n), range(CLIENTS)))
    after = balances()
    expected = dict(before)
    for moved in moves:
        for account_id, amount in moved.items():
            expected[account_id] += amount
    assert after == expected
    assert sum(after.values()) == sum(before.values())
    assert sum(abs(v) for moved in moves for v in moved.values()) > 0

    server.stop()
    store = SqliteStore(path, readonly=True)
    try:
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.violation
    assert report.transfers >= CLIENTS * ROUNDS
