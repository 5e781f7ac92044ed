"""Authentication over a live server: keys, revocation, rotation, HMAC-signed requests."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from contextlib import contextmanager

import pytest

from sco_settle.network import load_network
from sco_settle.server.app import openapi_document
from sco_settle.server.auth import sign
from sco_settle.server.config import parse_database_url
from sco_settle.server.db import StateDb
from sco_settle.server.keys import KeyStore, Role, holder_problem
from tests.server.conftest import cli

SAMPLE_PARAMETERS = {
    "account_id": "1",
    "bic": "BKCHCNBJ",
    "payment_id": "BKCHCNBJ:1",
    "cycle_id": "1",
    "key_id": "0123456789abcdef",
    "quote_id": "fxq-BKCHCNBJ-1-1",
    "drawer": "CBRFRUMM",
    "provider": "PBOCCNBJ",
    "tranche_id": "CBRFRUMM.PBOCCNBJ.20261207.1",
}


def every_operation() -> list[tuple[str, str]]:
    operations = [("GET", "/openapi.json")]
    for path, methods in openapi_document()["paths"].items():
        for method in methods:
            operations.append((method.upper(), path.format(**SAMPLE_PARAMETERS)))
    return operations


def test_every_route_but_health_needs_credentials(live):
    operations = every_operation()
    assert len(operations) >= 19
    with live.client() as http:
        for method, path in operations:
            response = http.request(method, path, json={} if method == "POST" else None)
            if path == "/health":
                assert response.status_code == 200, response.text
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["code"] == "credentials_missing", (method, path)
            assert problem["type"] == "urn:sco-settle:problem:credentials_missing"
            assert set(problem) >= {"type", "title", "status", "detail", "code", "request_id"}


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer scos_0123456789abcdef_" + "x" * 43,  # well formed, unknown key
        "Bearer not-a-key",
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
)
def test_invalid_credentials_are_refused(live, authorization):
    with live.client() as http:
        response = http.get("/v1/accounts", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["code"] == "credentials_invalid"


def test_wrong_secret_for_a_real_key_is_refused(live):
    issued = live.key("BKCHCNBJ")
    forged = issued.api_key[:-4] + ("AAAA" if not issued.api_key.endswith("AAAA") else "BBBB")
    with live.client() as http:
        assert (
            http.get("/v1/accounts", headers={"Authorization": f"Bearer {forged}"}).status_code
            == 401
        )
        good = http.get("/v1/accounts", headers={"Authorization": f"Bearer {issued.api_key}"})
        assert good.status_code == 200
        # A cached success for the right secret must not let a wrong one through.
        assert (
            http.get("/v1/accounts", headers={"Authorization": f"Bearer {forged}"}).status_code
            == 401
        )


def test_revocation_from_the_cli_takes_effect_on_the_next_request(live):
    issued = live.key("ICBKCNBJ")
    with live.client(issued) as http:
        assert http.get("/v1/accounts").status_code == 200  # now cached as verified
        result = cli("keys", "revoke", issued.record.key_id, "--db", live.db)
        assert result.returncode == 0, result.stderr
        response = http.get("/v1/accounts")
    assert response.status_code == 401
    assert response.json()["code"] == "credentials_invalid"


def test_revocation_over_http_by_the_operator(live):
    operator = live.key("PBOCCNBJ", Role.NETWORK_OPERATOR)
    issued = live.key("XIHCCNB2")
    with live.client(issued) as http, live.client(operator) as admin:
        assert http.get("/v1/accounts").status_code == 200
        revoked = admin.post(
            f"/v1/keys/{issued.record.key_id}/revoke", headers={"Idempotency-Key": "revoke-1"}
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "revoked"
        assert http.get("/v1/accounts").status_code == 401
    with live.client(live.key("XIHCCNB2")) as participant:  # Participants cannot manage keys.
        assert participant.get("/v1/keys").json()["code"] == "forbidden"


def test_rotation_keeps_the_old_key_for_the_grace_period_only(live):
    operator = live.key("PBOCCNBJ", Role.NETWORK_OPERATOR)
    old = live.key("BOXJCNU0")
    with live.client(operator) as admin:
        rotated = admin.post(
            f"/v1/keys/{old.record.key_id}/rotate",
            json={"grace_seconds": 3600},
            headers={"Idempotency-Key": "rotate-1"},
        )
        assert rotated.status_code == 201, rotated.text
        new_key = rotated.json()["api_key"]
        assert rotated.json()["key"]["rotated_from"] == old.record.key_id
        replay = admin.post(
            f"/v1/keys/{old.record.key_id}/rotate",
            json={"grace_seconds": 3600},
            headers={"Idempotency-Key": "rotate-1"},
        )
        # The secret is shown once: a replay names the key but does not show its secret again.
        assert replay.headers["Idempotency-Replayed"] == "true"
        assert replay.json()["api_key"] == "" and replay.json()["key"] == rotated.json()["key"]
    with live.client() as http:
        for key in (old.api_key, new_key):
            assert (
                http.get("/v1/accounts", headers={"Authorization": f"Bearer {key}"}).status_code
                == 200
            )
    # Grace 0: the old key stops at once.
    again = live.keys().rotate(rotated.json()["key"]["key_id"], grace_seconds=0)
    with live.client() as http:
        assert (
            http.get("/v1/accounts", headers={"Authorization": f"Bearer {new_key}"}).status_code
            == 401
        )
        latest = {"Authorization": f"Bearer {again.api_key}"}
        assert http.get("/v1/accounts", headers=latest).status_code == 200


def test_a_key_is_rotated_once(live):
    operator = live.key("PBOCCNBJ", Role.NETWORK_OPERATOR)
    old = live.key("ICBKCNBJSJG")
    path = f"/v1/keys/{old.record.key_id}/rotate"
    with live.client(operator) as admin:
        first = admin.post(path, json={"grace_seconds": 60}, headers={"Idempotency-Key": "once-1"})
        assert first.status_code == 201, first.text
        again = admin.post(path, json={"grace_seconds": 60}, headers={"Idempotency-Key": "once-2"})
        assert again.status_code == 409, again.text
        assert again.json()["code"] == "key_already_rotated"
        successor = first.json()["key"]["key_id"]
        # The successor names its predecessor, and the predecessor only the one successor.
        listed = {key["key_id"]: key for key in admin.get("/v1/keys?limit=1000").json()["items"]}
        assert listed[old.record.key_id]["rotated_to"] == successor
        assert [k for k, v in listed.items() if v["rotated_from"] == old.record.key_id] == [
            successor
        ]
    from sco_settle.server.keys import KeyAlreadyRotatedError

    with pytest.raises(KeyAlreadyRotatedError):
        live.keys().rotate(old.record.key_id)
    assert cli("keys", "rotate", old.record.key_id, "--db", live.db).returncode != 0


@contextmanager
def crash_at_statement(state: StateDb, number: int):
    """Make the ``number``-th statement written through ``state`` raise ``SystemExit`` (a crash
    of the process: its open transaction is rolled back), whichever transaction it is in."""
    real = state.transaction
    written = itertools.count(1)

    @contextmanager
    def crashing(**options):
        with real(**options) as execute:

            def statement(sql, params=()):
                if next(written) == number:
                    raise SystemExit(f"crash before statement {number}: {sql}")
                return execute(sql, params)

            yield statement

    state.transaction = crashing  # type: ignore[method-assign]
    try:
        yield
    finally:
        del state.transaction


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_rotation_is_all_or_nothing_under_a_crash_at_any_point(request, tmp_path, store):
    """L2: rotation was two transactions; a crash between them left the old key valid forever
    (its expiry cleared, even one set by an earlier rotation)."""
    if store == "sqlite":
        database = parse_database_url(f"sqlite:///{tmp_path}/keys.db")
    else:
        schema = request.getfixturevalue("pg_schema")
        database = parse_database_url(request.getfixturevalue("postgres_dsn"), schema=schema)
    state = StateDb(database)
    keys = KeyStore(state)
    now = 1_800_000_000
    try:
        for number in itertools.count(1):
            assert number < 20
            old = keys.create("BKCHCNBJ", Role.PARTICIPANT, now=now).record.key_id
            with state.transaction() as execute:  # An expiry it already had (say, by an operator).
                execute("UPDATE api_keys SET expires_at = ? WHERE key_id = ?", (now + 600, old))
            before = keys.get(old)
            with crash_at_statement(state, number):
                try:
                    keys.rotate(old, grace_seconds=3600, now=now)
                    crashed = False
                except SystemExit:
                    crashed = True
            after = keys.get(old)
            successors = [key for key in keys.list(limit=1000) if key.rotated_from == old]
            if not successors:
                assert crashed and after == before, number
            else:
                [successor] = successors
                assert after.rotated_to == successor.key_id, number
                assert after.expires_at == now + 600, number  # The earlier expiry, not later.
                assert successor.expires_at is None
            if not crashed:
                break
        # Without a crash: the grace period, when it ends first.
        old = keys.create("BKCHCNBJ", Role.PARTICIPANT, now=now).record.key_id
        successor = keys.rotate(old, grace_seconds=60, now=now).record.key_id
        assert keys.get(old).expires_at == now + 60 and keys.get(old).rotated_to == successor
    finally:
        state.close()


def test_keys_cli_create_list_rotate(live):
    created = cli(
        "keys", "create", "--db", live.db, "--participant", "SABRRUMM", "--role", "participant"
    )
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(":", 1) for line in created.stdout.splitlines() if ":" in line)
    api_key = fields["api key"].strip()
    key_id = fields["key id"].strip()
    assert api_key.startswith(f"scos_{key_id}_")
    listed = cli("keys", "list", "--db", live.db)
    assert key_id in listed.stdout and api_key not in listed.stdout
    assert fields["signing secret"].strip() not in listed.stdout
    with live.client() as http:
        assert (
            http.get("/v1/accounts", headers={"Authorization": f"Bearer {api_key}"}).status_code
            == 200
        )
    rotated = cli("keys", "rotate", key_id, "--db", live.db, "--grace-seconds", "0")
    assert rotated.returncode == 0, rotated.stderr
    with live.client() as http:
        assert (
            http.get("/v1/accounts", headers={"Authorization": f"Bearer {api_key}"}).status_code
            == 401
        )


def test_who_may_hold_which_role():
    network = load_network("sco")
    assert holder_problem(network, "SABRRUMM", Role.PARTICIPANT) is None
    assert "settles no currency" in holder_problem(network, "SABRRUMM", Role.CURRENCY_OPERATOR)
    assert holder_problem(network, "CBRFRUMM", Role.CURRENCY_OPERATOR) is None
    assert "not a participant" in holder_problem(network, "ZZZZRUMM", Role.PARTICIPANT)
    assert holder_problem(network, "ZZZZRUMM", Role.AUDITOR) is None
    assert "not a BIC" in holder_problem(network, "bad", Role.AUDITOR)


# -- HMAC request signing -------------------------------------------------------------------


def signed_headers(issued, method, target, body=b"", *, timestamp=None, nonce=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    return {
        "X-SCOS-Key-Id": issued.record.key_id,
        "X-SCOS-Timestamp": timestamp,
        "X-SCOS-Nonce": nonce,
        "X-SCOS-Signature": sign(issued.signing_secret, method, target, timestamp, nonce, body),
    }


def test_signed_requests(live):
    issued = live.key("BKCHCNBJ")
    target = "/v1/accounts?limit=5"
    with live.client() as http:
        headers = signed_headers(issued, "GET", target)
        assert http.get(target, headers=headers).status_code == 200
        # The same nonce again: a replay.
        replayed = http.get(target, headers=headers)
        assert replayed.status_code == 401 and replayed.json()["code"] == "nonce_replayed"
        # Signed for another query.
        other = signed_headers(issued, "GET", "/v1/accounts?limit=6")
        assert http.get(target, headers=other).json()["code"] == "signature_invalid"
        # Too old, too far ahead.
        for skew in (-301, 301):
            stale = signed_headers(issued, "GET", target, timestamp=int(time.time()) + skew)
            response = http.get(target, headers=stale)
            assert response.status_code == 401 and response.json()["code"] == "signature_expired"
        # Incomplete header set.
        partial = signed_headers(issued, "GET", target)
        del partial["X-SCOS-Nonce"]
        assert http.get(target, headers=partial).json()["code"] == "signature_invalid"


def test_signed_write_covers_the_body(live):
    issued = live.key("ICBKCNBJ")
    with live.client(issued) as http:
        own = http.get("/v1/accounts/settlement:ICBKCNBJ:CNY").json()["id"]
    body = json.dumps(
        {
            "transfers": [
                {
                    "id": str(secrets.randbits(100)),
                    "debit_account": own,
                    "credit_account": own,
                    "amount": 1,
                }
            ]
        }
    ).encode()
    target = "/v1/transfer-batches"
    with live.client() as http:
        headers = {
            **signed_headers(issued, "POST", target, body),
            "Idempotency-Key": "signed-1",
            "Content-Type": "application/json",
        }
        tampered = http.post(
            target, content=body.replace(b'"amount": 1', b'"amount": 2'), headers=headers
        )
        assert tampered.json()["code"] == "signature_invalid"
        headers = {
            **signed_headers(issued, "POST", target, body),
            "Idempotency-Key": "signed-1",
            "Content-Type": "application/json",
        }
        response = http.post(target, content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["result"] == "accounts_must_be_different"
        # Bearer and signature of two different keys: refused.
        other = live.key("XIHCCNB2")
        mixed = {
            **signed_headers(issued, "GET", "/v1/accounts"),
            "Authorization": f"Bearer {other.api_key}",
        }
        assert http.get("/v1/accounts", headers=mixed).json()["code"] == "signature_invalid"
