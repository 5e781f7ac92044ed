"""ISO 20022 throughput on one core: parse + validate + map, and the writers.

Usage: ``python benchmarks/iso_bench.py [--quick]``; prints one JSON object of rates per second.
Each case runs for a fixed wall-clock budget (about 7 s in total, 2 s with ``--quick``) after a
warm-up, in this single process and thread, so the figures are per core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

from sco_settle.messaging.iso20022 import (
    Entry,
    EntryDetail,
    build_account_statement,
    read_credit_transfer,
    read_message,
    return_for,
    status_report_for,
    write_cash_report,
    write_payment_return,
    write_status_report,
)

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "iso20022" / "samples"
PACS008 = (
    SAMPLES / "pacs.008.001.08" / "cbprur__test_files__2026__pacs008_credit_transfer_sample.xml"
)
CAMT053 = (
    SAMPLES
    / "camt.053.001.08"
    / "bal-mx2mt__iso20022_to_swiftmt__tests__c_105_1_1__CBPR_c.105.1.1_camt.053-BtoA.xml"
)
NOW = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)


def _rate(action: Callable[[], object], seconds: float) -> float:
    for _ in range(50):
        action()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(100):
            action()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about 2 s instead of about 7 s")
    quick = parser.parse_args().quick
    seconds = 0.4 if quick else 1.4
    pacs008 = PACS008.read_bytes()
    camt053 = CAMT053.read_bytes()
    message = read_credit_transfer(pacs008)
    report = status_report_for(message, message_id="SCO-STS-1", created_at=NOW)
    returned = return_for(
        message, message.transfers[0], message_id="SCO-RTR-1", created_at=NOW, reason_code="AC04"
    )
    entries = [
        Entry(1000 + i, "EUR", "CRDT", booked_at=NOW, details=(EntryDetail(end_to_end_id=f"E{i}"),))
        for i in range(10)
    ]
    statement = build_account_statement(
        message_id="SCO-STMT-1",
        created_at=NOW,
        statement_id="S1",
        account_id="SCOEUR0001",
        currency="EUR",
        statement_date=NOW.date(),
        opening_balance_minor=0,
        closing_balance_minor=sum(entry.amount_minor for entry in entries),
        entries=entries,
    )
    results = {
        "pacs008_parse_validate_map_per_s": _rate(lambda: read_credit_transfer(pacs008), seconds),
        "camt053_parse_validate_map_per_s": _rate(lambda: read_message(camt053), seconds),
        "pacs002_write_per_s": _rate(lambda: write_status_report(report), seconds),
        "pacs004_write_per_s": _rate(lambda: write_payment_return(returned), seconds),
        "camt053_write_10_entries_per_s": _rate(lambda: write_cash_report(statement), seconds),
    }
    print(json.dumps({name: round(value) for name, value in results.items()}, indent=2))


if __name__ == "__main__":
    main()
