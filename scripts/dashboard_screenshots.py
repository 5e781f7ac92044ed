"""Screenshots of the dashboard for README: a demo server, a few payments, Chromium, PNGs.

    .venv/bin/python scripts/dashboard_screenshots.py            # writes docs/img/dashboard-*.png
    .venv/bin/python scripts/dashboard_screenshots.py --out /tmp/shots

It starts ``sco-settle serve`` on a fresh SQLite database in a temporary folder (the SCO
reference network, funded), creates a network operator's key with ``sco-settle keys create``,
runs it in deferred net settlement (``--mode dns``) and makes demo payments through the API
(JSON and the example ISO 20022 pacs.008, a pair larger than its payers' balances that only
netting settles, payments too large to settle) with a netting cycle after every few, then drives
Debian's Chromium (``/usr/bin/chromium``; Playwright never downloads a browser) through each
view at 1280x800, and the map at a phone's width too. The payments are a demonstration, not data:
amounts are chosen to show each view, and the server's clock is the real one.

Each PNG is a screenshot of the top of its page (the viewport, not the whole page), kept under
``PNG_BYTES_MAX`` by Chromium's own PNG encoder at a 1:1 scale; the script fails if one is larger.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
PNG_BYTES_MAX = 200_000
START_SECONDS_MAX = 60
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
OPERATOR = "PBOCCNBJ"
# Deferred net settlement: the payments wait for the netting cycles the script runs, so that the
# cycles view shows gross against net and the liquidity view what netting saved.
MODE = "dns"
# (name, path, viewport): what README shows.
SHOTS = (
    ("map", "/dashboard/map?corridor=KZ-CN", DESKTOP),
    ("map-phone", "/dashboard/map", PHONE),
    ("corridors", "/dashboard/corridors", DESKTOP),
    ("liquidity", "/dashboard/liquidity#savings-title", DESKTOP),
    ("payments", "/dashboard/payments", DESKTOP),
    ("payment", "/dashboard/payments/{iso_payment}#messages-title", DESKTOP),
    ("cycles", "/dashboard/cycles", DESKTOP),
    ("rejections", "/dashboard/rejections", DESKTOP),
)
# Demo payments: (debtor agent, creditor agent, amount in minor units, currency, creditor currency).
DEMO_PAYMENTS = (
    ("HSBKKZKX", "BKCHCNBJ", 2_500_000_00, "KZT", "CNY"),
    ("HSBKKZKX", "BKCHCNBJ", 900_000_00, "KZT", "CNY"),
    ("KCJBKZKX", "ICBKCNBJ", 1_200_000_00, "KZT", "CNY"),
    ("BKCHCNBJ", "HSBKKZKX", 150_000_00, "CNY", "KZT"),
    ("BKCHCNBJ", "SABRRUMM", 400_000_00, "CNY", "RUB"),
    ("ICBKCNBJ", "VTBRRUMM", 250_000_00, "CNY", "RUB"),
    ("SABRRUMM", "BKCHCNBJ", 3_000_000_00, "RUB", "CNY"),
    ("KICBKG22", "XIHCCNB2", 5_000_000_00, "KGS", "CNY"),
    ("NBFAUZ2X", "BKCHCNBJ", 90_000_000_00, "UZS", "CNY"),
    ("SBININBB", "SABRRUMM", 2_000_000_00, "INR", "RUB"),
    ("HABBPKKA", "ICBKCNBJ", 3_000_000_00, "PKR", "CNY"),
    ("AKBBBY2X", "SABRRUMM", 100_000_00, "BYN", "RUB"),
    ("BKCHCNBJ", "ICBKCNBJ", 80_000_00, "CNY", "CNY"),
    ("HSBKKZKX", "BKCHCNBJ", 10**15, "KZT", "CNY"),  # far beyond any balance: AM04
    ("SABRRUMM", "BKCHCNBJ", 10**15, "RUB", "CNY"),
)


@dataclass
class Demo:
    base_url: str
    operator_key: str
    iso_payment: str  # the payment made by pacs.008, for the payment page


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sco_settle", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def create_key(db: str, participant: str, role: str) -> str:
    printed = cli("keys", "create", "--db", db, "--participant", participant, "--role", role)
    found = re.search(r"^api key:\s+(\S+)$", printed, re.MULTILINE)
    assert found is not None, printed
    return found.group(1)


@contextmanager
def demo_server(folder: Path) -> Iterator[Demo]:
    db = f"sqlite:///{folder}/demo.db"
    port = free_port()
    log = (folder / "server.log").open("wb")
    command = [sys.executable, "-m", "sco_settle", "serve", "--db", db, "--port", str(port)]
    command += ["--mode", MODE]
    server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(base_url, server)
        keys = {bic: create_key(db, bic, "participant") for bic in _payers()}
        operator = create_key(db, OPERATOR, "network_operator")
        iso_payment = make_payments(base_url, keys, operator)
        yield Demo(base_url, operator, iso_payment)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def wait_for(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer in {START_SECONDS_MAX} s")


def _payers() -> list[str]:
    return sorted({payment[0] for payment in DEMO_PAYMENTS} | {"BKCHCNBJ", "VTBRRUMM"})


def make_payments(base_url: str, keys: dict[str, str], operator: str) -> str:
    """The demo payments; returns the id of the one made by pacs.008."""
    for number, (debtor, creditor, amount, currency, creditor_currency) in enumerate(DEMO_PAYMENTS):
        body = {
            "instruction_id": f"demo-{number}",
            "amount_minor": amount,
            "currency": currency,
            "creditor_agent": creditor,
            "creditor_currency": creditor_currency,
        }
        post(base_url, keys[debtor], "/v1/payments", json=body)
        if number % 5 == 4:  # A cycle now and then: several cycles to show.
            post(base_url, operator, "/v1/netting-cycles", json={})
    offsetting_pair(base_url, keys)
    iso_payment = iso_payments(base_url, keys)
    post(base_url, operator, "/v1/netting-cycles", json={})
    return iso_payment


def offsetting_pair(base_url: str, keys: dict[str, str]) -> None:
    """Two payments each larger than its payer's balance, settled together by netting (in RTGS:
    bilateral offsetting), so the liquidity view shows a saving."""
    balances = {}
    for bic in ("BKCHCNBJ", "ICBKCNBJ"):
        accounts = get(base_url, keys[bic], "/v1/accounts")
        items: list[dict[str, object]] = accounts["items"]  # type: ignore[assignment]
        balances[bic] = next(a for a in items if a["kind"] == "settlement")
    big = max(int(str(a["available_minor"])) for a in balances.values()) + 1_000_000_00
    pair = (("BKCHCNBJ", "ICBKCNBJ"), ("ICBKCNBJ", "BKCHCNBJ"))
    for number, (debtor, creditor) in enumerate(pair):
        body = {"instruction_id": f"lsm-{number}", "amount_minor": big, "currency": "CNY",
                "creditor_agent": creditor}  # fmt: skip
        post(base_url, keys[debtor], "/v1/payments", json=body)


def iso_payments(base_url: str, keys: dict[str, str]) -> str:
    """The example pacs.008 (Halyk Bank, KZT, to Bank of China, CNY) through the ISO door."""
    message = (ROOT / "examples" / "pacs008_kz_to_cn.xml").read_bytes()
    headers = {"Content-Type": "application/xml", "Idempotency-Key": "demo-pacs008"}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        answer = http.post(
            "/v1/iso20022/messages",
            content=message,
            headers={**headers, "Authorization": f"Bearer {keys['HSBKKZKX']}"},
        )
    answer.raise_for_status()
    found = re.search(rb"<OrgnlUETR>([^<]+)</OrgnlUETR>", answer.content)
    assert found is not None, answer.text
    return f"HSBKKZKX:{found.group(1).decode()}"


def post(base_url: str, key: str, path: str, *, json: object) -> object:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"k{time.time_ns()}"}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        answer = http.post(path, json=json, headers=headers)
    assert answer.status_code < 300, answer.text
    return answer.json()


def get(base_url: str, key: str, path: str) -> dict[str, object]:
    with httpx.Client(base_url=base_url, timeout=60) as http:
        answer = http.get(path, headers={"Authorization": f"Bearer {key}"})
    answer.raise_for_status()
    found: dict[str, object] = answer.json()
    return found


def screenshots(demo: Demo, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        for name, path, viewport in SHOTS:
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            page.goto(demo.base_url + "/dashboard/sign-in")
            page.fill("#api_key", demo.operator_key)
            page.click("form.sign-in button[type=submit]")
            page.wait_for_load_state("load")
            page.goto(demo.base_url + path.format(iso_payment=demo.iso_payment.replace(":", "%3A")))
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(500)  # Charts finish drawing.
            target = out / f"dashboard-{name}.png"
            page.screenshot(path=str(target))
            context.close()
            size = target.stat().st_size
            if size > PNG_BYTES_MAX:
                raise SystemExit(f"{target} is {size} bytes, more than {PNG_BYTES_MAX}")
            written.append(target)
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    options = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit("Debian's chromium is missing: apt-get install -y chromium")
    options.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
    with tempfile.TemporaryDirectory() as folder, demo_server(Path(folder)) as demo:
        for written in screenshots(demo, options.out):
            print(f"{written.relative_to(ROOT) if written.is_relative_to(ROOT) else written}"
                  f"  {written.stat().st_size} bytes")  # fmt: skip


if __name__ == "__main__":
    main()
