"""The dashboard in a real browser: Debian's Chromium, driven by Playwright.

Every page of these tests is watched: a request to any origin but the server's is aborted and
recorded (the dashboard must load nothing from elsewhere), and so is every console error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dashboard.conftest import A, C, Parties, pay
from tests.server.conftest import LiveServer

VIEWS = ("corridors", "map", "liquidity", "payments", "cycles", "rejections")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
LIVE_SECONDS_MAX = 1.0


class Watched:
    """A browser context whose requests outside the server and console errors are recorded."""

    def __init__(self, browser: Any, server: LiveServer, viewport: dict[str, int]) -> None:
        self.server = server
        self.context = browser.new_context(viewport=viewport)
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.server.base_url + "/") or url.startswith("data:"):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.server.base_url + path)

    def sign_in(self, api_key: str) -> None:
        self.goto("/dashboard")
        self.page.fill("#api_key", api_key)
        self.page.click("form.sign-in button[type=submit]")
        self.page.wait_for_load_state("load")

    def close(self) -> None:
        self.context.close()
        assert self.foreign == [], f"requests left the server's origin: {self.foreign}"
        assert self.errors == [], f"console errors: {self.errors}"


@pytest.fixture
def watched(browser: Any, server: LiveServer) -> Iterator[Any]:
    opened: list[Watched] = []

    def open_context(viewport: dict[str, int] = DESKTOP) -> Watched:
        opened.append(Watched(browser, server, viewport))
        return opened[-1]

    yield open_context
    for one in opened:
        one.close()


def test_sign_in_with_a_valid_key_works(watched, parties: Parties):
    from playwright.sync_api import expect

    one = watched()
    one.sign_in(parties.operator.api_key)
    assert one.page.url.endswith("/dashboard/corridors")
    expect(one.page.locator("h1")).to_have_text("Corridors")
    expect(one.page.locator(".who")).to_contain_text("network operator")
    expect(one.page.locator("table")).to_contain_text("CN-RU")
    cookies = {cookie["name"]: cookie for cookie in one.context.cookies()}
    session = cookies["sco_dashboard"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
    assert one.page.evaluate("document.cookie") == ""  # not readable by scripts
    one.page.click(".who button")  # sign out
    one.page.wait_for_url(re.compile(r".*/dashboard/sign-in$"))
    one.goto("/dashboard/payments")
    assert one.page.url.endswith("/dashboard/sign-in")


def test_a_wrong_key_is_refused(watched, parties: Parties):
    from playwright.sync_api import expect

    one = watched()
    one.sign_in(parties.a.api_key[:-3] + "zzz")
    expect(one.page.locator("#sign-in-error")).to_have_text("That API key was not accepted.")
    assert one.page.url.endswith("/dashboard/sign-in")
    assert one.context.cookies() == []
    one.goto("/dashboard/payments")
    assert one.page.url.endswith("/dashboard/sign-in")
    # The refused sign-in answers 401, which Chromium reports on the console; nothing else may.
    assert all("401" in error for error in one.errors)
    one.errors.clear()


def test_a_participant_cannot_see_another_participants_payment(watched, parties: Parties):
    from playwright.sync_api import expect

    one = watched()
    one.sign_in(parties.a.api_key)
    one.goto("/dashboard/payments")
    table = one.page.locator("#live table")
    expect(table).to_contain_text(parties.payment_a)
    assert parties.payment_b not in table.inner_text() and C not in table.inner_text()
    answer = one.goto("/dashboard/payments/" + parties.payment_b.replace(":", "%3A"))
    assert answer is not None and answer.status == 404
    expect(one.page.locator("main")).to_contain_text("No payment with that id.")
    assert C not in one.page.content()
    one.goto("/dashboard/payments")
    one.page.fill("#payment-id", parties.payment_b)
    one.page.press("#payment-id", "Enter")
    expect(one.page.locator("main")).to_contain_text("No payment with that id.")
    assert all("404" in error for error in one.errors)  # the refused page's status
    one.errors.clear()


def test_a_payment_appears_live_without_reload(watched, server: LiveServer, parties: Parties):
    from playwright.sync_api import expect

    one = watched()
    one.sign_in(parties.a.api_key)
    one.goto("/dashboard/payments")
    expect(one.page.locator("body")).to_have_attribute("data-live", "open")
    one.page.evaluate("window.notReloaded = true")
    instruction = f"live-{time.time_ns()}"
    paid = pay(server, parties.a, instruction, creditor_agent="ICBKCNBJ")
    answered = time.monotonic()
    row = one.page.locator("#live table tbody tr").first
    expect(row).to_contain_text(paid["payment_id"], timeout=LIVE_SECONDS_MAX * 1000)
    assert time.monotonic() - answered <= LIVE_SECONDS_MAX
    assert one.page.evaluate("window.notReloaded") is True


def test_keyboard_navigation_reaches_every_view(watched, parties: Parties):
    one = watched()
    one.sign_in(parties.operator.api_key)
    reached: list[str] = []
    for _ in range(40):
        one.page.keyboard.press("Tab")
        href = one.page.evaluate("document.activeElement.getAttribute('href')")
        if href and href.startswith("/dashboard/") and href[len("/dashboard/") :] in VIEWS:
            reached.append(href[len("/dashboard/") :])
        if set(reached) == set(VIEWS):
            break
    assert set(reached) == set(VIEWS), reached
    for view in VIEWS:  # Each link opens its view with the keyboard alone.
        one.page.focus(f'nav[aria-label="Views"] a[href="/dashboard/{view}"]')
        one.page.keyboard.press("Enter")
        one.page.wait_for_url(f"**/dashboard/{view}")
        current = one.page.locator('nav[aria-label="Views"] a[aria-current="page"]')
        assert current.get_attribute("href") == f"/dashboard/{view}"
    # The skip link is the first stop and takes the focus to the content.
    one.goto("/dashboard/payments")
    one.page.keyboard.press("Tab")
    assert one.page.evaluate("document.activeElement.className") == "skip"
    one.page.keyboard.press("Enter")
    assert one.page.evaluate("document.activeElement.id") == "main"


@pytest.mark.parametrize("role", ["operator", "a"])
def test_every_view_fits_a_phone_without_horizontal_scroll(watched, parties: Parties, role):
    one = watched(PHONE)
    one.sign_in(getattr(parties, role).api_key)
    for view in VIEWS:
        answer = one.goto(f"/dashboard/{view}")
        assert answer is not None
        one.page.wait_for_load_state("load")
        widths = one.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], (view, widths)
    if role == "a":  # cycles: 403 for a participant
        assert all("403" in error for error in one.errors)
        one.errors.clear()


def test_views_render_their_charts_at_desktop_size(watched, parties: Parties):
    one = watched(DESKTOP)
    one.sign_in(parties.operator.api_key)
    for view in ("corridors", "rejections"):
        one.goto(f"/dashboard/{view}")
        one.page.wait_for_selector("#live [data-chart] .main-svg")
        widths = one.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], (view, widths)
    one.goto("/dashboard/payments/" + parties.payment_a.replace(":", "%3A"))
    main = one.page.locator("main").inner_text()
    assert "SABRRUMM" in main and "Applied rate" in main and "settled" in main
    assert A in main
