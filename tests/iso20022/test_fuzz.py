"""Fuzzing the reader: any bytes give a model or a MessageRejectedError, nothing else."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from sco_settle.messaging.iso20022 import MessageRejectedError, read_message
from tests.iso20022.builders import SAMPLES, sample_files

FUZZ_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SEEDS = [
    path.read_bytes()
    for path in sample_files()
    if path.parent.name[:8]
    in ("pacs.008", "pacs.009", "pacs.004", "pacs.002", "camt.053", "camt.054")
    and path.parent.name[-2:] in ("08", "09", "10", "11", "12", "13", "14")
]


_DATE_TIME = (
    r"[0-9]{4,6}-[0-9]{2}-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def _read(data: bytes) -> None:
    with contextlib.suppress(MessageRejectedError):
        read_message(data)


@FUZZ_SETTINGS
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_byte_flips(seed: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for position, value in flips:
        data[position % len(data)] = value
    _read(bytes(data))


@FUZZ_SETTINGS
@given(st.sampled_from(SEEDS), st.integers(0, 10**7))
def test_truncation(seed: bytes, length: int) -> None:
    _read(seed[: length % (len(seed) + 1)])


def _element_deleted(seed: bytes, choice: int) -> bytes:
    root = etree.fromstring(seed)
    elements = [element for element in root.iter() if element.getparent() is not None]
    victim = elements[choice % len(elements)]
    victim.getparent().remove(victim)
    return etree.tostring(root)


@FUZZ_SETTINGS
@given(st.sampled_from(SEEDS), st.integers(0, 10**6))
def test_element_deletion(seed: bytes, choice: int) -> None:
    _read(_element_deleted(seed, choice))


def _text_changed(seed: bytes, choice: int, text: str) -> bytes:
    root = etree.fromstring(seed)
    leaves = [element for element in root.iter() if len(element) == 0]
    leaves[choice % len(leaves)].text = text
    return etree.tostring(root)


@FUZZ_SETTINGS
@given(
    st.sampled_from(SEEDS),
    st.integers(0, 10**6),
    st.one_of(
        st.text(max_size=40).filter(
            lambda text: (
                all(ord(c) >= 32 or c in "\t\n" for c in text)
                and max(text, default="\x00") < "\ud800"
            )
        ),
        st.from_regex(r"-?[0-9]{0,20}(\.[0-9]{0,8})?", fullmatch=True),
        st.from_regex(
            r"[0-9]{4,6}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?)?",
            fullmatch=True,
        ),
        st.sampled_from(["XYZ", "XAU", "JPY", "BHD", "COVE", "CHQB", "true", " 1 ", "AAAAZZ22"]),
    ),
)
def test_leaf_values_changed(seed: bytes, choice: int, text: str) -> None:
    _read(_text_changed(seed, choice, text))


_NAMES = st.sampled_from(["Document", "AppHdr", "Envelope", "GrpHdr", "MsgId", "a", "CdtTrfTxInf"])


@st.composite
def _random_xml(draw: st.DrawFn) -> bytes:
    namespace = draw(
        st.sampled_from(
            [
                "",
                "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08",
                "urn:iso:std:iso:20022:tech:xsd:head.001.001.02",
                "urn:iso:std:iso:20022:tech:xsd:x",
            ]
        )
    )

    def element(depth: int) -> str:
        name = draw(_NAMES)
        children = (
            "" if depth > 3 else "".join(element(depth + 1) for _ in range(draw(st.integers(0, 3))))
        )
        text = draw(st.sampled_from(["", "1", "x", "2026-01-01", "&amp;"]))
        return f"<{name}>{text}{children}</{name}>"

    root = draw(_NAMES)
    return f'<{root} xmlns="{namespace}">{element(0)}</{root}>'.encode()


@FUZZ_SETTINGS
@given(st.one_of(_random_xml(), st.binary(max_size=300)))
def test_random_xml(data: bytes) -> None:
    _read(data)


def test_seeds_are_samples() -> None:
    assert SEEDS and all(isinstance(seed, bytes) for seed in SEEDS)
    assert Path(SAMPLES).is_dir()
