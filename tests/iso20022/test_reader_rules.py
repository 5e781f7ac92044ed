"""Per-transaction and group rejections, envelopes and unsupported messages."""

from __future__ import annotations

import pytest

from sco_settle.messaging.iso20022 import (
    CreditTransfer,
    EnvelopeError,
    InvalidContentError,
    ReaderPolicy,
    TransactionRejection,
    UnsupportedMessageError,
    read_credit_transfer,
    read_message,
    read_status_report,
    write_credit_transfer,
)
from tests.iso20022.builders import SAMPLES, credit_message, transfer


def _three() -> bytes:
    return write_credit_transfer(credit_message((transfer(1), transfer(2), transfer(3))))


def _reasons(data: bytes, policy: ReaderPolicy | None = None) -> list[str | None]:
    message = read_credit_transfer(data, policy) if policy else read_credit_transfer(data)
    return [
        item.reason if isinstance(item, TransactionRejection) else None for item in message.items
    ]


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b'Ccy="KZT">10000.02<', b'Ccy="KZT">10000.025<', "CH20"),  # 3 decimals for KZT
        (b'Ccy="KZT">10000.02<', b'Ccy="XYZ">10000.02<', "AM11"),  # not ISO 4217
        (b'Ccy="KZT">10000.02<', b'Ccy="XAU">10000.02<', "AM11"),  # no minor units
        (b'Ccy="KZT">10000.02<', b'Ccy="KZT">0<', "AM01"),
        (
            b"<IntrBkSttlmDt>2026-01-05</IntrBkSttlmDt>",
            b"<IntrBkSttlmDt>12026-01-05</IntrBkSttlmDt>",
            "DT01",
        ),
        (
            b"<BICFI>HSBKKZKX</BICFI></FinInstnId></DbtrAgt>",
            b"<BICFI>HSBKZZKX</BICFI></FinInstnId></DbtrAgt>",
            "RC03",
        ),
        (b"<InstrId>INSTR-2</InstrId>", b"<InstrId>INSTR-1</InstrId>", "DU05"),
        (b"</RmtInf>", b"</RmtInf>", None),
    ],
)
def test_one_bad_transaction_is_rejected_alone(old: bytes, new: bytes, reason: str | None) -> None:
    data = _three()
    start = data.index(b"<CdtTrfTxInf>", data.index(b"<CdtTrfTxInf>") + 1)  # The second one.
    end = data.index(b"</CdtTrfTxInf>", start)
    assert old in data[start:end]
    reasons = _reasons(data[:start] + data[start:end].replace(old, new) + data[end:])
    assert reasons == [None, reason, None]


def test_rejection_keeps_the_ids_for_the_status_report() -> None:
    data = _three().replace(b'Ccy="KZT">10000.02<', b'Ccy="KZT">10000.025<')
    rejection = read_credit_transfer(data).items[1]
    assert isinstance(rejection, TransactionRejection)
    assert (rejection.index, rejection.end_to_end_id, rejection.instruction_id) == (
        1,
        "E2E-2",
        "INSTR-2",
    )
    assert rejection.uetr == transfer(2).uetr
    assert "more than 2 decimal places" in rejection.text


def test_currency_outside_the_network_is_am03() -> None:
    policy = ReaderPolicy(currencies_allowed=frozenset({"RUB", "CNY", "UZS"}))
    assert _reasons(_three(), policy) == ["AM03"] * 3
    assert _reasons(_three(), ReaderPolicy(currencies_allowed=frozenset({"KZT"}))) == [None] * 3


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b"<SttlmMtd>INDA</SttlmMtd>", b"<SttlmMtd>COVE</SttlmMtd>", "AG03"),
        (b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>4</NbOfTxs>", "AM19"),
        (b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>3</NbOfTxs><CtrlSum>1.00</CtrlSum>", "AM16"),
        (
            b"</SttlmMtd>",
            b"</SttlmMtd><InstgRmbrsmntAgt><FinInstnId><BICFI>CITIUS33</BICFI></FinInstnId>"
            b"</InstgRmbrsmntAgt>",
            "AG03",
        ),
    ],
)
def test_group_problems_reject_every_transaction(old: bytes, new: bytes, reason: str) -> None:
    message = read_credit_transfer(_three().replace(old, new, 1))
    assert message.group_rejection is not None
    assert message.group_rejection.reason == reason
    assert _reasons(_three().replace(old, new, 1)) == [reason] * 3


