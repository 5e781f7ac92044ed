"""The dashboard's session and cookie rules over plain HTTP (no browser), and its parts alone:
the session store, the origin check, the live hub and newest-first paging."""

from __future__ import annotations

import asyncio
import gzip
import random
from urllib.parse import quote

import httpx
import pytest

from sco_settle.payments.model import Party, Payment
from sco_settle.server.auth import Principal
from sco_settle.server.dashboard.live import LiveHub, events
from sco_settle.server.dashboard.sessions import SessionStore, same_origin
from sco_settle.server.dashboard.views import newest_start
from sco_settle.server.keys import Role
from tests.dashboard.conftest import A, B, C, dashboard_get, session_of, sign_in

VIEWS = ("corridors", "liquidity", "payments", "cycles", "rejections")


# -- sign-in, the cookie, sign-out -----------------------------------------------------------


def test_sign_in_sets_a_secure_httponly_strict_session_cookie(server, parties):
    answer = sign_in(server, parties.a.api_key)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/dashboard/corridors"
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/dashboard"} <= attributes
    session = session_of(answer)
    assert len(session) >= 43  # 256 random bits
    assert parties.a.api_key not in cookie and parties.a.record.key_id not in cookie
    assert dashboard_get(server, "/dashboard/corridors", session).status_code == 200


def test_each_sign_in_gets_a_fresh_session_id(server, parties):
    first = session_of(sign_in(server, parties.a.api_key))
    second = session_of(sign_in(server, parties.a.api_key))
    assert first != second


@pytest.mark.parametrize(
    "api_key",
    ["", "not a key", "scos_0123456789abcdef_" + "x" * 43, "x" * 500],
)
def test_a_wrong_key_is_refused_without_a_cookie(server, parties, api_key):
    answer = sign_in(server, api_key)
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "not accepted" in answer.text


