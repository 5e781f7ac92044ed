"""Input is validated at the edge: malformed or out-of-range input is a 4xx problem that changes
nothing and affects no other request (security review findings H1, H3, L1, L3, L4)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.ledger.jsonl import BatchFormatError, parse_batch
from sco_settle.network import load_network
from sco_settle.payments.network_view import load_rates
from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.auth import Principal
from sco_settle.server.errors import ServiceUnavailableError
from sco_settle.server.keys import Role
from sco_settle.server.logging import JsonLinesFormatter, mask, mask_path
from sco_settle.server.service import LedgerService, _Job
from tests.server.conftest import start_server

A, B = "BKCHCNBJ", "ICBKCNBJ"
POST = int(TransferFlags.POST_PENDING)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of its own: a regression here must not take down the session's shared server."""
    folder = tmp_path_factory.mktemp("edge")
    started = start_server(f"sqlite:///{folder}/ledger.db", folder / "server.log")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def keys(server):
    return {
        "a": server.key(A),
        "b": server.key(B),
        "operator": server.key("PBOCCNBJ", Role.NETWORK_OPERATOR),
    }


@pytest.fixture(scope="module")
def accounts(server, keys):
    with server.client(keys["operator"]) as http:
        return {bic: http.get(f"/v1/accounts/settlement:{bic}:CNY").json()["id"] for bic in (A, B)}


