"""Many participants attack the real server at once while honest banks pay each other
(issue 8, "Done when"). Afterwards: no honest payment failed, every honest balance is explained
by the payments its owner authorised, the payment records reconcile with the ledger, and
``verify`` passes.

Attacks (each by its own participant key, from its own threads), from the security review:
forged pacs.004 returns (C1), squatting and probing payment leg ids (C2, M3), poison transfer
batches (H1, H3), wrong secrets for a known key id (H2), unfundable payments (H4), balance
probing through route quotes (M2).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter, defaultdict

import httpx
import pytest

from sco_settle.messaging.iso20022 import read_message, return_for, write_message
from sco_settle.payments.plan import leg_id

from .conftest import ROOT, cli, start_server

HONEST = ("HSBKKZKX", "KCJBKZKX", "BKCHKZKA")  # KZT banks paying each other
ATTACKERS = ("ICBKCNBJ", "XIHCCNB2", "GAZPRUMM", "ASBKUZ22")  # none is party to honest flows
ROUNDS = 60
AMOUNT = 1_000_00
EXAMPLE = ROOT / "examples" / "pacs008_kz_to_cn.xml"


def settlement_balances(db_path) -> dict[str, int]:
    """Posted balance (credits - debits) of each honest bank's KZT settlement account."""
    from sco_settle.storage import SqliteStore

    store = SqliteStore(db_path, readonly=True)
    try:
        found = {}
        for stored in store.load_accounts():
            for bic in HONEST:
                if stored.account.ref == f"settlement:{bic}:KZT":
                    found[bic] = stored.credits_posted - stored.debits_posted
        return found
    finally:
        store.close()


def honest_payer(server, key, payer, results, errors):
    with server.client(key) as client:
        for n in range(ROUNDS):
            payee = HONEST[(HONEST.index(payer) + 1 + n % 2) % len(HONEST)]
            instruction = f"H-{payer}-{n}"
            response = client.post(
                "/v1/payments",
                json={
                    "instruction_id": instruction,
                    "creditor_agent": payee,
                    "amount_minor": AMOUNT + n,
                    "currency": "KZT",
                },
                headers={"Idempotency-Key": f"honest-{payer}-{n}"},
            )
            body = response.json()
            if response.status_code != 201 or body.get("status") != "settled":
                errors.append((payer, n, response.status_code, body))
                continue
            results.append((payer, payee, AMOUNT + n))