def test_a_wrong_secret_of_a_real_key_is_refused(server, parties):
    wrong = parties.a.api_key[:-4] + ("AAAA" if not parties.a.api_key.endswith("AAAA") else "BBBB")
    answer = sign_in(server, wrong)
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_sign_in_from_another_origin_is_refused(server, parties, headers):
    answer = sign_in(server, parties.a.api_key, **headers)
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_sign_in_without_any_origin_is_refused(server, parties):
    answer = httpx.post(
        server.base_url + "/dashboard/sign-in", data={"api_key": parties.a.api_key}, timeout=30
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_a_same_origin_referer_is_enough(server, parties):
    answer = httpx.post(
        server.base_url + "/dashboard/sign-in",
        data={"api_key": parties.a.api_key},
        headers={"Referer": server.base_url + "/dashboard/sign-in"},
        timeout=30,
    )
    assert answer.status_code == 303


def test_sign_out_clears_the_cookie_and_ends_the_session(server, parties):
    session = session_of(sign_in(server, parties.a.api_key))
    refused = httpx.post(
        server.base_url + "/dashboard/sign-out",
        headers={"Cookie": f"sco_dashboard={session}", "Origin": "https://evil.example"},
        timeout=30,
    )
    assert refused.status_code == 403  # A cross-site sign-out does nothing.
    assert dashboard_get(server, "/dashboard/payments", session).status_code == 200
    answer = httpx.post(
        server.base_url + "/dashboard/sign-out",
        headers={"Cookie": f"sco_dashboard={session}", "Origin": server.base_url},
        timeout=30,
    )
    assert answer.status_code == 303
    assert "max-age=0" in answer.headers["set-cookie"].lower()
    assert session_of(answer) == ""
    after = dashboard_get(server, "/dashboard/payments", session)
    assert after.status_code == 303 and after.headers["location"] == "/dashboard/sign-in"


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("session", [None, "", "made-up", "x" * 300])
def test_views_need_a_session(server, parties, view, session):
    answer = dashboard_get(server, f"/dashboard/{view}", session)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/sign-in"


def test_events_need_a_session(server, parties):
    assert dashboard_get(server, "/dashboard/events", None).status_code == 401


def test_revoking_the_key_ends_its_sessions(server, parties):
    key = server.key(A)
    session = session_of(sign_in(server, key.api_key))
    assert dashboard_get(server, "/dashboard/payments", session).status_code == 200
    server.keys().revoke(key.record.key_id)
    answer = dashboard_get(server, "/dashboard/payments", session)
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/sign-in"


def test_pages_are_not_cached_and_carry_a_strict_policy(server, parties):
    session = session_of(sign_in(server, parties.a.api_key))
    answer = dashboard_get(server, "/dashboard/payments", session)
    assert answer.headers["cache-control"] == "no-store"
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"


# -- what each role sees ---------------------------------------------------------------------


def test_a_participant_never_sees_another_participants_payment(server, parties):
    session = session_of(sign_in(server, parties.a.api_key))
    listed = dashboard_get(server, "/dashboard/payments", session)
    assert parties.payment_a in listed.text
    assert parties.payment_b not in listed.text and C not in listed.text
    theirs = dashboard_get(server, f"/dashboard/payments/{quote(parties.payment_b)}", session)
    missing = dashboard_get(server, f"/dashboard/payments/{quote(B + ':nothing')}", session)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text  # Not visible and not there: the same answer.
    searched = dashboard_get(server, f"/dashboard/payments?id={quote(parties.payment_b)}", session)
    followed = dashboard_get(server, searched.headers["location"], session)
    assert followed.status_code == 404
    own = dashboard_get(server, f"/dashboard/payments/{quote(parties.payment_a)}", session)
    assert own.status_code == 200 and "SABRRUMM" in own.text
    for view in ("corridors", "liquidity", "rejections"):
        page = dashboard_get(server, f"/dashboard/{view}", session)
        assert page.status_code == 200
        assert C not in page.text and f"settlement:{B}" not in page.text


def test_operator_and_auditor_see_everything(server, parties):
    for key in (parties.operator, parties.auditor):
        session = session_of(sign_in(server, key.api_key))
        listed = dashboard_get(server, "/dashboard/payments", session)
        assert parties.payment_a in listed.text and parties.payment_b in listed.text
        assert dashboard_get(server, "/dashboard/cycles", session).status_code == 200


def test_cycles_are_not_shown_to_a_participant(server, parties):
    session = session_of(sign_in(server, parties.a.api_key))
    assert dashboard_get(server, "/dashboard/cycles", session).status_code == 403
    assert (
        'href="/dashboard/cycles"' not in dashboard_get(server, "/dashboard/payments", session).text
    )


def test_rejections_count_by_reason_and_corridor(server, parties):
    session = session_of(sign_in(server, parties.a.api_key))
    page = dashboard_get(server, "/dashboard/rejections", session)
    assert "AM02" in page.text and "CN-KZ" in page.text


def test_bad_query_values_are_refused_plainly(server, parties):
    session = session_of(sign_in(server, parties.a.api_key))
    for path in (
        "/dashboard/payments?status=nope",
        "/dashboard/payments?before=-1",
        "/dashboard/payments?after=1e3",
        "/dashboard/corridors?from=2024-13-01",
        "/dashboard/corridors?to=20240101",
    ):
        assert dashboard_get(server, path, session).status_code == 400, path


def test_plotly_is_served_from_the_installed_package(server):
    home = httpx.get(server.base_url + "/dashboard/sign-in", timeout=30)
    assert home.status_code == 200
    import importlib.metadata

    version = importlib.metadata.version("plotly")
    path = f"/dashboard/static/plotly-{version}.min.js"
    plain = httpx.get(server.base_url + path, headers={"Accept-Encoding": "identity"}, timeout=30)
    assert plain.status_code == 200 and b"plotly.js" in plain.content[:200]
    packed = httpx.get(server.base_url + path, headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content  # httpx decodes it
    assert gzip.compress(b"") and "immutable" in packed.headers["cache-control"]
    assert httpx.get(server.base_url + "/dashboard/static/plotly-0.min.js").status_code == 404
    assert httpx.get(server.base_url + "/dashboard/static/..%2Fviews.py").status_code == 404


def test_the_dashboard_is_not_in_the_openapi_document():
    from sco_settle.server.app import openapi_document

    assert not any(path.startswith("/dashboard") for path in openapi_document()["paths"])


# -- the parts alone -------------------------------------------------------------------------


def _principal(participant: str, role: Role = Role.PARTICIPANT) -> Principal:
    return Principal("0" * 16, participant, role, frozenset())


def test_sessions_expire_when_idle_and_at_their_end():
    now = [1000.0]
    store = SessionStore(clock=lambda: now[0], seconds_max=100, idle_seconds_max=10)
    session = store.create(_principal(A))
    now[0] += 9
    assert store.get(session) is not None
    now[0] += 9  # 9 s since the last use: still alive
    assert store.get(session) is not None
    now[0] += 10
    assert store.get(session) is None  # idle too long
    other = store.create(_principal(A))
    for _ in range(12):
        now[0] += 9
        found = store.get(other)
    assert found is None  # 108 s after sign-in, though used every 9 s
    assert len(store) == 0


def test_the_session_store_is_bounded_and_keeps_no_ids():
    store = SessionStore(sessions_max=3)
    ids = [store.create(_principal(A)) for _ in range(5)]
    assert len(store) == 3
    assert store.get(ids[0]) is None and store.get(ids[4]) is not None
    assert all(session_id.encode() not in key for session_id in ids for key in store._sessions)
    store.delete(ids[4])
    assert store.get(ids[4]) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"host": "h:1", "origin": "http://h:1"}, True),
        ({"host": "h:1", "origin": "http://h:1", "sec-fetch-site": "same-origin"}, True),
        ({"host": "h:1", "origin": "http://h:1", "sec-fetch-site": "same-site"}, False),
        ({"host": "h:1", "origin": "https://h:1"}, False),
        ({"host": "h:1", "origin": "http://h:2"}, False),
        ({"host": "h:1", "referer": "http://h:1/dashboard/x"}, True),
        ({"host": "h:1", "referer": "http://h:1.evil/x"}, False),
        ({"host": "h:1"}, False),
        ({"origin": "http://h:1"}, False),
    ],
)
def test_same_origin(headers, expected):
    assert same_origin(headers, "http") is expected


