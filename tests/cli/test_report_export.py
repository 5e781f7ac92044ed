"""``sco-settle report`` and ``sco-settle export``, run as a user runs them: real processes on a
real simulation's output and on real databases, the files read back with pyarrow (and DuckDB when
it happens to be installed; it is not a dependency)."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pacs008_kz_to_cn.xml"
CHROMIUM = Path("/usr/bin/chromium")
KZ_CN = "HSBKKZKX:5c0e4b1f-3d2a-4e8b-9f61-2a7d9c4e8101"  # the example's first payment
CODE = pa.dictionary(pa.int32(), pa.string())
TIME = pa.timestamp("ns", tz="UTC")


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sco_settle", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(*args: str | Path) -> str:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str | Path) -> str:
    """The one-line error of a command that must fail with exit code 1 and no traceback."""
    result = cli(*args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sco-settle: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def rtgs_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the ledger database, the output directory) of a small RTGS simulation."""
    base = tmp_path_factory.mktemp("rtgs")
    ok("simulate", "--scale", "0.05", "--db", base / "sim.db", "--out", base / "out")
    return base / "sim.db", base / "out"


@pytest.fixture(scope="module")
def dns_scenario_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output directory of a DNS simulation with a scenario (baseline/ and scenario/)."""
    out = tmp_path_factory.mktemp("dns") / "out"
    ok(
        "simulate",
        "--mode",
        "dns",
        "--scale",
        "0.05",
        "--scenario",
        "corridor-cut:CN-KZ",
        "--out",
        out,
    )
    return out


@pytest.fixture(scope="module")
def iso_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sco-settle init, then the example pacs.008: KZ->CN settled, KZ->KZ settled, one AM09."""
    db = tmp_path_factory.mktemp("iso") / "sco.db"
    ok("init", "--db", db)
    ok("iso", "submit", EXAMPLE, "--as", "HSBKKZKX", "--db", db)
    return db


# The report page.


