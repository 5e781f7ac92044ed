"""Value date and priority from the message (issue 9): a pacs.008's ``IntrBkSttlmDt`` in the
future is warehoused until that day, in the past is refused (DT01); ``SttlmPrty`` / ``InstrPrty``
URGT or HIGH make the payment urgent."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace

from sco_settle.gateway.iso import submit_message
from sco_settle.messaging.iso20022 import read_message, write_message
from sco_settle.payments.model import Priority

from .test_iso_gateway import EXAMPLE, engine, statuses

_NUMBERS = itertools.count(1)
__all__ = ["engine"]  # the module-scoped engine fixture, shared with the gateway tests


def message_with(engine, **changes):
    """The example's domestic item (KZT 5,000,000.00 to CenterCredit) with ``changes``, under a
    fresh message and instruction id each time."""
    original = read_message(EXAMPLE.read_bytes())
    number = next(_NUMBERS)
    item = replace(
        original.items[1],
        instruction_id=f"VD-{number}",
        uetr=None,
        transaction_id=f"VD-{number}",
        **changes,
    )
    message = replace(original, message_id=f"VD-MSG-{number}", items=(item,))
    return write_message(message), f"HSBKKZKX:VD-{number}"


def send(engine, data: bytes) -> list:
    now = dt.datetime.now(dt.UTC)
    reply = submit_message(data, engine, now=now, sender_bic="PBOCCNBJ", caller_bic="HSBKKZKX")
    return statuses(reply.decode())


def test_a_future_value_date_waits_and_a_past_one_is_refused(engine):
    today = dt.datetime.fromtimestamp(engine.ledger.clock() / 1e9, dt.UTC).date()
    future, future_id = message_with(engine, settlement_date=today + dt.timedelta(days=2))
    assert send(engine, future) == [("PDNG", "NARR")]
    assert "warehoused until" in engine.outcome(future_id).reason_text
    assert future_id in engine.warehouse
    past, _ = message_with(engine, settlement_date=today - dt.timedelta(days=1))
    assert send(engine, past) == [("RJCT", "DT01")]
    now, _ = message_with(engine, settlement_date=today)
    assert send(engine, now) == [("ACSC", None)]


def test_settlement_priority_makes_a_payment_urgent(engine):
    urgent, urgent_id = message_with(engine, settlement_priority="URGT")
    assert send(engine, urgent) == [("ACSC", None)]
    assert engine.records.get(urgent_id)[0].priority is Priority.URGENT
    high, high_id = message_with(engine, settlement_priority="HIGH")
    send(engine, high)
    assert engine.records.get(high_id)[0].priority is Priority.URGENT
    normal, normal_id = message_with(engine, settlement_priority="NORM")
    send(engine, normal)
    assert engine.records.get(normal_id)[0].priority is Priority.NORMAL
