"""Inputs the fuzzers found (``fuzz/run.py``), kept as regression tests.

Each file in ``tests/fuzz/findings/`` is an input that crashed its target before the fix named
here; it must now be refused with the edge's documented error, and the target (which checks that
a refusal changes nothing) must run it without a finding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz.targets import NetworkTarget

from sco_settle.network import load_network
from sco_settle.network.loader import NetworkError, parse_network

FINDINGS = Path(__file__).parent / "findings"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # ruamel's timestamp constructor raised a bare ValueError for "signed: 2014-12-94";
        # fixed in network/loader.py (_parse_yaml).
        ("network-date-out-of-range.yaml", "invalid YAML value: day is out of range for month"),
        # A mapping as a key ("? ank:" made {ank: None} a key): TypeError, unhashable dict;
        # fixed in network/loader.py (_plain_key).
        ("network-mapping-as-key.yaml", "unknown field"),
        # A sequence of mappings as a key ("? - bic: ..."): ruamel itself raised TypeError
        # (unhashable CommentedMap); fixed in network/loader.py (_parse_yaml).
        ("network-sequence-of-mappings-as-key.yaml", "invalid YAML key"),
        # "-_:" (a sign and an underscore): ruamel.yaml 0.19's int constructor raised IndexError;
        # fixed in network/loader.py (_parse_yaml).
        ("network-underscore-key.yaml", "a number with no digits"),
        # A tagged mapping ("!unlines:") above a sequence: ruamel keeps no line positions inside
        # it, and line_of subscripted None (TypeError) while reporting the error; fixed in
        # network/loader.py (line_of). Found after 847,687 inputs.
        ("network-tagged-mapping.yaml", "missing required field"),
    ],
)
def test_network_findings_are_refused_as_network_errors(name: str, message: str) -> None:
    path = FINDINGS / name
    with pytest.raises(NetworkError, match=message):
        load_network(path)
    target = NetworkTarget()
    try:
        target(path.read_bytes())
    finally:
        target.close()


# Not found by the fuzzer: cases of the same roots, written while fixing them.
@pytest.mark.parametrize(
    "text",
    [
        "signed: 2014-02-30\n",  # another impossible date
        "a: 2014-02-28 10:00:99\n",  # an impossible time
        "a: " + "[" * 5000 + "\n",  # nested beyond the interpreter's stack: RecursionError
        "x:\n  ? {a: 1}\n  : 2\n",  # a complex key below the top level
        "a: 0x_\n",  # a radix prefix and an underscore: IndexError in ruamel.yaml
        "a: -._\n",  # a sign, a point and an underscore: ValueError in ruamel.yaml
    ],
)
def test_network_values_yaml_cannot_construct_are_network_errors(text: str) -> None:
    with pytest.raises(NetworkError, match=r"invalid YAML|unknown field"):
        parse_network(text)
