"""The writer's publish hook (``server.service.PublishingRecords``): listeners hear of each
durable record after it is written, and a failing listener never undoes or fails the write."""

from __future__ import annotations

import logging
from typing import Any

from sco_settle.payments.model import Party, Payment, PaymentOutcome, PaymentStatus
from sco_settle.server.service import PublishingRecords


def _payment(payment_id: str) -> Payment:
    return Payment(
        payment_id=payment_id,
        debtor_agent="BKCHCNBJ",
        creditor_agent="ICBKCNBJ",
        amount_minor=1,
        currency="CNY",
        creditor_currency="CNY",
        debtor=Party("d", "1"),
        creditor=Party("c", "2"),
    )


class Inner:
    def __init__(self) -> None:
        self.written: list[list[str]] = []

    def record(self, entries: list[Any], at: int) -> None:
        self.written.append([entry[0].payment_id for entry in entries])

    def counts(self) -> dict[str, int]:
        return {"settled": 1}


def test_listeners_hear_of_each_record_after_it_is_written(caplog):
    inner = Inner()
    heard: list[tuple[list[str], int]] = []

    def failing(payments: list[Payment]) -> None:
        raise RuntimeError("a broken listener")

    def listening(payments: list[Payment]) -> None:
        heard.append(([p.payment_id for p in payments], len(inner.written)))

    records = PublishingRecords(inner, [failing, listening])
    entries = (
        (
            _payment(f"BKCHCNBJ:{n}"),
            PaymentOutcome(f"BKCHCNBJ:{n}", PaymentStatus.SETTLED),
            None,
            [],
        )
        for n in range(2)
    )
    with caplog.at_level(logging.ERROR, logger="sco_settle.server"):
        records.record(entries, 1)  # a generator: read once, by both
    assert inner.written == [["BKCHCNBJ:0", "BKCHCNBJ:1"]]
    assert heard == [(["BKCHCNBJ:0", "BKCHCNBJ:1"], 1)]  # after the write
    assert any(getattr(r, "event", None) == "listener_failed" for r in caplog.records)
    assert records.counts() == {"settled": 1}  # everything else is the records' own