def post_batch(http, body, *, content_type="application/json", key=None):
    data = body if isinstance(body, bytes) else body.encode()
    headers = {"Idempotency-Key": key or secrets.token_hex(8)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return http.post("/v1/transfer-batches", content=data, headers=headers)


def transfer_json(accounts, **fields):
    item = {
        "id": str(secrets.randbits(100)),
        "debit_account": accounts[A],
        "credit_account": accounts[B],
        "amount": 1,
    }
    item.update(fields)
    return item


def assert_problem(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code and problem["status"] == status
    assert problem["type"] == f"urn:sco-settle:problem:{code}"
    return problem


def balance(server, key, account_id):
    with server.client(key) as http:
        found = http.get(f"/v1/accounts/{account_id}").json()
    return (found["debits_posted"], found["credits_posted"], found["debits_pending"])


# -- H1: a lone surrogate (or any text no store can keep) in a transfer stops nothing ----------


def test_h1_lone_surrogate_ref_is_refused_and_the_ledger_keeps_serving(server, keys, accounts):
    before = balance(server, keys["a"], accounts[A])
    with server.client(keys["a"]) as http:
        for ref in ("\\ud800", "\\udfff", "ok\\ud83d", "\\u0000"):
            good = json.dumps(transfer_json(accounts))
            poison = json.dumps(transfer_json(accounts)).replace(
                '"amount"', f'"ref":"{ref}","amount"'
            )
            body = '{"transfers":[' + good + "," + poison + "]}"
            assert_problem(post_batch(http, body), 400, "batch_format_invalid")
        assert httpx.get(server.base_url + "/health").json()["status"] == "ok"
        fine = post_batch(http, json.dumps({"transfers": [transfer_json(accounts, ref="é ✓ 😀")]}))
    assert fine.status_code == 200, fine.text
    assert fine.json()["results"][0]["result"] == "ok"
    after = balance(server, keys["a"], accounts[A])
    assert after[0] == before[0] + 1  # Only the last, valid batch moved money.


def test_h1_every_field_is_checked_at_the_edge(server, keys, accounts):
    """Each of these answers 400 batch_format_invalid, and the whole batch changes nothing."""
    big = "9" * 5000
    deep = '{"transfers":[' + "[" * 100_000 + "]" * 100_000 + "]}"
    good = json.dumps(transfer_json(accounts))
    raw_cases = {
        "int literal over max-str-digits": '{"transfers":[{"id":' + big + "}]}",
        "amount literal over max-str-digits": good[:-1] + ',"code":' + big + "}",
        "deep nesting": deep,
        "duplicate keys": good[:-1] + ',"amount":2}',
        "duplicate top-level keys": '{"transfers":[],"transfers":[' + good + "]}",
        "float amount": good.replace('"amount": 1', '"amount": 1.0'),
        "exponent amount": good.replace('"amount": 1', '"amount": 1e0'),
        "NaN amount": good.replace('"amount": 1', '"amount": NaN'),
        "Infinity code": good[:-1] + ',"code":Infinity}',
    }
    field_cases = {
        "bool amount": {"amount": True},
        "negative amount": {"amount": -1},
        "amount over 2**63-1": {"amount": 2**63},
        "amount decimal string over 2**63-1": {"amount": str(2**63)},
        "id over 2**128-1": {"id": str(2**128)},
        "negative id": {"id": -5},
        "negative id string": {"id": "-5"},
        "id with spaces": {"id": " 12"},
        "debit account over 2**128-1": {"debit_account": 2**128},
        "credit account negative": {"credit_account": "-1"},
        "timeout over 2**31-1": {"timeout": 2**31, "flags": ["pending"]},
        "code over 65535": {"code": 65536},
        "ref too long": {"ref": "r" * 141},
        "ref not a string": {"ref": 5},
        "null amount": {"amount": None},
        "flags not names": {"flags": [1]},
    }
    before = balance(server, keys["a"], accounts[A])
    with server.client(keys["a"]) as http:
        answers = {name: post_batch(http, body) for name, body in raw_cases.items()}
        for name, fields in field_cases.items():
            body = {"transfers": [transfer_json(accounts), transfer_json(accounts, **fields)]}
            answers[name] = post_batch(http, json.dumps(body))
    for name, response in answers.items():
        assert response.status_code == 400, (name, response.status_code, response.text[:300])
        assert response.json()["code"] == "batch_format_invalid", name
        assert len(response.content) < 2000, name  # Echoes are truncated.
    assert balance(server, keys["a"], accounts[A]) == before
    assert httpx.get(server.base_url + "/health").json()["status"] == "ok"


def test_h1_rules_beyond_the_field_types_stay_ledger_result_codes(server, keys, accounts):
    """Values of the right type that break a ledger rule keep their result code."""
    with server.client(keys["a"]) as http:
        body = {
            "transfers": [
                transfer_json(accounts, id=0),
                transfer_json(accounts, id=str(ID_MAX)),
                transfer_json(accounts, amount=0),
                transfer_json(accounts, ref="r" * 140, amount=1),
            ]
        }
        response = post_batch(http, json.dumps(body))
    assert response.status_code == 200, response.text
    assert [r["result"] for r in response.json()["results"]] == [
        "id_invalid",
        "id_invalid",
        "amount_invalid",
        "ok",
    ]


@pytest.mark.parametrize(
    ("content_type", "status", "code"),
    [
        ("text/plain", 415, "unsupported_media_type"),
        ("multipart/form-data; boundary=x", 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (None, 415, "unsupported_media_type"),
        ("application/json; charset=utf-16", 415, "unsupported_media_type"),
        ("application/json; charset=UTF-8", 200, None),
        ("Application/JSON", 200, None),
    ],
)
def test_l3_transfer_batches_need_utf8_json(server, keys, accounts, content_type, status, code):
    body = json.dumps({"transfers": [transfer_json(accounts)]})
    with server.client(keys["a"]) as http:
        response = post_batch(http, body, content_type=content_type)
    if code is None:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, status, code)


def test_l3_a_415_is_not_kept_under_its_idempotency_key(server, keys, accounts):
    body = json.dumps({"transfers": [transfer_json(accounts)]})
    with server.client(keys["a"]) as http:
        first = post_batch(http, body, content_type="text/plain", key="ct-retry")
        again = post_batch(http, body, key="ct-retry")
    assert_problem(first, 415, "unsupported_media_type")
    assert again.status_code == 200 and "Idempotency-Replayed" not in again.headers


def test_l3_utf16_and_bom_bodies_are_refused(server, keys, accounts):
    text = json.dumps({"transfers": [transfer_json(accounts)]})
    with server.client(keys["a"]) as http:
        for data in (
            text.encode("utf-16"),
            text.encode("utf-16-le"),
            text.encode("utf-32"),
            b"\xef\xbb\xbf" + text.encode(),
            text.encode()[:-3] + b"\xff\xfe]}",
            text.replace('"amount"', '"ref": "SURR", "amount"')
            .replace("SURR", "\ud800")
            .encode("utf-8", "surrogatepass"),
        ):
            assert_problem(post_batch(http, data), 400, "batch_format_invalid")


# -- H3: one caller's malformed pending_id fails nobody else ----------------------------------


@pytest.mark.parametrize("pending_id", ["-1", str(2**128), -1, 2**128])
@pytest.mark.parametrize("who", ["a", "operator"])
def test_h3_out_of_range_pending_id_is_a_400(server, keys, pending_id, who):
    body = json.dumps(
        {"transfers": [{"id": "5", "pending_id": pending_id, "flags": ["post_pending"]}]}
    )
    with server.client(keys[who]) as http:
        assert_problem(post_batch(http, body), 400, "batch_format_invalid")


def writer(tmp_path) -> LedgerService:
    """A writer opened on this thread (its loop not running): jobs are run by hand."""
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/w.db"))
    service = LedgerService(config, load_network("sco"), load_rates("sco"))
    service._open()
    return service


def test_h3_a_bad_job_in_a_merged_group_fails_alone(tmp_path, monkeypatch):
    service = writer(tmp_path)
    try:
        published = service.published
        own_a = published.by_participant[A]
        own_b = published.by_participant[B]
        a_cny = next(i for i in own_a if published.accounts[i].ref == f"settlement:{A}:CNY")
        b_cny = next(i for i in own_b if published.accounts[i].ref == f"settlement:{B}:CNY")
        attacker = Principal("k1", A, Role.PARTICIPANT, frozenset())
        victim = Principal("k2", B, Role.PARTICIPANT, frozenset())
        jobs = [
            _Job("transfers", [Transfer(901, b_cny, a_cny, 3)], principal=victim),
            # Past the edge's checks (a caller inside the process): out-of-range pending ids.
            _Job("transfers", [Transfer(902, pending_id=-1, flags=POST)], principal=attacker),
            _Job("transfers", [Transfer(903, pending_id=2**128, flags=POST)], principal=attacker),
            _Job("transfers", [Transfer(904, b_cny, a_cny, 4)], principal=victim),
        ]
        service._run_transfers(jobs)
        results = [[str(r) for r in job.future.result(timeout=0)] for job in jobs]
        assert results == [
            ["ok"],
            ["pending_transfer_not_found"],
            ["pending_transfer_not_found"],
            ["ok"],
        ]

        # Whatever a job's own transfers make fail, the others of the group go on.
        usable = service._usable_transfers

        def fragile(principal, batch, created):
            if batch and batch[0].id == 911:
                raise OverflowError("int too big to convert")
            return usable(principal, batch, created)

        monkeypatch.setattr(service, "_usable_transfers", fragile)
        jobs = [
            _Job("transfers", [Transfer(910, b_cny, a_cny, 5)], principal=victim),
            _Job("transfers", [Transfer(911, a_cny, b_cny, 5)], principal=attacker),
            _Job("transfers", [Transfer(912, b_cny, a_cny, 6)], principal=victim),
            _Job("transfers", [Transfer(913, b_cny, a_cny, 7, ref="\ud800")], principal=victim),
        ]
        service._run_transfers(jobs)
        assert [str(r) for r in jobs[0].future.result(timeout=0)] == ["ok"]
        assert [str(r) for r in jobs[2].future.result(timeout=0)] == ["ok"]
        for failed in (jobs[1], jobs[3]):
            error = failed.future.exception(timeout=0)
            assert isinstance(error, BatchFormatError), error
        assert not service.ledger.closed
        assert service.ledger.store.get_transfers([910, 911, 912, 913]).keys() == {910, 912}
    finally:
        service._shut()


# -- the JSON-lines codec is the same rule for the CLI ------------------------------------------


def test_h1_codec_refuses_what_no_store_can_keep():
    cases = [
        b'{"transfers":[{"id":"1","ref":"\\ud800"}]}',
        b'{"transfers":[{"id":"1","ref":"\\u0000"}]}',
        b'{"accounts":[{"id":"1","participant":"\\udc00","currency":"CNY","kind":"fee"}]}',
        b'{"transfers":[{"id":1' + b"0" * 5000 + b"}]}",
        b'{"transfers":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"transfers":[{"id":"1","id":"2"}]}',
        b'{"transfers":[{"id":"1","amount":1.5}]}',
        b'{"transfers":[{"id":"1","pending_id":"-1","flags":["post_pending"]}]}',
        b'{"accounts":[{"id":"1","participant":"A","currency":"CNY","kind":"fee",'
        b'"credit_limit":-1}]}',
        '{"transfers":[{"id":"1"}]}'.encode("utf-16"),
    ]
    for line in cases:
        with pytest.raises(BatchFormatError):
            parse_batch(line)
    kind, items = parse_batch(b'{"transfers":[{"id":"0","amount":"400","ref":"\\u00e9"}]}')
    assert kind == "transfers" and items[0].id == 0 and items[0].amount == 400
    assert items[0].ref == "é"


def test_h1_cli_apply_refuses_a_poisoned_line_and_goes_on(tmp_path):
    db = tmp_path / "cli.db"
    accounts = {
        "accounts": [
            {"id": "1", "participant": "PBOCCNBJ", "currency": "CNY", "kind": "issuance"},
            {"id": "2", "participant": "BKCHCNBJ", "currency": "CNY", "kind": "settlement"},
        ]
    }
    lines = [
        json.dumps(accounts),
        '{"transfers":[{"id":"10","debit_account":"1","credit_account":"2","amount":5,'
        '"ref":"\\ud800"}]}',
        '{"transfers":[{"id":"11","debit_account":"1","credit_account":"2","amount":7}]}',
    ]
    result = subprocess.run(
        [sys.executable, "-m", "sco_settle", "apply", "--db", str(db)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out[0]["results"] == [{"index": 0, "result": "ok"}, {"index": 1, "result": "ok"}]
    assert out[1]["line"] == 2 and "ref" in out[1]["error"]
    assert out[2]["results"] == [{"index": 0, "result": "ok"}]


# -- L1: out-of-range dates and cursors are 400s, not 500s -------------------------------------


def cursor(kind: str, value: object) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


@pytest.mark.parametrize("day", ["0001-01-01", "1677-09-21", "2262-04-11", "9999-12-31"])
@pytest.mark.parametrize("format", ["json", "camt.053"])
def test_l1_statement_dates_outside_the_timestamp_range(server, keys, accounts, day, format):
    with server.client(keys["a"]) as http:
        response = http.get(
            f"/v1/accounts/{accounts[A]}/statement", params={"date": day, "format": format}
        )
    assert_problem(response, 400, "date_out_of_range")


@pytest.mark.parametrize("day", ["1677-09-22", "1970-01-01", "2262-04-10"])
def test_l1_statement_dates_at_the_edges_of_the_range(server, keys, accounts, day):
    with server.client(keys["a"]) as http:
        for format in ("json", "camt.053"):
            response = http.get(
                f"/v1/accounts/{accounts[A]}/statement", params={"date": day, "format": format}
            )
            assert response.status_code == 200, (day, format, response.text)


def test_l1_cursors_out_of_range(server, keys, accounts):
    big = 2**63
    cases = [
        ("a", "/v1/payments", cursor("payments", big)),
        ("a", "/v1/payments", cursor("payments", "9" * 40)),
        ("a", "/v1/payments", cursor("payments", "-1")),
        ("a", "/v1/payments", cursor("payments", "１２")),
        ("operator", "/v1/netting-cycles", cursor("cycles", big)),
        ("a", f"/v1/accounts/{accounts[A]}/transfers", cursor("transfers", big)),
        ("a", f"/v1/accounts/{accounts[A]}/transfers", cursor("transfers", 2**63 - 1)),
        ("a", "/v1/accounts", cursor("accounts", 2**128)),
        ("a", "/v1/reports/corridors", cursor("corridors", big)),
        ("operator", "/v1/keys", cursor("keys", "a\x00b")),
        ("a", "/v1/participants", cursor("participants", "\x00")),
        ("a", "/v1/payments", "%%%"),
    ]
    for who, path, after in cases:
        with server.client(keys[who]) as http:
            response = http.get(path, params={"after": after})
        assert response.status_code == 400, (path, after, response.text)
        assert response.json()["code"] == "cursor_invalid", (path, after)
    with server.client(keys["a"]) as http:
        # The largest valid cursors are still accepted: an empty page, not an error.
        assert http.get("/v1/payments", params={"after": cursor("payments", big - 1)}).json() == {
            "items": [],
            "next_cursor": None,
        }
        page = http.get(
            f"/v1/accounts/{accounts[A]}/transfers",
            params={"after": cursor("transfers", 2**63 - 2)},
        )
        assert page.status_code == 200 and page.json()["items"] == []
        # Account ids are 128-bit: so are the accounts list's cursors.
        accounts_page = http.get("/v1/accounts", params={"after": cursor("accounts", ID_MAX)})
        assert accounts_page.status_code == 200 and accounts_page.json()["items"] == []


# -- L3: lax types on payments and quotes --------------------------------------------------------


@pytest.mark.parametrize("amount", [True, 1000.0, "100", 1e3, None])
def test_l3_payment_and_quote_amounts_must_be_json_integers(server, keys, amount):
    payment = {
        "instruction_id": f"lax-{secrets.token_hex(6)}",
        "creditor_agent": B,
        "amount_minor": amount,
        "currency": "CNY",
    }
    quote = {"creditor_agent": B, "amount_minor": amount, "currency": "CNY"}
    with server.client(keys["a"]) as http:
        answers = [
            http.post(
                "/v1/payments", json=payment, headers={"Idempotency-Key": secrets.token_hex(8)}
            ),
            http.post(
                "/v1/payment-batches",
                json={"payments": [payment]},
                headers={"Idempotency-Key": secrets.token_hex(8)},
            ),
            http.post("/v1/route-quotes", json=quote),
            http.post("/v1/route-quotes", json=quote | {"amount_minor": 5, "routes_max": "2"}),
            http.post("/v1/route-quotes", json=quote | {"amount_minor": 5, "routes_max": True}),
        ]
    for response in answers:
        problem = assert_problem(response, 422, "request_invalid")
        assert problem["errors"], problem
    with server.client(keys["a"]) as http:
        fine = http.post("/v1/route-quotes", json=quote | {"amount_minor": 5})
    assert fine.status_code == 200, fine.text


# -- L4: no exception text in 503 bodies; no secret in a logged path -----------------------------


def test_l4_unavailable_ledger_answers_without_internal_details(tmp_path):
    asyncio.run(_unavailable_without_details(tmp_path))


async def _unavailable_without_details(tmp_path):
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/fail.db"))
    context = open_context(config)
    key = context.keys.create(A, Role.PARTICIPANT)
    headers = {"Authorization": f"Bearer {key.api_key}"}
    transport = httpx.ASGITransport(app=build_app(context), raise_app_exceptions=False)
    secret_text = "SECRET-INTERNAL-/var/lib/sco/ledger.db"
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            own = (await http.get(f"/v1/accounts/settlement:{A}:CNY", headers=headers)).json()

            def broken(changes):
                raise OSError(secret_text)

            context.service.store.commit = broken
            body = {
                "transfers": [
                    {"id": "77", "debit_account": own["id"], "credit_account": "1", "amount": 1}
                ]
            }
            await http.post(
                "/v1/transfer-batches", json=body, headers=headers | {"Idempotency-Key": "x-1"}
            )
            for number in range(2):
                later = await http.post(
                    "/v1/transfer-batches",
                    json=body,
                    headers=headers | {"Idempotency-Key": f"x-{number + 2}"},
                )
                problem = assert_problem(later, 503, "ledger_unavailable")
                assert secret_text not in later.text and "OSError" not in later.text
                assert "Retry-After" in later.headers
            payment = await http.post(
                "/v1/payments",
                json={
                    "instruction_id": "u-1",
                    "creditor_agent": B,
                    "amount_minor": 1,
                    "currency": "CNY",
                },
                headers=headers | {"Idempotency-Key": "p-1"},
            )
            assert_problem(payment, 503, "ledger_unavailable")
            assert secret_text not in payment.text and "OSError" not in payment.text
            assert problem["detail"]
    finally:
        close_context(context)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(JsonLinesFormatter().format(record))


def test_l4_failure_details_stay_in_the_log(tmp_path):
    """The 503 no longer carries the exception, so the log must: the writer's critical record."""
    service = writer(tmp_path)
    records = _Records()
    logger = logging.getLogger("sco_settle.server")
    logger.addHandler(records)
    try:

        def broken(changes):
            raise OSError("disk full at sector 7")

        service.store.commit = broken
        principal = Principal("k1", "PBOCCNBJ", Role.NETWORK_OPERATOR, frozenset())
        own_a, own_b = (
            service.published.by_participant[A][0],
            service.published.by_participant[B][0],
        )
        job = _Job("transfers", [Transfer(1, own_a, own_b, 1)], principal=principal)
        assert service._guarded([job], lambda: service._execute([job])) is True
        assert any("disk full at sector 7" in line for line in records.lines)
        with pytest.raises(ServiceUnavailableError) as raised:
            service.transfers(principal, [Transfer(2, own_a, own_b, 1)])
        assert "disk full" not in str(raised.value) and "OSError" not in str(raised.value)
        assert "disk full" in repr(service.failure)
    finally:
        logger.removeHandler(records)
        service._shut()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/accounts/scos_0123456789abcdef_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v",
        "/v1/accounts/scos_0123456789abcdef",
        "/v1/keys/Zx9-Qw8_Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVbNm1234/revoke",
        "/v1/accounts/" + "0123456789abcdef" * 4,
        "/v1/accounts/settlement:" + "deadbeefcafe" * 3,
    ],
)
def test_l4_secrets_in_a_path_are_masked(path):
    masked = mask_path(path)
    secret = path.rsplit("/", 1)[-1] if not path.endswith("revoke") else path.split("/")[3]
    secret = secret.removeprefix("settlement:")
    assert secret not in masked
    assert secret[:12] not in masked and secret[-8:] not in masked
    assert masked.startswith(("/v1/accounts/", "/v1/keys/"))


def test_l4_masking_keeps_what_it_kept():
    for masking in (mask, mask_path):
        assert masking("/v1/accounts/145203617246026664167444674394387658940") == (
            "/v1/accounts/…8940"
        )
        assert masking("/v1/accounts/KZ86125KZT5004100100") == "/v1/accounts/…0100"
    assert mask("IBAN KZ86125KZT5004100100 paid") == "IBAN …0100 paid"
    assert mask("in failed_commit_stops_writes_until_restart") == (
        "in failed_commit_stops_writes_until_restart"  # Tracebacks stay readable.
    )
    assert mask("Bearer scos_0123456789abcdef_secret") == "Bearer scos_…"
    for kept in (
        "/v1/accounts/settlement:BKCHCNBJ:CNY",
        "/v1/accounts/vostro:BOXJCNU0:KCJBKZKX:CNY/statement",
        "/v1/transfer-batches",
        "/v1/keys/abcdefabcdefabcd/rotate",
        "/v1/payments/BKCHCNBJ:INV-2026-001",
    ):
        assert mask_path(kept) == kept


def test_l4_a_key_sent_in_the_path_is_not_logged(server, keys):
    issued = keys["a"]
    with server.client(issued) as http:
        http.get(f"/v1/accounts/{issued.api_key}")
        http.get(f"/v1/accounts/{issued.signing_secret}/transfers")
    time.sleep(0.5)
    text = server.log()
    secret = issued.api_key.split("_", 2)[2]
    for value in (issued.api_key, secret, issued.signing_secret):
        assert value not in text
        assert value[:16] not in text


def test_query_numbers_and_dates_accept_only_their_own_form(server, keys, accounts):
    """Found by the unbounded schemathesis run (negative_data_rejection): pydantic's lax
    parsing took ``received_from=0.0`` as 0 and a statement ``date`` of ``-1.3e-266`` as a Unix
    time (1970-01-01), answering 200. Query integers are digits, dates YYYY-MM-DD; else 422."""
    cases = [
        ("/v1/reports/corridors", {"received_from": "0.0"}),
        ("/v1/reports/corridors", {"received_to": "1e3"}),
        ("/v1/payments", {"limit": "1.0"}),
        ("/v1/payments", {"limit": " 5"}),
        (f"/v1/accounts/{accounts[A]}/statement", {"date": "-1.3161797153776865e-266"}),
        (f"/v1/accounts/{accounts[A]}/statement", {"date": "1700000000"}),
    ]
    with server.client(keys["a"]) as http:
        for path, params in cases:
            response = http.get(path, params=params)
            assert response.status_code == 422, (path, params, response.text)
            assert response.json()["code"] == "request_invalid"
        assert http.get("/v1/payments", params={"limit": "5"}).status_code == 200
        day = {"date": "2026-01-05"}
        assert http.get(f"/v1/accounts/{accounts[A]}/statement", params=day).status_code == 200


def test_a_query_parameter_given_twice_is_refused(server, keys):
    """Found by the bounded schemathesis run (negative data): ``after`` given four times
    answered 200 with the last value taken silently."""
    with server.client(keys["a"]) as http:
        response = http.get("/v1/reports/corridors", params=[("after", "x"), ("after", "")])
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "request_invalid"
        assert "after" in response.json()["detail"]
        assert http.get("/v1/reports/corridors", params={"limit": "3"}).status_code == 200
