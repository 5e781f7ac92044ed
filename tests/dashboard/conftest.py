"""Fixtures for the dashboard tests: a live server (a real ``sco-settle serve`` process) with a
few payments, keys of each role, and a headless Chromium driven by Playwright.

The browser is Debian's ``chromium`` (``apt-get install -y chromium``), launched from
``/usr/bin/chromium``; Playwright never downloads a browser here. Without it the browser tests
are skipped (the plain HTTP tests of sessions and cookies still run).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sco_settle.server.keys import IssuedKey, Role
from tests.server.conftest import LiveServer, start_server

CHROMIUM = Path("/usr/bin/chromium")
A = "BKCHCNBJ"  # a participant (CNY)
B = "ICBKCNBJ"  # another participant (CNY)
C = "XIHCCNB2"  # a third, paid by B only
_COOKIE = re.compile(r"sco_dashboard=([^;]*)")


@dataclass
class Parties:
    a: IssuedKey
    b: IssuedKey
    operator: IssuedKey
    auditor: IssuedKey
    payment_a: str  # A pays SABRRUMM (CNY -> RUB)
    payment_b: str  # B pays C: A must never see it


def pay(server: LiveServer, key: IssuedKey, instruction_id: str, **fields: Any) -> dict[str, Any]:
    body = {"instruction_id": instruction_id, "amount_minor": 100_00, "currency": "CNY", **fields}
    with server.client(key) as http:
        answer = http.post("/v1/payments", json=body, headers={"Idempotency-Key": instruction_id})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("dashboard")
    live = start_server(f"sqlite:///{folder}/ledger.db", folder / "server.log")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def parties(server: LiveServer) -> Parties:
    a, b = server.key(A), server.key(B)
    paid_a = pay(server, a, "dash-a-1", creditor_agent="SABRRUMM", creditor_currency="RUB")
    paid_b = pay(server, b, "dash-b-1", creditor_agent=C)
    pay(server, a, "dash-a-big", creditor_agent="HSBKKZKX", amount_minor=10**15)  # rejected
    return Parties(
        a,
        b,
        server.key("PBOCCNBJ", Role.NETWORK_OPERATOR),
        server.key("PBOCCNBJ", Role.AUDITOR),
        paid_a["payment_id"],
        paid_b["payment_id"],
    )


def origin_headers(server: LiveServer) -> dict[str, str]:
    return {"Origin": server.base_url}


def sign_in(server: LiveServer, api_key: str, **headers: str) -> httpx.Response:
    """POST the sign-in form as a page of the server would (its Origin)."""
    return httpx.post(
        server.base_url + "/dashboard/sign-in",
        data={"api_key": api_key},
        headers={**origin_headers(server), **headers},
        follow_redirects=False,
        timeout=30,
    )


def session_of(answer: httpx.Response) -> str:
    found = _COOKIE.search(answer.headers.get("set-cookie", ""))
    assert found is not None, answer.headers
    return found.group(1)


def dashboard_get(server: LiveServer, path: str, session: str | None) -> httpx.Response:
    """A GET with the session cookie sent by hand (httpx keeps ``Secure`` cookies to https)."""
    headers = {"Cookie": f"sco_dashboard={session}"} if session is not None else {}
    return httpx.get(server.base_url + path, headers=headers, follow_redirects=False, timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed (/usr/bin/chromium): apt-get install -y chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()