class PageParser(HTMLParser):
    """Tags with their attributes, and the text of every <script> by its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse_page(path: Path) -> tuple[str, PageParser]:
    text = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(text)
    return text, parser


def charts(parser: PageParser) -> dict[str, dict[str, Any]]:
    return {
        str(attrs["id"]): json.loads(text)
        for attrs, text in parser.scripts
        if attrs.get("type") == "application/json"
    }


def metrics_of(directory: Path) -> dict[str, str]:
    with (directory / "summary.csv").open(encoding="utf-8") as handle:
        return {row["metric"]: row["value"] for row in csv.DictReader(handle)}


def test_report_is_one_self_contained_page_with_the_runs_data(rtgs_run: tuple[Path, Path]):
    _, out = rtgs_run
    stdout = ok("report", out)
    page = out / "report.html"
    assert str(page) in stdout
    text, parser = parse_page(page)
    # Nothing to load: no script or link with a source, no URL in any attribute.
    assert "<script src" not in text.lower()
    assert not parser.named("link") and not parser.named("iframe") and not parser.named("img")
    for tag, attrs in parser.tags:
        for name, value in attrs.items():
            assert "http://" not in (value or "") and "https://" not in (value or ""), (tag, name)
            assert name != "src", tag
    # The inline scripts are plotly.js and the page's own, both allowed by hash and nothing else.
    code = [body for attrs, body in parser.scripts if "type" not in attrs]
    assert len(code) == 2 and "Plotly" in code[0] and "newPlot" in code[1]
    policy = next(
        attrs["content"] or ""
        for attrs in parser.named("meta")
        if attrs.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in policy
    for body in code:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    # The charts carry the run's numbers: settled value per corridor adds up to the summary's.
    metrics = metrics_of(out)
    figures = charts(parser)
    assert set(figures) >= {
        "chart-corridors-data",
        "chart-liquidity-data",
        "chart-delays-data",
        "chart-swap-lines-data",
        "chart-tiers-data",
    }
    settled = next(t for t in figures["chart-corridors-data"]["data"] if t["name"] == "settled")
    total_cny_m = int(metrics["settled_value_cny_minor"]) / 10**8
    assert sum(settled["x"]) == pytest.approx(total_cny_m, abs=0.01 * len(settled["x"]))
    assert "KZ > CN" in settled["y"] and "CN domestic" in settled["y"]
    # What converted the cross-border value: stacked by mechanism, adding up to what settled.
    mechanisms = figures["chart-mechanisms-data"]["data"]
    assert {trace["name"] for trace in mechanisms} >= {"rmb_clearing_bank", "fx_provider"}
    stacked = sum(sum(trace["x"]) for trace in mechanisms)
    crossing = sum(x for x, y in zip(settled["x"], settled["y"], strict=True) if ">" in y)
    assert stacked == pytest.approx(crossing, abs=0.01 * len(settled["x"]) * len(mechanisms))
    # Accessible: language, phone width, one h1, a heading per section, captions on tables.
    assert parser.named("html")[0]["lang"] == "en"
    assert any("width=device-width" in (a.get("content") or "") for a in parser.named("meta"))
    assert len(parser.named("h1")) == 1 and len(parser.named("h2")) >= 8
    assert text.count("<table") == text.count("<caption") >= 8
    for figure_box in parser.named("div"):
        if "data-chart" in figure_box:
            assert figure_box["role"] == "img" and figure_box["aria-label"]


def test_report_is_the_same_bytes_for_the_same_directory(rtgs_run, tmp_path):
    _, out = rtgs_run
    ok("report", out, "--out", tmp_path / "a.html")
    ok("report", out, "--out", tmp_path / "b.html")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_report_of_a_dns_scenario_run_shows_both_runs_cycles_and_deltas(dns_scenario_run):
    ok("report", dns_scenario_run)
    text, parser = parse_page(dns_scenario_run / "report.html")
    figures = charts(parser)
    for run in ("baseline", "scenario"):
        assert f"{run}-chart-cycles-data" in figures
        assert f"{run}-chart-corridors-data" in figures
    assert 'id="scenario-delta-table"' in text
    # The corridor cut rejects what CN-KZ carried: the scenario's chart shows the reason.
    reasons = figures["scenario-chart-rejections-data"]["data"][0]["y"]
    assert any(reason.startswith("AG01") for reason in reasons)
    cycles = figures["baseline-chart-cycles-data"]["data"][0]
    settled_in_cycles = sum(cycles["y"])
    assert settled_in_cycles == int(metrics_of(dns_scenario_run / "baseline")["payments_settled"])


def test_report_errors_are_one_line(rtgs_run, tmp_path):
    _, out = rtgs_run
    assert "not a directory" in fails("report", tmp_path / "nowhere")
    assert "no summary.csv" in fails("report", tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "corridors.csv").unlink()
    assert "corridors.csv: missing" in fails("report", broken)
    shutil.copy(out / "corridors.csv", broken / "corridors.csv")
    lines = (broken / "delays.csv").read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[1], "many", 1)
    (broken / "delays.csv").write_text("\n".join(lines) + "\n")
    message = fails("report", broken)
    assert "delays.csv: line 3: count is 'many', not an integer" in message
    shutil.copy(out / "delays.csv", broken / "delays.csv")
    (broken / "tiers.csv").write_text("tier,count\nmember-member,1\n")
    assert "tiers.csv: line 1: header is tier,count" in fails("report", broken)
    (broken / "tiers.csv").write_bytes(b"\xff\xfe")
    assert "tiers.csv: not UTF-8" in fails("report", broken)
    shutil.copy(out / "tiers.csv", broken / "tiers.csv")
    assert "no such directory for --out" in fails("report", broken, "--out", tmp_path / "x/y.html")
    ok("report", broken)  # Repaired, it renders again.


def test_report_opens_from_a_file_in_a_browser(rtgs_run):
    """Debian's chromium, never downloaded: the page draws every chart, loads nothing, logs no
    error, and fits a phone's width."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    _, out = rtgs_run
    ok("report", out)
    url = (out / "report.html").resolve().as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            for viewport in ({"width": 1280, "height": 800}, {"width": 375, "height": 740}):
                context = browser.new_context(viewport=viewport)
                elsewhere: list[str] = []
                errors: list[str] = []

                def route(request_route: Any, found: list[str] = elsewhere) -> None:
                    if request_route.request.url == url:
                        request_route.continue_()
                    else:
                        found.append(request_route.request.url)
                        request_route.abort()

                context.route("**/*", route)
                page = context.new_page()
                page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else 0)
                page.on("pageerror", lambda error, e=errors: e.append(str(error)))
                page.goto(url)
                boxes = page.locator("[data-chart]").count()
                page.wait_for_function(
                    f"document.querySelectorAll('[data-chart] .main-svg').length >= {boxes}"
                )
                assert boxes >= 5
                assert errors == [] and elsewhere == []
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"]
                context.close()
        finally:
            browser.close()