def test_control_sum_that_matches_is_accepted() -> None:
    data = _three().replace(
        b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>3</NbOfTxs><CtrlSum>30000.06</CtrlSum>"
    )
    assert _reasons(data) == [None] * 3


def test_cheque_is_not_supported() -> None:
    data = _three().replace(
        b"<RmtInf>", b"<InstrForCdtrAgt><Cd>CHQB</Cd></InstrForCdtrAgt><RmtInf>", 1
    )
    assert _reasons(data) == ["AG03", None, None]


def test_group_defaults_flow_down_to_transactions() -> None:
    data = _three().replace(b"<IntrBkSttlmDt>2026-01-05</IntrBkSttlmDt>", b"")
    data = data.replace(b"</SttlmInf>", b"</SttlmInf>", 1).replace(
        b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>3</NbOfTxs><IntrBkSttlmDt>2026-01-06</IntrBkSttlmDt>"
    )
    message = read_credit_transfer(data)
    assert {str(item.settlement_date) for item in message.transfers} == {"2026-01-06"}


def test_amounts_are_minor_units() -> None:
    first = read_credit_transfer(_three()).items[0]
    assert isinstance(first, CreditTransfer)
    assert (first.settlement_amount_minor, first.settlement_currency) == (1_000_001, "KZT")
    jpy = read_credit_transfer(
        (
            SAMPLES / "pacs.009.001.08/cbprur__test_files__2026__pacs009_fi_transfer_sample.xml"
        ).read_bytes()
    ).transfers[0]
    assert (jpy.settlement_amount_minor, jpy.settlement_currency) == (45_000_000, "JPY")


def _bare_document() -> bytes:
    data = _three()
    start = data.index(b"<Document")
    end = data.index(b"</Document>") + len(b"</Document>")
    return data[start:end]


def test_envelopes() -> None:
    document = _bare_document()
    header = _three()[_three().index(b"<AppHdr") : _three().index(b"</AppHdr>") + 9]
    assert read_credit_transfer(document).app_header is None
    for wrapper in (
        b"<DataPDU xmlns='urn:swift:saa:xsd:saa.2.0'><Body>%s%s</Body></DataPDU>",
        b"<Envelope><RequestPayload>%s%s</RequestPayload></Envelope>",
        b"<Request xmlns='SWIFTNetBusinessEnvelope'>%s%s</Request>",
    ):
        message = read_credit_transfer(wrapper % (header, document))
        assert message.app_header is not None
        assert message.app_header.from_bic == "HSBKKZKX"
    with pytest.raises(EnvelopeError):
        read_message(b"<Envelope>%s%s</Envelope>" % (document, document))
    with pytest.raises(EnvelopeError):
        read_message(b"<Envelope>%s</Envelope>" % header)
    with pytest.raises(EnvelopeError):
        read_message(b"<Envelope>%s%s%s</Envelope>" % (header, header, document))


def test_header_naming_another_message_is_refused_and_another_version_is_a_warning() -> None:
    data = _three()
    with pytest.raises(EnvelopeError):
        read_message(data.replace(b"<MsgDefIdr>pacs.008.001.08", b"<MsgDefIdr>pacs.009.001.08"))
    message = read_message(
        data.replace(b"<MsgDefIdr>pacs.008.001.08", b"<MsgDefIdr>pacs.008.001.12")
    )
    assert message.warnings and "pacs.008.001.12" in message.warnings[0]


def test_unknown_and_unsupported_messages() -> None:
    with pytest.raises(UnsupportedMessageError):
        read_message(b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>')
    with pytest.raises(UnsupportedMessageError):
        read_message(b'<Document xmlns="urn:example:not-iso"/>')
    old = SAMPLES / "camt.053.001.02/moov__test__testdata__statement_1.xml"
    with pytest.raises(UnsupportedMessageError, match=r"camt\.053\.001\.02"):
        read_message(old.read_bytes())
    pacs008 = _three()
    with pytest.raises(UnsupportedMessageError):
        read_status_report(pacs008)


def test_impossible_creation_time_rejects_the_whole_message() -> None:
    data = _three().replace(
        b"<CreDtTm>2026-01-05T10:30:15.250+05:00", b"<CreDtTm>2026-01-05T24:00:00+05:00"
    )
    with pytest.raises(InvalidContentError) as caught:
        read_message(data)
    assert caught.value.reason == "DT02"