def attacker(server, key, bic, victim_key_id, honest_done, outcomes):
    """Runs every attack in a loop until the honest clients are done."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    original = read_message(EXAMPLE.read_bytes())
    domestic = original.items[1]  # HSBK -> KCJB, KZT: the honest banks' kind of payment
    forged = write_message(
        return_for(original, domestic, message_id="FORGED", created_at=now, reason_code="AC04")
    ).replace(
        b"<InstgAgt><FinInstnId><BICFI>KCJBKZKX", f"<InstgAgt><FinInstnId><BICFI>{bic}".encode()
    )
    payee_forged = write_message(
        return_for(original, domestic, message_id="FORGED2", created_at=now, reason_code="AC04")
    )
    with server.client(key) as client:
        n = 0
        while not honest_done.is_set() or n < 3:
            n += 1
            tag = uuid.uuid4().hex[:12]

            def post(path, *, record, tag=tag, **kwargs):
                headers = dict(kwargs.pop("headers", {}))
                headers.setdefault("Idempotency-Key", f"attack-{bic}-{tag}-{record}")
                response = client.post(path, headers=headers, **kwargs)
                outcomes[(record, response.status_code)] += 1
                return response

            # C1: a pacs.004 naming itself as returner; and the genuine one naming the payee.
            xml = {"Content-Type": "application/xml"}
            reply = post("/v1/iso20022/messages", record="return-self", content=forged, headers=xml)
            assert b"ACSC" not in reply.content
            post(
                "/v1/iso20022/messages", record="return-as-payee", content=payee_forged, headers=xml
            )
            # C2/M3: squat and probe a victim's next payment leg id.
            victim_leg = leg_id(f"HSBKKZKX:H-HSBKKZKX-{n % ROUNDS}", 0)
            squat = {
                "transfers": [
                    {
                        "id": str(victim_leg),
                        "debit_account": "1",
                        "credit_account": "2",
                        "amount": 1,
                    }
                ]
            }
            post("/v1/transfer-batches", record="squat", json=squat)
            probe = {
                "transfers": [{"id": "5", "pending_id": str(victim_leg), "flags": ["void_pending"]}]
            }
            post("/v1/transfer-batches", record="probe", json=probe)
            # H1/H3: poison strings and out-of-range ids.
            poison = (
                f'{{"transfers":[{{"id":"{10**6 + n}","debit_account":"1","credit_account":"2",'
                '"amount":1,"ref":"\\ud800"}]}'
            )
            post(
                "/v1/transfer-batches",
                record="poison-ref",
                content=poison.encode(),
                headers={"Content-Type": "application/json"},
            )
            bad_pending = {
                "transfers": [{"id": "5", "pending_id": "-1", "flags": ["post_pending"]}]
            }
            post("/v1/transfer-batches", record="poison-pending", json=bad_pending)
            # H4: an amount no one could ever fund.
            reply = post(
                "/v1/payments",
                record="unfundable",
                json={
                    "instruction_id": f"U-{tag}",
                    "creditor_agent": ATTACKERS[(ATTACKERS.index(bic) + 1) % len(ATTACKERS)],
                    "amount_minor": 2**62,
                    "currency": "CNY",
                },
            )
            assert reply.status_code >= 400 or reply.json()["status"] == "rejected", reply.text
            # Paying as an honest bank.
            post(
                "/v1/payments",
                record="pay-as-victim",
                json={
                    "instruction_id": f"V-{tag}",
                    "debtor_agent": "HSBKKZKX",
                    "creditor_agent": bic,
                    "amount_minor": 1,
                    "currency": "KZT",
                },
            )
            # M2: quotes must not show another participant's balance.
            quote = client.post(
                "/v1/route-quotes",
                json={
                    "creditor_agent": "KCJBKZKX",
                    "amount_minor": 10**15,
                    "currency": "CNY",
                    "creditor_currency": "KZT",
                },
            )
            if quote.status_code == 200:
                for exclusion in quote.json().get("exclusions", []):
                    if not exclusion["path"][0].startswith(f"{bic}/"):  # Not its own account.
                        assert exclusion.get("available_minor") is None, exclusion
            # H2: wrong secrets for a victim's known key id (a separate, unauthenticated client).
            wrong = httpx.get(
                server.base_url + "/v1/accounts",
                headers={"Authorization": f"Bearer scos_{victim_key_id}_{'A' * 43}"},
                timeout=30,
            )
            outcomes[("wrong-secret", wrong.status_code)] += 1


@pytest.mark.slow
def test_attackers_cannot_move_or_misstate_honest_money(tmp_path):
    db_path = tmp_path / "attacks.db"
    server = start_server(f"sqlite:///{db_path}", tmp_path / "server.log")
    try:
        keys = {bic: server.key(bic) for bic in (*HONEST, *ATTACKERS)}
        before = settlement_balances(db_path)
        results: list = []
        errors: list = []
        outcomes: Counter = Counter()
        honest_done = threading.Event()
        honest = [
            threading.Thread(target=honest_payer, args=(server, keys[b], b, results, errors))
            for b in HONEST
        ]
        attackers = [
            threading.Thread(
                target=attacker,
                args=(server, keys[b], b, keys["HSBKKZKX"].record.key_id, honest_done, outcomes),
            )
            for b in ATTACKERS
        ]
        for bic in HONEST:  # Each honest key authenticates first: the failure limits then
            with server.client(keys[bic]) as http:  # spare it on this shared loopback address.
                assert http.get("/v1/accounts").status_code == 200
        for thread in attackers + honest:
            thread.start()
        for thread in honest:
            thread.join(timeout=600)
        honest_done.set()
        for thread in attackers:
            thread.join(timeout=600)
        assert not errors, errors[:5]
        assert len(results) == ROUNDS * len(HONEST)
        # No attack succeeded or crashed the server.
        assert not [k for k in outcomes if k[1] >= 500], outcomes
        assert outcomes[("squat", 400)] and outcomes[("poison-ref", 400)], outcomes
        assert outcomes[("return-as-payee", 403)] and outcomes[("return-self", 200)], outcomes
        assert outcomes[("unfundable", 201)] and outcomes[("wrong-secret", 401)], outcomes
        assert not outcomes[("pay-as-victim", 201)] and not outcomes[("pay-as-victim", 200)]
        assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200
    finally:
        server.stop()
    # Every honest balance is explained by the payments its owner authorised.
    expected = dict(before)
    net = defaultdict(int)
    for payer, payee, amount in results:
        net[payer] -= amount
        net[payee] += amount
    assert settlement_balances(db_path) == {b: expected[b] + net[b] for b in HONEST}
    verified = cli("verify", "--db", str(db_path))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "payment records reconcile with the ledger" in verified.stdout