# Export.


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_export_payments_as_parquet_with_explicit_types_and_the_payments_values(iso_db, tmp_path):
    target = tmp_path / "payments.parquet"
    assert "Wrote 3 payments" in ok(
        "export", "payments", "--db", iso_db, "--format", "parquet", "--out", target
    )
    table = pq.read_table(target)
    schema = table.schema
    for name in ("status", "reason", "corridor", "debtor_country", "currency", "tier_pair"):
        assert schema.field(name).type == CODE, name
    for name in ("amount_minor", "amount_sent_minor", "amount_delivered_minor", "seq"):
        assert schema.field(name).type == pa.int64(), name
    assert schema.field("currency_minor_digits").type == pa.int8()
    assert schema.field("received_at").type == TIME and schema.field("settled_at").type == TIME
    assert schema.field("applied_rate").type == pa.string()
    assert not schema.field("amount_sent_minor").nullable and schema.field("settled_at").nullable
    rows = {
        row["payment_id"]: row
        for row in table.drop_columns(["received_at", "settled_at"]).to_pylist()
    }
    assert rows[KZ_CN] | {"seq": 0} == {
        "payment_id": KZ_CN,
        "seq": 0,
        "status": "settled",
        "reason": None,
        "reason_text": "",
        "debtor_agent": "HSBKKZKX",
        "creditor_agent": "BKCHCNBJ",
        "debtor_country": "KZ",
        "creditor_country": "CN",
        "corridor": "KZ-CN",
        "debtor_sco_status": "member",
        "creditor_sco_status": "member",
        "debtor_sco_tier": "member",
        "creditor_sco_tier": "member",
        "tier_pair": "member-member",
        "currency": "KZT",
        "currency_minor_digits": 2,
        "creditor_currency": "CNY",
        "creditor_currency_minor_digits": 2,
        "amount_type": "receive",
        "amount_minor": 1_410_000,
        "amount_currency": "CNY",
        "amount_sent_minor": 100_174_626,  # at ICBC Almaty's ask, 71.045834
        "amount_delivered_minor": 1_410_000,
        "amount_returned_minor": 0,
        "applied_rate": "0.0140754207",  # as the pacs.002 states it
        "priority": "normal",
        "returns": None,
        "end_to_end_id": "E2E-SCO-1",
        "uetr": "5c0e4b1f-3d2a-4e8b-9f61-2a7d9c4e8101",
    }
    rejected = next(row for row in rows.values() if row["status"] == "rejected")
    assert rejected["reason"] == "AM09" and rejected["amount_sent_minor"] == 0
    domestic = next(row for row in rows.values() if row["corridor"] == "KZ-KZ")
    assert domestic["tier_pair"] == "domestic member" and domestic["applied_rate"] is None
    # Times are the records' own nanoseconds.
    with sqlite3.connect(iso_db) as connection:
        received, settled = connection.execute(
            "SELECT received_at, settled_at FROM payments WHERE payment_id = ?", (KZ_CN,)
        ).fetchone()
    ids = table.column("payment_id").to_pylist()
    received_ns = dict(
        zip(ids, table.column("received_at").cast(pa.int64()).to_pylist(), strict=True)
    )
    settled_ns = dict(
        zip(ids, table.column("settled_at").cast(pa.int64()).to_pylist(), strict=True)
    )
    assert (received_ns[KZ_CN], settled_ns[KZ_CN]) == (received, settled)
    assert settled_ns[rejected["payment_id"]] is None


