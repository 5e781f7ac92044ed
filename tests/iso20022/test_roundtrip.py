"""parse -> write -> parse gives an equal model, and every written message is schema-valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from sco_settle.messaging.iso20022 import (
    CashReportMessage,
    CreditTransferMessage,
    MessageRejectedError,
    PaymentReturnMessage,
    StatusReport,
    open_message,
    read_message,
    return_for,
    status_report_for,
    write_message,
)
from tests.iso20022.builders import NOW, sample_files, sample_id


def _readable_accepted() -> list[Path]:
    paths = []
    for path in sample_files():
        try:
            message = read_message(path.read_bytes())
        except MessageRejectedError:
            continue
        if getattr(message, "group_rejection", None) is None:
            paths.append(path)
    return paths


READABLE = _readable_accepted()
PAYMENTS = [
    path for path in READABLE if path.parent.name[:8] in ("pacs.008", "pacs.009", "pacs.004")
]


def _write_and_check(message: object) -> bytes:
    data = write_message(message)  # type: ignore[arg-type]
    opened = open_message(data)  # Independent check of the bytes: envelope and both XSDs.
    assert opened.definition == message.definition  # type: ignore[attr-defined]
    return data


def test_every_message_kind_is_covered() -> None:
    kinds = {type(read_message(path.read_bytes())) for path in READABLE}
    assert kinds == {CreditTransferMessage, PaymentReturnMessage, StatusReport, CashReportMessage}


@pytest.mark.parametrize("path", READABLE, ids=sample_id)
def test_sample_round_trip(path: Path) -> None:
    message = read_message(path.read_bytes())
    again = read_message(_write_and_check(message))
    assert again == message


@pytest.mark.parametrize("path", PAYMENTS, ids=sample_id)
def test_replies_to_sample_round_trip(path: Path) -> None:
    message = read_message(path.read_bytes())
    assert isinstance(message, CreditTransferMessage | PaymentReturnMessage)
    report = status_report_for(message, message_id="SCO-STS-1", created_at=NOW)
    assert read_message(_write_and_check(report)) == report
    if isinstance(message, CreditTransferMessage):
        returned = return_for(
            message,
            message.transfers[0],
            message_id="SCO-RTR-1",
            created_at=NOW,
            reason_code="AC04",
            additional_info="Account closed " * 20,
        )
        assert read_message(_write_and_check(returned)) == returned
