"""Logs: JSON lines with request ids, and never a secret or a full account number."""

from __future__ import annotations

import json
import re
import time

from sco_settle.server.keys import Role
from sco_settle.server.logging import mask
from tests.server.test_auth import signed_headers


def test_mask_keeps_only_the_last_four():
    assert mask("/v1/accounts/145203617246026664167444674394387658940") == "/v1/accounts/…8940"
    assert mask("IBAN KZ86125KZT5004100100 paid") == "IBAN …0100 paid"
    assert mask("/v1/accounts/settlement:BKCHCNBJ:CNY") == "/v1/accounts/settlement:BKCHCNBJ:CNY"


def test_request_ids_in_and_out_and_no_secrets_in_the_log(live):
    issued = live.key("BKCHCNBJ")
    operator = live.key("PBOCCNBJ", Role.NETWORK_OPERATOR)
    with live.client(issued) as http:
        own = http.get("/v1/accounts/settlement:BKCHCNBJ:CNY").json()["id"]
        given = http.get(f"/v1/accounts/{own}", headers={"X-Request-Id": "trace-123.abc"})
        made_up = http.get(f"/v1/accounts/{own}/transfers?limit=2")
        bad_id = http.get("/v1/accounts", headers={"X-Request-Id": "no spaces allowed"})
        http.post(
            "/v1/payments",
            headers={"Idempotency-Key": "log-1"},
            json={
                "instruction_id": "log-1",
                "creditor_agent": "ICBKCNBJ",
                "amount_minor": 9,
                "currency": "CNY",
                "debtor": {"name": "Shanghai Tea", "account": "KZ86125KZT5004100100"},
            },
        )
        http.get("/v1/accounts", headers=signed_headers(issued, "GET", "/v1/accounts"))
        failed = http.get(
            "/v1/accounts", headers={"Authorization": "Bearer scos_" + "0" * 16 + "_" + "s" * 43}
        )
    with live.client(operator) as admin:
        created = admin.post(
            "/v1/keys",
            json={"participant": "ICBKCNBJ", "role": "participant"},
            headers={"Idempotency-Key": "log-key"},
        ).json()
    assert given.headers["X-Request-Id"] == "trace-123.abc"
    assert given.json()["id"] == own
    assert re.fullmatch(r"[0-9a-f]{22}", made_up.headers["X-Request-Id"])
    assert bad_id.headers["X-Request-Id"] != "no spaces allowed"
    assert failed.json()["request_id"] == failed.headers["X-Request-Id"]

    time.sleep(0.5)  # Let the server flush its last lines.
    text = live.log()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert any(line["request_id"] == "trace-123.abc" for line in requests)
    assert all(
        {"request_id", "method", "path", "route", "status", "duration_ms"} <= set(line)
        for line in requests
    )
    forbidden = [
        issued.api_key,
        issued.api_key.split("_", 2)[2],
        issued.signing_secret,
        operator.api_key,
        created["api_key"],
        created["signing_secret"],
        own,
        "KZ86125KZT5004100100",
        "Bearer",
        "authorization",
        "Shanghai Tea",
    ]
    for secret in forbidden:
        assert secret not in text, secret
    assert f"…{own[-4:]}" in text  # The masked account id is there instead.