def test_export_payments_as_csv_holds_the_same_values(iso_db, tmp_path):
    target = tmp_path / "payments.csv"
    ok("export", "payments", "--db", iso_db, "--out", target)  # the format from the suffix
    rows = {row["payment_id"]: row for row in read_csv_rows(target)}
    row = rows[KZ_CN]
    assert row["corridor"] == "KZ-CN" and row["amount_sent_minor"] == "100174626"
    assert row["applied_rate"] == "0.0140754207" and row["reason"] == ""
    assert row["received_at"].endswith("Z") and len(row["received_at"]) == len(
        "2026-01-05T09:01:00.000000000Z"
    )
    parquet = tmp_path / "payments.parquet"
    ok("export", "payments", "--db", iso_db, "--out", parquet)
    nanos = pq.read_table(parquet).column("received_at").cast(pa.int64()).to_pylist()
    from sco_settle.cli.export import iso_time

    assert sorted(r["received_at"] for r in rows.values()) == sorted(iso_time(n) for n in nanos)


def test_export_times_in_microseconds_for_spark(iso_db, tmp_path):
    exact, micro = tmp_path / "ns.parquet", tmp_path / "us.parquet"
    ok("export", "payments", "--db", iso_db, "--out", exact)
    ok("export", "payments", "--db", iso_db, "--out", micro, "--time-unit", "us")
    table = pq.read_table(micro)
    assert table.schema.field("received_at").type == pa.timestamp("us", tz="UTC")
    nanos = pq.read_table(exact).column("settled_at").cast(pa.int64()).to_pylist()
    micros = table.column("settled_at").cast(pa.int64()).to_pylist()
    assert micros == [None if n is None else n // 1000 for n in nanos]
    assert table.column("settled_at").to_pylist()[0].microsecond == nanos[0] // 1000 % 10**6


def test_export_transfers_with_participants_and_currencies(iso_db, tmp_path):
    target = tmp_path / "transfers.parquet"
    ok("export", "transfers", "--db", iso_db, "--format", "parquet", "--out", target)
    table = pq.read_table(target)
    assert table.schema.field("transfer_id").type == pa.string()  # 128-bit ids
    assert table.schema.field("amount_minor").type == pa.int64()
    assert table.schema.field("timestamp").type == TIME
    assert table.schema.field("debit_participant").type == CODE
    legacy = [json.loads(line) for line in ok("export", "--db", iso_db, "transfers").splitlines()]
    accounts = {
        a["id"]: a for a in map(json.loads, ok("export", "--db", iso_db, "accounts").splitlines())
    }
    assert table.num_rows == len(legacy) > 3
    rows = table.drop_columns(["timestamp"]).to_pylist()
    for row, original in zip(rows, legacy, strict=True):
        assert row["transfer_id"] == original["id"]
        assert row["amount_minor"] == original["amount"]
        assert (
            row["currency"]
            == original["currency"]
            == accounts[original["debit_account"]]["currency"]
        )
        assert row["debit_participant"] == accounts[original["debit_account"]]["participant"]
        assert row["credit_account_kind"] == accounts[original["credit_account"]]["kind"]
    assert table.column("timestamp").cast(pa.int64()).to_pylist() == [
        t["timestamp"] for t in legacy
    ]
    assert any(row["ref"] == "E2E-SCO-1" and "linked" in row["flags"] for row in rows)
    ok("export", "transfers", "--db", iso_db, "--format", "csv", "--out", tmp_path / "t.csv")
    assert len(read_csv_rows(tmp_path / "t.csv")) == table.num_rows


def test_export_of_a_simulation_agrees_with_its_summary(rtgs_run, tmp_path):
    db, out = rtgs_run
    target = tmp_path / "payments.parquet"
    ok("export", "payments", "--db", db, "--out", target)
    table = pq.read_table(target)
    metrics = metrics_of(out)
    statuses = table.column("status").to_pylist()
    assert len(statuses) == int(metrics["payments_submitted"])
    assert statuses.count("settled") == int(metrics["payments_settled"])
    corridors = set(table.column("corridor").to_pylist())
    assert {"CN-RU", "RU-CN", "KZ-CN"} <= corridors
    tier_pairs = set(table.column("tier_pair").to_pylist())
    assert None not in tier_pairs and {"member-member", "domestic member"} <= tier_pairs


def test_export_windows_by_day(iso_db, tmp_path):
    target = tmp_path / "p.parquet"
    ok("export", "payments", "--db", iso_db, "--out", target)
    received = pq.read_table(target).column("received_at").cast(pa.int64()).to_pylist()
    from sco_settle.cli.export import iso_time

    day = iso_time(received[0])[:10]
    ok("export", "payments", "--db", iso_db, "--out", target, "--from", day, "--to", day)
    assert pq.read_table(target).num_rows == 3
    ok("export", "payments", "--db", iso_db, "--out", target, "--to", "2000-01-01")
    empty = pq.read_table(target)
    assert empty.num_rows == 0 and empty.schema.field("amount_sent_minor").type == pa.int64()
    ok("export", "transfers", "--db", iso_db, "--out", target, "--from", "2999-01-01")
    assert pq.read_table(target).num_rows == 0


def test_export_cycles_from_the_servers_table(iso_db, tmp_path):
    from sco_settle.server.config import parse_database_url
    from sco_settle.server.db import StateDb

    db = tmp_path / "cycles.db"
    shutil.copy(iso_db, db)
    assert "api_netting_cycles" in fails(
        "export", "cycles", "--db", db, "--out", tmp_path / "c.csv"
    )
    state = StateDb(parse_database_url(str(db)))
    report = {"settled": 2, "deferred": 1, "rejected": 0, "gross_minor": {"CNY": 500, "KZT": 7}}
    report["net_minor"] = {"CNY": 200}
    with state.transaction(durable=True) as execute:
        for cycle_id, body in ((1, report), (2, {"settled": 0})):
            execute(
                "INSERT INTO api_netting_cycles (cycle_id, kind, currencies, requested_by,"
                " started_at, finished_at, report) VALUES (?,?,?,?,?,?,?)",
                (
                    cycle_id,
                    "dns",
                    "null",
                    "PBOCCNBJ",
                    10**18 + cycle_id,
                    10**18 + 9,
                    json.dumps(body),
                ),
            )
    state.close()
    target = tmp_path / "cycles.parquet"
    assert "Wrote 3 cycles" in ok("export", "cycles", "--db", db, "--out", target)
    table = pq.read_table(target)
    assert table.schema.field("started_at").type == TIME
    assert table.schema.field("gross_minor").type == pa.int64()
    rows = table.drop_columns(["started_at", "finished_at"]).to_pylist()
    assert [(r["cycle_id"], r["currency"], r["gross_minor"], r["net_minor"]) for r in rows] == [
        (1, "CNY", 500, 200),
        (1, "KZT", 7, 0),
        (2, None, 0, 0),
    ]
    assert rows[0]["settled"] == 2 and rows[0]["currencies"] is None and rows[0]["kind"] == "dns"
    ok("export", "cycles", "--db", db, "--out", tmp_path / "cycles.csv")
    assert [r["currency"] for r in read_csv_rows(tmp_path / "cycles.csv")] == ["CNY", "KZT", ""]


def test_export_errors_are_one_line(iso_db, tmp_path):
    out = tmp_path / "x.parquet"
    assert "no database at" in fails("export", "payments", "--db", tmp_path / "no.db", "--out", out)
    assert "accounts are exported as JSON lines only" in fails(
        "export", "accounts", "--db", iso_db, "--out", out
    )
    assert "needs --out" in fails("export", "payments", "--db", iso_db, "--format", "parquet")
    assert "as parquet or csv" in fails("export", "payments", "--db", iso_db)
    assert "not a date YYYY-MM-DD" in fails(
        "export", "payments", "--db", iso_db, "--out", out, "--from", "5 May"
    )
    assert "is after --to" in fails(
        "export",
        "payments",
        "--db",
        iso_db,
        "--out",
        out,
        "--from",
        "2026-02-02",
        "--to",
        "2026-02-01",
    )
    assert "give --format" in fails(
        "export", "payments", "--db", iso_db, "--out", tmp_path / "x.xlsx"
    )
    assert "no such directory" in fails(
        "export", "payments", "--db", iso_db, "--out", tmp_path / "a/b.csv"
    )
    bare = tmp_path / "bare.db"
    ok("init", "--db", bare)
    assert "holds no payment records" in fails("export", "payments", "--db", bare, "--out", out)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_exported_parquet_reads_in_duckdb_without_conversion(iso_db, tmp_path):
    duckdb = pytest.importorskip("duckdb")  # Not a dependency: checked where it is installed.
    target = tmp_path / "payments.parquet"
    ok("export", "payments", "--db", iso_db, "--out", target)
    query = (
        "SELECT corridor, amount_sent_minor, typeof(received_at), typeof(amount_sent_minor)"
        f" FROM '{target}' WHERE payment_id = ?"
    )
    corridor, sent, time_type, amount_type = duckdb.execute(query, [KZ_CN]).fetchone()
    assert (corridor, sent, amount_type) == ("KZ-CN", 99_974_876, "BIGINT")
    assert time_type.startswith("TIMESTAMP")


def test_export_from_postgresql(postgres_dsn, pg_schema, tmp_path):
    """A payment made on a PostgreSQL ledger, exported from its URL."""
    from sco_settle.ledger import Ledger
    from sco_settle.network import load_network
    from sco_settle.network.install import install_network
    from sco_settle.payments.engine import PaymentEngine
    from sco_settle.payments.model import Payment
    from sco_settle.payments.network_view import NetworkView, load_rates
    from sco_settle.storage.payment_records_postgres import PostgresPaymentRecords
    from sco_settle.storage.postgres import PostgresStore

    network = load_network("sco")
    ledger = Ledger(PostgresStore(postgres_dsn, schema=pg_schema))
    install_network(ledger, network)
    records = PostgresPaymentRecords(postgres_dsn, schema=pg_schema)
    engine = PaymentEngine(ledger, NetworkView(network, load_rates("sco")), records)
    payment = Payment("HSBKKZKX:pg-1", "HSBKKZKX", "KCJBKZKX", 12_345, "KZT", "KZT")
    assert engine.submit_many([payment])[0].status.value == "settled"
    records.close()
    ledger.close()
    target = tmp_path / "payments.parquet"
    ok("export", "payments", "--db", postgres_dsn, "--schema", pg_schema, "--out", target)
    row = pq.read_table(target).drop_columns(["received_at", "settled_at"]).to_pylist()[0]
    assert (row["payment_id"], row["corridor"], row["amount_delivered_minor"]) == (
        "HSBKKZKX:pg-1",
        "KZ-KZ",
        12_345,
    )
    ok("export", "transfers", "--db", postgres_dsn, "--schema", pg_schema, "--out", target)
    assert pq.read_table(target).num_rows > 1
