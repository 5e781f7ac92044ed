"""ISO 20022 through the pipeline: pacs.008/009 in, pacs.002 out; camt.053 matches the ledger."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "iso20022" / "samples"
EXAMPLE = ROOT / "examples" / "pacs008_kz_to_cn.xml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sco_settle", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("iso") / "sco.db"
    assert cli("init", "--db", str(path)).returncode == 0
    return path


def statuses(xml: str) -> list[tuple[str, str | None]]:
    root = etree.fromstring(xml.encode())
    ns = {"p": root.nsmap[None]}
    found = []
    for tx in root.iterfind(".//p:TxInfAndSts", ns):
        code = tx.findtext("p:StsRsnInf/p:Rsn/p:Cd", namespaces=ns)
        found.append((tx.findtext("p:TxSts", namespaces=ns), code))
    return found


def validate(tmp_path, xml: str) -> str:
    path = tmp_path / "reply.xml"
    path.write_text(xml)
    result = cli("iso", "validate", str(path))
    assert result.returncode == 0, result.stdout
    return result.stdout.strip()


def test_sco_payment_message_settles_and_resubmission_is_idempotent(db, tmp_path):
    first = cli("iso", "submit", str(EXAMPLE), "--as", "HSBKKZKX", "--db", str(db))
    assert first.returncode == 0, first.stderr
    # The third promises CNY 1.00 against an instructed KZT 10 trillion: the amounts disagree
    # (AM09), and nothing is queued.
    assert statuses(first.stdout) == [("ACSC", None), ("ACSC", None), ("RJCT", "AM09")]
    assert validate(tmp_path, first.stdout) == "valid: pacs.002.001.10"
    before = cli("export", "--db", str(db), "accounts").stdout
    again = cli(
        "iso",
        "submit",
        str(EXAMPLE),
        "--as",
        "HSBKKZKX",
        "--db",
        str(db),
        "--out",
        str(tmp_path / "again.xml"),
    )
    assert again.returncode == 0 and again.stdout == ""
    assert statuses((tmp_path / "again.xml").read_text()) == statuses(first.stdout)
    assert cli("export", "--db", str(db), "accounts").stdout == before  # Nothing moved twice.
    assert cli("verify", "--db", str(db)).returncode == 0


CREDIT_TRANSFER_SAMPLES = sorted(
    [*SAMPLES.glob("pacs.008.*/*.xml"), *SAMPLES.glob("pacs.009.*/*.xml")]
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from sco_settle.ledger import Ledger
    from sco_settle.network import load_network
    from sco_settle.network.install import install_network
    from sco_settle.payments.engine import PaymentEngine
    from sco_settle.payments.network_view import NetworkView, load_rates
    from sco_settle.storage import SqliteStore
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    path = tmp_path_factory.mktemp("iso-inproc") / "sco.db"
    network = load_network("sco")
    ledger = Ledger(SqliteStore(path))
    install_network(ledger, network)
    engine = PaymentEngine(ledger, NetworkView(network, load_rates()), SqlitePaymentRecords(path))
    yield engine
    ledger.close()


@pytest.mark.parametrize("sample", CREDIT_TRANSFER_SAMPLES, ids=lambda p: p.name[:60])
def test_every_shared_payment_sample_gets_a_valid_status_report(engine, sample):
    from sco_settle.gateway.iso import submit_message
    from sco_settle.messaging.iso20022 import open_message

    now = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    reply = submit_message(
        sample.read_bytes(), engine, now=now, sender_bic="PBOCCNBJ", caller_bic=None
    )
    version = re.search(r"(pacs\.\d{3}\.\d{3}\.\d{2})", sample.parent.name).group(1)
    expected = (
        "pacs.002.001.14"
        if version in ("pacs.008.001.12", "pacs.009.001.11")
        else "pacs.002.001.10"
    )
    assert open_message(reply).definition == expected  # Parsed and XSD-validated.
    text = reply.decode()
    found = statuses(text)
    if found:
        # The samples move SGD, EUR, USD, GBP... between non-SCO banks: never settled here.
        assert all(status == "RJCT" for status, _ in found), found
        assert {code for _, code in found} <= {
            "AM03",
            "AM11",
            "AG03",
            "CNOR",
            "DNOR",
            "RC03",
            "RC04",
            "CH20",
            "AM12",
            "DUPL",  # Samples reusing an earlier sample's instruction id with other content.
        }
    else:
        assert "<GrpSts>RJCT</GrpSts>" in text


def test_unreadable_messages_get_rjct_ff01(db, tmp_path):
    xxe = tmp_path / "xxe.xml"
    xxe.write_text(
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>'
    )
    broken = tmp_path / "broken.xml"
    broken.write_text(
        EXAMPLE.read_text().replace("<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>three</NbOfTxs>")
    )
    for path in (xxe, broken):
        result = cli("iso", "submit", str(path), "--as", "HSBKKZKX", "--db", str(db))
        assert result.returncode == 0, result.stderr
        assert "<GrpSts>RJCT</GrpSts>" in result.stdout and "<Cd>FF01</Cd>" in result.stdout
        assert "root:" not in result.stdout  # Nothing of /etc/passwd leaks.
        validate(tmp_path, result.stdout)
    assert (
        "<OrgnlMsgId>SCOSAMPLE20261125001</OrgnlMsgId>"
        in cli("iso", "submit", str(broken), "--as", "HSBKKZKX", "--db", str(db)).stdout
    )


def test_no_report_possible_exits_2(db, tmp_path):
    missing = tmp_path / "missing.xml"
    assert cli("iso", "submit", str(missing), "--as", "HSBKKZKX", "--db", str(db)).returncode == 2
    empty = tmp_path / "empty.db"
    from sco_settle.ledger import Ledger
    from sco_settle.storage import SqliteStore

    Ledger(SqliteStore(empty)).close()
    assert (
        cli("iso", "submit", str(EXAMPLE), "--as", "HSBKKZKX", "--db", str(empty)).returncode == 2
    )


def test_statement_agrees_with_the_ledger(db, tmp_path):
    today = dt.datetime.now(dt.UTC).date().isoformat()
    result = cli(
        "iso", "statement", "--db", str(db), "--account", "settlement:HSBKKZKX:KZT", "--date", today
    )
    assert result.returncode == 0, result.stderr
    assert validate(tmp_path, result.stdout) == "valid: camt.053.001.08"
    root = etree.fromstring(result.stdout.encode())
    ns = {"c": root.nsmap[None]}
    balances = {}
    for balance in root.iterfind(".//c:Bal", ns):
        kind = balance.findtext("c:Tp/c:CdOrPrtry/c:Cd", namespaces=ns)
        amount = int(Decimal(balance.findtext("c:Amt", namespaces=ns)) * 100)
        sign = -1 if balance.findtext("c:CdtDbtInd", namespaces=ns) == "DBIT" else 1
        balances[kind] = sign * amount
    accounts = [
        __import__("json").loads(line)
        for line in cli("export", "--db", str(db), "accounts").stdout.splitlines()
    ]
    ledger = next(a for a in accounts if a["ref"] == "settlement:HSBKKZKX:KZT")
    assert balances["CLBD"] == ledger["credits_posted"] - ledger["debits_posted"]
    assert balances["OPBD"] == 0  # The database was created today.
    missing = cli(
        "iso", "statement", "--db", str(db), "--account", "settlement:NOPE:KZT", "--date", today
    )
    assert missing.returncode == 1 and "no account" in missing.stderr


def test_pacs004_return_moves_the_money_back_once(engine):
    from sco_settle.gateway.iso import submit_message
    from sco_settle.messaging.iso20022 import read_message, return_for, write_message

    now = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    original = read_message(EXAMPLE.read_bytes())
    debtor = engine.view.account_id("settlement:HSBKKZKX:KZT")
    creditor = engine.view.account_id("settlement:KCJBKZKX:KZT")

    def posted(account_id):
        state = engine.ledger.lookup_account(account_id)
        return state.credits_posted - state.debits_posted

    before = (posted(debtor), posted(creditor))
    assert statuses(
        submit_message(
            EXAMPLE.read_bytes(), engine, now=now, sender_bic="PBOCCNBJ", caller_bic="HSBKKZKX"
        ).decode()
    )[1] == ("ACSC", None)
    paid = (posted(debtor), posted(creditor))
    # Item 1 (exactly CNY 14,100.00 to China, for about KZT 1,000,000) and item 2 (KZT 5,000,000
    # domestic) both settled; item 1's KZT is what delivering CNY 14,100.00 cost.
    cost = engine.outcome(f"HSBKKZKX:{original.items[0].uetr}").amount_sent_minor
    assert 990_000_00 < cost < 1_010_000_00
    assert paid == (before[0] - cost - 5_000_000_00, before[1] + 5_000_000_00)
    domestic = original.items[1]
    pacs004 = write_message(
        return_for(
            original, domestic, message_id="RTN-KCJB-0001", created_at=now, reason_code="AC04"
        )
    )
    reply = submit_message(
        pacs004, engine, now=now, sender_bic="PBOCCNBJ", caller_bic="KCJBKZKX"
    ).decode()
    assert statuses(reply) == [("ACSC", None)]
    returned = (paid[0] + 5_000_000_00, before[1])
    assert (posted(debtor), posted(creditor)) == returned
    outcome = engine.outcome(f"HSBKKZKX:{domestic.uetr}")
    assert outcome.status.value == "returned"
    again = submit_message(
        pacs004, engine, now=now, sender_bic="PBOCCNBJ", caller_bic="KCJBKZKX"
    ).decode()
    assert statuses(again) == [("ACSC", None)]  # The same return (RtrId): answered once.
    assert (posted(debtor), posted(creditor)) == returned  # Returned once only.
    another = write_message(
        return_for(
            original, domestic, message_id="RTN-KCJB-0002", created_at=now, reason_code="AC04"
        )
    )
    refused = submit_message(
        another, engine, now=now, sender_bic="PBOCCNBJ", caller_bic="KCJBKZKX"
    ).decode()
    assert statuses(refused) == [("RJCT", "AM09")]  # Fully returned: nothing left to return.
    assert (posted(debtor), posted(creditor)) == returned
    engine.ledger.state.check_totals()


def test_forged_returns_are_refused_and_move_nothing(tmp_path):
    """Security review C1: the payer, or a bank party to nothing, sends a pacs.004 for a settled
    payment (naming the payee as returner, or itself). Only the authenticated creditor agent
    may return a payment; every forged return is RJCT and no money moves."""
    from sco_settle.gateway.iso import submit_message
    from sco_settle.ledger import Ledger
    from sco_settle.messaging.iso20022 import read_message, return_for, write_message
    from sco_settle.network import load_network
    from sco_settle.network.install import install_network
    from sco_settle.payments.engine import PaymentEngine
    from sco_settle.payments.network_view import NetworkView, load_rates
    from sco_settle.storage import SqliteStore
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    path = tmp_path / "forged.db"
    network = load_network("sco")
    ledger = Ledger(SqliteStore(path))
    install_network(ledger, network)
    engine = PaymentEngine(ledger, NetworkView(network, load_rates()), SqlitePaymentRecords(path))
    now = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)

    def send(data: bytes, caller: str) -> list:
        return statuses(
            submit_message(data, engine, now=now, sender_bic="PBOCCNBJ", caller_bic=caller).decode()
        )

    assert send(EXAMPLE.read_bytes(), "HSBKKZKX")[1] == ("ACSC", None)
    original = read_message(EXAMPLE.read_bytes())
    domestic = original.items[1]
    genuine = write_message(
        return_for(original, domestic, message_id="RTN-1", created_at=now, reason_code="AC04")
    )
    assert b"<InstgAgt><FinInstnId><BICFI>KCJBKZKX" in genuine
    naming_self = {
        bic: genuine.replace(
            b"<InstgAgt><FinInstnId><BICFI>KCJBKZKX", b"<InstgAgt><FinInstnId><BICFI>" + bic
        )
        for bic in (b"HSBKKZKX", b"BKCHCNBJ")
    }
    before = sorted((s.id, s.balance_tuple()) for s in engine.ledger.accounts())
    # The debtor sends the genuine message (naming the payee as returner) with its own authority.
    assert send(genuine, "HSBKKZKX")[0][0] == "RJCT"
    assert send(genuine, "HSBKKZKX")[0][1] == "AG01"
    # The debtor, and a bank party to nothing, name themselves as returner: not found for them.
    assert send(naming_self[b"HSBKKZKX"], "HSBKKZKX") == [("RJCT", "NARR")]
    assert send(naming_self[b"BKCHCNBJ"], "BKCHCNBJ") == [("RJCT", "NARR")]
    assert sorted((s.id, s.balance_tuple()) for s in engine.ledger.accounts()) == before
    assert engine.outcome(f"HSBKKZKX:{domestic.uetr}").status.value == "settled"
    # The creditor agent itself may, for part of the amount or all of it: a return is a payment
    # back for what it says, and returns never exceed what was received.
    partial = write_message(
        return_for(
            original,
            domestic,
            message_id="RTN-2",
            created_at=now,
            reason_code="AC04",
            returned_amount_minor=domestic.settlement_amount_minor // 2,
        )
    )
    assert send(partial, "KCJBKZKX") == [("ACSC", None)]
    half = domestic.settlement_amount_minor // 2
    assert engine.outcome(f"HSBKKZKX:{domestic.uetr}").amount_returned_minor == half
    # The genuine message asks for the whole amount: more than the half left (AM09).
    assert send(genuine, "KCJBKZKX") == [("RJCT", "AM09")]
    rest = write_message(
        return_for(
            original,
            domestic,
            message_id="RTN-3",
            created_at=now,
            reason_code="AC04",
            returned_amount_minor=domestic.settlement_amount_minor - half,
        )
    )
    assert send(rest, "KCJBKZKX") == [("ACSC", None)]
    assert engine.outcome(f"HSBKKZKX:{domestic.uetr}").status.value == "returned"
    ledger.close()


def test_cli_submits_only_with_the_authority_of_the_named_sender(db, tmp_path):
    """The CLI no longer acts as the central bank on everyone's behalf: ``--as`` is required,
    and a participant named there moves only its own payments (RJCT AG01 for the others)."""
    missing = cli("iso", "submit", str(EXAMPLE), "--db", str(db))
    assert missing.returncode == 2 and "--as" in missing.stderr
    unknown = cli("iso", "submit", str(EXAMPLE), "--as", "NOTABANK", "--db", str(db))
    assert unknown.returncode == 2 and "not a participant" in unknown.stderr
    before = cli("export", "--db", str(db), "accounts").stdout
    other = cli("iso", "submit", str(EXAMPLE), "--as", "KCJBKZKX", "--db", str(db))
    assert other.returncode == 0, other.stderr
    assert statuses(other.stdout) == [("RJCT", "AG01")] * 3
    assert cli("export", "--db", str(db), "accounts").stdout == before
