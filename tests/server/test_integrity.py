"""Money never moves, and is never reported moved, without its owner's authority (security review
C1, C2, M3, I1), through the real server."""

from __future__ import annotations

import datetime as dt
import uuid

from lxml import etree

from sco_settle.messaging.iso20022 import read_message, return_for, write_message
from sco_settle.payments.plan import leg_id
from sco_settle.server.keys import Role

from .test_isolation import pacs_008

PAYER, PAYEE, STRANGER = "XIHCCNB2", "BOXJCNU0", "ICBKCNBJSJG"
XML = {"Content-Type": "application/xml"}


def key(tag: str) -> dict[str, str]:
    return {"Idempotency-Key": f"{tag}-{uuid.uuid4().hex}"}


def statuses(xml: bytes) -> list[tuple[str, str | None]]:
    root = etree.fromstring(xml)
    ns = {"p": root.nsmap[None]}
    return [
        (
            tx.findtext("p:TxSts", namespaces=ns),
            tx.findtext("p:StsRsnInf/p:Rsn/p:Cd", namespaces=ns),
        )
        for tx in root.iterfind(".//p:TxInfAndSts", ns)
    ]


def balance(http, ref: str) -> int:
    account = http.get(f"/v1/accounts/{ref}").json()
    return int(account["credits_posted"]) - int(account["debits_posted"])


def test_forged_pacs004_returns_are_refused_and_move_nothing(live):
    """C1: the payer sends a pacs.004 naming the payee as returner (403), or naming itself; a
    bank party to nothing names itself. Only the payee's own key returns the payment."""
    payer, payee, stranger = live.key(PAYER), live.key(PAYEE), live.key(STRANGER)
    operator = live.key("PBOCCNBJ", Role.NETWORK_OPERATOR)
    message = pacs_008(PAYER, PAYEE)
    with live.client(payer) as http:
        reply = http.post("/v1/iso20022/messages", content=message, headers={**XML, **key("p")})
        assert statuses(reply.content) == [("ACSC", None)]
    original = read_message(message)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    genuine = write_message(
        return_for(original, original.items[0], message_id="R1", created_at=now, reason_code="AC04")
    )
    returner = f"<InstgAgt><FinInstnId><BICFI>{PAYEE}".encode()
    assert returner in genuine

    def naming(bic: str) -> bytes:
        return genuine.replace(returner, f"<InstgAgt><FinInstnId><BICFI>{bic}".encode())

    with live.client(operator) as http_op:
        before = {bic: balance(http_op, f"settlement:{bic}:CNY") for bic in (PAYER, PAYEE)}
        for issued, body in ((payer, genuine), (stranger, genuine), (operator, genuine)):
            with live.client(issued) as http:
                answer = http.post(
                    "/v1/iso20022/messages", content=body, headers={**XML, **key("f")}
                )
                assert answer.status_code == 403, answer.text
                assert answer.json()["code"] == "debtor_agent_not_permitted"
        for issued, bic in ((payer, PAYER), (stranger, STRANGER)):
            with live.client(issued) as http:
                answer = http.post(
                    "/v1/iso20022/messages", content=naming(bic), headers={**XML, **key("s")}
                )
                assert answer.status_code == 200 and statuses(answer.content) == [("RJCT", "NARR")]
        assert {bic: balance(http_op, f"settlement:{bic}:CNY") for bic in before} == before
        with live.client(payee) as http:
            answer = http.post(
                "/v1/iso20022/messages", content=genuine, headers={**XML, **key("g")}
            )
            assert statuses(answer.content) == [("ACSC", None)]
        after = {bic: balance(http_op, f"settlement:{bic}:CNY") for bic in before}
        assert after == {PAYER: before[PAYER] + 1000, PAYEE: before[PAYEE] - 1000}


