"""The structure-aware XML mutator: deterministic, bounded, and mostly well-formed."""

from __future__ import annotations

from fuzz.mutators import mutate_xml
from fuzz.targets import iso_target, seeds
from lxml import etree


def _reverse(data: bytes, max_size: int) -> bytes:
    """A stand-in for libFuzzer's byte mutator: deterministic, and breaks the XML."""
    return data[::-1][:max_size]


def test_mutations_are_deterministic_bounded_and_keep_half_well_formed() -> None:
    sample = next(data for name, data in seeds("iso") if name.startswith("pacs.008"))
    outputs = [mutate_xml(sample, 20_000, seed, _reverse) for seed in range(200)]
    assert outputs == [mutate_xml(sample, 20_000, seed, _reverse) for seed in range(200)]
    assert all(len(output) <= 20_000 for output in outputs)
    well_formed = 0
    for output in outputs:
        try:
            etree.fromstring(output)
            well_formed += 1
        except etree.XMLSyntaxError:
            pass
        iso_target(output)  # Every mutation is read or refused, nothing else.
    assert 60 <= well_formed <= 140
    assert len(set(outputs)) > 50  # The structural mutations differ (the stand-in does not).
