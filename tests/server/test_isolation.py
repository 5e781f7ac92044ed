"""One participant never sees another's money: every endpoint tried as the wrong caller answers
exactly as for something that does not exist (or, for roles, with the same 403)."""

from __future__ import annotations

import secrets
import uuid

import pytest

from sco_settle.server.keys import Role

A, B = "BKCHCNBJ", "ICBKCNBJ"
MISSING_ACCOUNT = "1234567890123456789"
MISSING_BIC = "ZZZZCNBJ"

PACS_008 = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf><GrpHdr>\
<MsgId>{msg_id}</MsgId><CreDtTm>2026-01-05T09:30:00+00:00</CreDtTm><NbOfTxs>1</NbOfTxs>\
<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr><CdtTrfTxInf><PmtId><InstrId>I-1</InstrId>\
<EndToEndId>E2E-1</EndToEndId><TxId>TX-1</TxId><UETR>{uetr}</UETR></PmtId>\
<IntrBkSttlmAmt Ccy="CNY">10.00</IntrBkSttlmAmt>\
<ChrgBr>SHAR</ChrgBr><InstgAgt><FinInstnId><BICFI>{debtor}</BICFI></FinInstnId></InstgAgt>\
<InstdAgt><FinInstnId><BICFI>{creditor}</BICFI></FinInstnId></InstdAgt><Dbtr><Nm>Debtor Co</Nm>\
</Dbtr><DbtrAcct><Id><Othr><Id>6222020200112233445</Id></Othr></Id></DbtrAcct><DbtrAgt>\
<FinInstnId><BICFI>{debtor}</BICFI></FinInstnId></DbtrAgt><CdtrAgt><FinInstnId><BICFI>{creditor}\
</BICFI></FinInstnId></CdtrAgt><Cdtr><Nm>Creditor Co</Nm></Cdtr><CdtrAcct><Id><Othr>\
<Id>6222020200112233446</Id></Othr></Id></CdtrAcct></CdtTrfTxInf></FIToFICstmrCdtTrf></Document>"""


def pacs_008(debtor: str, creditor: str) -> bytes:
    return PACS_008.format(
        msg_id=f"T{uuid.uuid4().hex[:20]}", uetr=str(uuid.uuid4()), debtor=debtor, creditor=creditor
    ).encode()


def same_problem(first, second, first_id: str, second_id: str) -> None:
    """Two answers are indistinguishable: status, every member, except the echoed id."""
    assert first.status_code == second.status_code, (first.text, second.text)
    assert first.headers["content-type"] == second.headers["content-type"]
    one, two = first.json(), second.json()
    del one["request_id"], two["request_id"]
    one["detail"] = one["detail"].replace(first_id, "<id>")
    two["detail"] = two["detail"].replace(second_id, "<id>")
    assert one == two


@pytest.fixture(scope="module")
def parties(live):
    a, b = live.key(A), live.key(B)
    with live.client(a) as http_a, live.client(b) as http_b:
        own_a = http_a.get(f"/v1/accounts/settlement:{A}:CNY").json()["id"]
        own_b = http_b.get(f"/v1/accounts/settlement:{B}:CNY").json()["id"]
        paid = http_b.post(
            "/v1/payments",
            json={
                "instruction_id": "iso-b-1",
                "creditor_agent": "XIHCCNB2",
                "amount_minor": 5,
                "currency": "CNY",
            },
            headers={"Idempotency-Key": "iso-b-1"},
        )
        assert paid.status_code == 201, paid.text
    return {"a": a, "b": b, "own_a": own_a, "own_b": own_b, "payment_b": paid.json()["payment_id"]}


@pytest.mark.parametrize("suffix", ["", "/transfers", "/statement", "/statement?format=camt.053"])
def test_another_participants_account_is_not_found(live, parties, suffix):
    with live.client(parties["a"]) as http:
        foreign = http.get(f"/v1/accounts/{parties['own_b']}{suffix}")
        missing = http.get(f"/v1/accounts/{MISSING_ACCOUNT}{suffix}")
        by_key = http.get(f"/v1/accounts/settlement:{B}:CNY{suffix}")
        assert http.get(f"/v1/accounts/{parties['own_a']}{suffix}").status_code == 200
    assert foreign.status_code == 404 and foreign.json()["code"] == "account_not_found"
    same_problem(foreign, missing, parties["own_b"], MISSING_ACCOUNT)
    same_problem(by_key, missing, f"settlement:{B}:CNY", MISSING_ACCOUNT)


def test_another_participants_payment_is_not_found(live, parties):
    with live.client(parties["a"]) as http:
        foreign = http.get(f"/v1/payments/{parties['payment_b']}")
        missing = http.get(f"/v1/payments/{B}:no-such-payment")
        listed = http.get("/v1/payments").json()["items"]
    same_problem(foreign, missing, parties["payment_b"], f"{B}:no-such-payment")
    assert foreign.json()["code"] == "payment_not_found"
    assert all(
        A in (p["instruction"]["debtor_agent"], p["instruction"]["creditor_agent"]) for p in listed
    )
    with live.client(parties["b"]) as http:
        assert http.get(f"/v1/payments/{parties['payment_b']}").status_code == 200


def batch(*transfers):
    return {"transfers": [dict(t, id=str(secrets.randbits(100))) for t in transfers]}


def test_debiting_another_participants_account_is_as_if_it_did_not_exist(live, parties):
    own_a, own_b = parties["own_a"], parties["own_b"]
    with live.client(parties["a"]) as http, live.client(parties["b"]) as http_b:
        before_b = http_b.get(f"/v1/accounts/{own_b}").json()
        foreign = http.post(
            "/v1/transfer-batches",
            json=batch(
                {"debit_account": own_a, "credit_account": own_b, "amount": 7, "flags": ["linked"]},
                {"debit_account": own_b, "credit_account": own_a, "amount": 7},
                {"debit_account": own_b, "credit_account": own_b, "amount": 7},
            ),
            headers={"Idempotency-Key": "steal-1"},
        ).json()["results"]
        missing = http.post(
            "/v1/transfer-batches",
            json=batch(
                {"debit_account": own_a, "credit_account": own_b, "amount": 7, "flags": ["linked"]},
                {"debit_account": MISSING_ACCOUNT, "credit_account": own_a, "amount": 7},
                {"debit_account": MISSING_ACCOUNT, "credit_account": MISSING_ACCOUNT, "amount": 7},
            ),
            headers={"Idempotency-Key": "steal-2"},
        ).json()["results"]
        after_b = http_b.get(f"/v1/accounts/{own_b}").json()
    assert [r["result"] for r in foreign] == [
        "linked_event_failed",
        "debit_account_not_found",
        "accounts_must_be_different",
    ]
    assert foreign == missing
    assert before_b == after_b  # Not a unit moved, not even through the linked chain.


def test_posting_another_participants_pending_transfer_is_as_if_it_did_not_exist(live, parties):
    own_a, own_b = parties["own_a"], parties["own_b"]
    pending_id = str(secrets.randbits(100))
    with live.client(parties["b"]) as http_b:
        made = http_b.post(
            "/v1/transfer-batches",
            json={
                "transfers": [
                    {
                        "id": pending_id,
                        "debit_account": own_b,
                        "credit_account": own_a,
                        "amount": 11,
                        "flags": ["pending"],
                    }
                ]
            },
            headers={"Idempotency-Key": "pending-b"},
        ).json()["results"]
        assert made[0]["result"] == "ok"
    with live.client(parties["a"]) as http:
        results = {}
        for flag in ("post_pending", "void_pending"):
            for target in (pending_id, "98765432109876543210"):
                response = http.post(
                    "/v1/transfer-batches",
                    json=batch({"pending_id": target, "flags": [flag]}),
                    headers={"Idempotency-Key": f"{flag}-{target}"},
                )
                results[(flag, target)] = response.json()["results"][0]["result"]
    assert set(results.values()) == {"pending_transfer_not_found"}
    with live.client(parties["b"]) as http_b:
        posted = http_b.post(
            "/v1/transfer-batches",
            json=batch({"pending_id": pending_id, "flags": ["void_pending"]}),
            headers={"Idempotency-Key": "void-own"},
        ).json()["results"]
    assert posted[0]["result"] == "ok"  # Still pending: the owner can resolve it.


def test_paying_quoting_or_sending_as_another_participant_is_forbidden(live, parties):
    payment = {"creditor_agent": "XIHCCNB2", "amount_minor": 5, "currency": "CNY"}
    quote = {"creditor_agent": "XIHCCNB2", "amount_minor": 5, "currency": "CNY"}
    with live.client(parties["a"]) as http:
        answers = []
        for debtor in (B, MISSING_BIC):
            answers.append(
                http.post(
                    "/v1/payments",
                    json={**payment, "instruction_id": f"x-{debtor}", "debtor_agent": debtor},
                    headers={"Idempotency-Key": f"pay-as-{debtor}"},
                )
            )
            answers.append(http.post("/v1/route-quotes", json={**quote, "debtor_agent": debtor}))
            answers.append(
                http.post(
                    "/v1/iso20022/messages",
                    content=pacs_008(debtor, "XIHCCNB2"),
                    headers={
                        "Idempotency-Key": f"iso-as-{debtor}",
                        "Content-Type": "application/xml",
                    },
                )
            )
        own = http.post(
            "/v1/iso20022/messages",
            content=pacs_008(A, "XIHCCNB2"),
            headers={"Idempotency-Key": "iso-own", "Content-Type": "application/xml"},
        )
    for first, second in zip(answers[:3], answers[3:], strict=True):
        assert first.status_code == 403
        same_problem(first, second, B, MISSING_BIC)
        assert first.json()["code"] == "debtor_agent_not_permitted"
    assert own.status_code == 200 and b"<TxSts>ACSC</TxSts>" in own.content, own.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/netting-cycles", None),
        ("GET", "/v1/netting-cycles/1", None),
        ("GET", "/v1/netting-cycles/999999", None),
        ("POST", "/v1/netting-cycles", {}),
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"participant": A, "role": "network_operator"}),
        ("POST", "/v1/keys/0123456789abcdef/revoke", None),
    ],
)
def test_operator_endpoints_are_forbidden_to_participants(live, parties, method, path, body):
    with live.client(parties["a"]) as http:
        response = http.request(method, path, json=body, headers={"Idempotency-Key": path})
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"


def test_lists_show_only_what_the_caller_may_see(live, parties):
    with live.client(parties["a"]) as http:
        accounts = http.get("/v1/accounts?limit=1000").json()["items"]
        corridors = http.get("/v1/reports/corridors").json()["items"]
        filtered = http.get(f"/v1/accounts?participant={B}").json()["items"]
    assert accounts and {a["participant"] for a in accounts} == {A}
    assert filtered == []
    assert all(c["debtor_country"] == "CN" or c["creditor_country"] == "CN" for c in corridors)


def test_currency_operator_sees_its_currency_only(live, parties):
    pboc = live.key("PBOCCNBJ", Role.CURRENCY_OPERATOR)
    with live.client(pboc) as http:
        accounts = http.get("/v1/accounts?limit=1000").json()["items"]
        assert accounts and {a["currency"] for a in accounts} == {"CNY"}
        assert http.get(f"/v1/accounts/{parties['own_b']}").status_code == 200
        kzt = http.get("/v1/accounts/settlement:HSBKKZKX:KZT")
        assert kzt.status_code == 404 and kzt.json()["code"] == "account_not_found"
        ran = http.post("/v1/netting-cycles", json={}, headers={"Idempotency-Key": "cny-cycle"})
        assert ran.status_code == 201 and ran.json()["currencies"] == ["CNY"], ran.text
        other = http.post(
            "/v1/netting-cycles", json={"currency": "KZT"}, headers={"Idempotency-Key": "kzt"}
        )
        assert other.status_code == 403 and other.json()["code"] == "currency_not_permitted"
        moved = http.post(
            "/v1/transfer-batches",
            json=batch(
                {"debit_account": parties["own_b"], "credit_account": parties["own_a"], "amount": 1}
            ),
            headers={"Idempotency-Key": "cb-move"},
        )
        assert moved.status_code == 403


def test_auditor_reads_everything_and_changes_nothing(live, parties):
    auditor = live.key("PBOCCNBJ", Role.AUDITOR)
    with live.client(auditor) as http:
        assert http.get(f"/v1/accounts/{parties['own_b']}").status_code == 200
        assert http.get(f"/v1/payments/{parties['payment_b']}").status_code == 200
        assert http.get("/v1/netting-cycles").status_code == 200
        for path, body in (
            ("/v1/transfer-batches", {"transfers": []}),
            (
                "/v1/payments",
                {
                    "instruction_id": "aud",
                    "creditor_agent": A,
                    "amount_minor": 1,
                    "currency": "CNY",
                },
            ),
            ("/v1/netting-cycles", {}),
        ):
            response = http.post(path, json=body, headers={"Idempotency-Key": f"aud-{path}"})
            assert response.status_code == 403, (path, response.text)