def _payment(debtor: str, creditor: str) -> Payment:
    return Payment(
        payment_id=f"{debtor}:x",
        debtor_agent=debtor,
        creditor_agent=creditor,
        amount_minor=1,
        currency="CNY",
        creditor_currency="CNY",
        debtor=Party("d", "1"),
        creditor=Party("c", "2"),
    )


def test_the_hub_wakes_only_streams_that_may_see_the_payment():
    async def scenario() -> list[bytes]:
        hub = LiveHub()
        mine = hub.open(_principal(A), "s1")
        other = hub.open(_principal(C), "s2")
        operator = hub.open(_principal("PBOCCNBJ", Role.NETWORK_OPERATOR), "s3")
        await asyncio.get_running_loop().run_in_executor(None, hub.publish, [_payment(A, B)])
        await asyncio.sleep(0.05)
        assert mine.changed.is_set() and operator.changed.is_set()
        assert not other.changed.is_set()
        body = events(hub, mine, lambda: True, seconds_max=0.3)
        chunks = [chunk async for chunk in body]
        hub.close(other)
        hub.close(operator)
        assert len(hub) == 0
        return chunks

    chunks = asyncio.run(scenario())
    assert chunks[0].startswith(b"retry: ")
    assert b"event: change\n" in chunks[1] and b"data: {}\n" in chunks[1]
    assert not any(A.encode() in chunk or b"CNY" in chunk for chunk in chunks)


def test_the_hub_bounds_streams_per_session():
    from sco_settle.server.dashboard.live import STREAMS_PER_SESSION_MAX, StreamsFull

    async def scenario() -> None:
        hub = LiveHub()
        for _ in range(STREAMS_PER_SESSION_MAX):
            hub.open(_principal(A), "s1")
        with pytest.raises(StreamsFull):
            hub.open(_principal(A), "s1")
        hub.open(_principal(A), "s2")

    asyncio.run(scenario())


@pytest.mark.parametrize("seed", range(30))
def test_newest_start_finds_the_newest_page(seed):
    rng = random.Random(seed)
    seqs = sorted(rng.sample(range(1, 5000), rng.randint(0, 300)))
    size = rng.randint(1, 60)
    probes = []

    def seqs_after(after: int, limit: int) -> list[int]:
        probes.append(after)
        return [seq for seq in seqs if seq > after][:limit]

    before = rng.choice([None, *seqs]) if seqs else None
    start = newest_start(seqs_after, before, size)
    below = [seq for seq in seqs if before is None or seq < before]
    assert [seq for seq in seqs if start < seq and (before is None or seq < before)] == below[
        -size:
    ]
    assert start == 0 or start in seqs  # the page starts right after an item
    assert len(probes) <= 2 * 14 + 2


def test_liquidity_shows_swap_lines_and_fx_income_to_whom_may_see_them(server, parties):
    operator = session_of(sign_in(server, parties.operator.api_key))
    page = dashboard_get(server, "/dashboard/liquidity", operator).text
    assert "Swap lines: what each central bank has drawn" in page
    assert "CBRFRUMM" in page and "NBRKKZKX" in page and "FX income" in page
    participant = session_of(sign_in(server, parties.a.api_key))
    own = dashboard_get(server, "/dashboard/liquidity", participant).text
    assert "No swap line visible." in own  # a commercial bank reads no central bank's line