def test_payment_leg_ids_cannot_be_squatted_or_probed(live):
    """C2 / M3: a payment's leg ids are derived from its public id. Any key, of any role, that
    names one (as a transfer id or a pending id) is refused before anything is queued, and the
    payment then settles for real: money moves exactly once."""
    payer = live.key(PAYER)
    operator = live.key("PBOCCNBJ", Role.NETWORK_OPERATOR)
    instruction = f"SQUAT-{uuid.uuid4().hex[:8]}"
    target = leg_id(f"{PAYER}:{instruction}", 0)
    with live.client(payer) as http:
        own = http.get(f"/v1/accounts/settlement:{PAYER}:CNY").json()["id"]
        payee = str(leg_id("x", 0) % 10)  # any id: the batch must not get that far
        batches = [
            [
                {
                    "id": str(target),
                    "debit_account": own,
                    "credit_account": payee,
                    "amount": 1,
                    "flags": ["pending"],
                },
            ],
            [{"id": "77", "pending_id": str(target), "flags": ["void_pending"]}],
            [{"id": str(2**127), "debit_account": own, "credit_account": own, "amount": 1}],
        ]
        for issued in (payer, operator):
            with live.client(issued) as client:
                for batch in batches:
                    answer = client.post(
                        "/v1/transfer-batches", json={"transfers": batch}, headers=key("q")
                    )
                    assert answer.status_code == 400, answer.text
                    assert answer.json()["code"] == "transfer_id_reserved"
        before = balance(http, f"settlement:{PAYER}:CNY")
        paid = http.post(
            "/v1/payments",
            json={
                "instruction_id": instruction,
                "creditor_agent": PAYEE,
                "amount_minor": 900,
                "currency": "CNY",
            },
            headers=key("pay"),
        )
        assert paid.status_code == 201 and paid.json()["status"] == "settled", paid.text
        assert balance(http, f"settlement:{PAYER}:CNY") == before - 900
        assert paid.json()["transfer_ids"][0] == str(target)
    with live.client(operator) as http_op:
        leg = http_op.get(f"/v1/accounts/settlement:{PAYER}:CNY/transfers").json()["items"]
        assert any(item["id"] == str(target) and item["amount"] == 900 for item in leg)


def test_a_resubmitted_payment_id_with_other_content_is_a_duplicate(live):
    payer = live.key(PAYER)
    body = {
        "instruction_id": f"D-{uuid.uuid4().hex[:8]}",
        "creditor_agent": PAYEE,
        "amount_minor": 300,
        "currency": "CNY",
    }
    with live.client(payer) as http:
        first = http.post("/v1/payments", json=body, headers=key("d1"))
        assert first.status_code == 201 and first.json()["status"] == "settled"
        before = balance(http, f"settlement:{PAYER}:CNY")
        changed = http.post("/v1/payments", json={**body, "amount_minor": 5}, headers=key("d2"))
        assert changed.json()["status"] == "rejected" and changed.json()["reason"] == "DUPL"
        assert balance(http, f"settlement:{PAYER}:CNY") == before
        shown = http.get(f"/v1/payments/{first.json()['payment_id']}").json()
        assert shown["status"] == "settled" and shown["amount_delivered_minor"] == 300


def test_a_central_banks_participant_key_cannot_mint_or_draw_swap_lines(live):
    """I1: a central bank holding an ordinary participant key debited its issuance account (no
    balance limit) and created money, or drew on a swap line directly. Those accounts move only
    through the payment engine (or the network operator): for a participant key they answer
    as accounts it may not debit."""
    from sco_settle.network import account_id_for_key

    central = live.key("NBRKKZKX")
    with live.client(central) as http:
        accounts = {a["ref"]: a["id"] for a in http.get("/v1/accounts").json()["items"]}
        targets = {
            "issuance:NBRKKZKX:KZT": accounts["settlement:NBRKKZKX:KZT"],
            "swap-line:NBRKKZKX:PBOCCNBJ:CNY": str(account_id_for_key("settlement:BKCHCNBJ:CNY")),
        }
        for ref, credit in targets.items():
            transfer = {
                "id": str(uuid.uuid4().int >> 2),
                "debit_account": accounts[ref],
                "credit_account": credit,
                "amount": 10**12,
            }
            answer = http.post(
                "/v1/transfer-batches", json={"transfers": [transfer]}, headers=key("mint")
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["results"][0]["result"] == "debit_account_not_found", ref
