"""Structure-aware mutation of ISO 20022 XML for libFuzzer (atheris ``custom_mutator``).

Byte mutations of a pacs.008 almost always break its XML or its schema, so the reader's mapping
code (amounts, dates, agents, settlement methods) is rarely reached. Half of the mutations here
keep the message well-formed and change one thing a bank could get wrong: a leaf's text (to a
boundary value of its kind, or to a byte mutation of itself), an attribute (``Ccy``), or an
element deleted or repeated. The other half are libFuzzer's own byte mutations.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable

from lxml import etree

# A byte mutator: (data, max_size) -> mutated data (``atheris.Mutate`` while fuzzing).
ByteMutator = Callable[[bytes, int], bytes]

LEAF_VALUES = (
    "",
    " ",
    "0",
    "-1",
    "0.001",
    "1.",
    "1e3",
    "99999999999999999999.99",
    "922337203685477.5808",
    "NaN",
    "2026-02-29",
    "2025-13-01",
    "2025-01-01T24:00:00Z",
    "9999-12-31T23:59:59.999999999+14:00",
    "0001-01-01",
    "XXX",
    "JPY",
    "BHD",
    "CNY",
    "KZT",
    "HSBKKZKX",
    "BKCHCNBJXXX",
    "AAAAZZ22",
    "CLRG",
    "INDA",
    "INGA",
    "COVE",
    "SHAR",
    "true",
    "\u0430" * 141,
    "x" * 36,
    "\t\n",
)
ATTRIBUTE_VALUES = ("", "XXX", "CNY", "KZT", "JPY", "cny", "C N", "CNYY")
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=False
)


def mutate_xml(data: bytes, max_size: int, seed: int, mutate_bytes: ByteMutator) -> bytes:
    """One mutation of ``data``, at most ``max_size`` bytes, chosen by ``seed``."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return mutate_bytes(data, max_size)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        return mutate_bytes(data, max_size)
    elements = [element for element in root.iter() if isinstance(element.tag, str)]
    if not elements:
        return mutate_bytes(data, max_size)
    element = rng.choice(elements)
    _change(rng, element, mutate_bytes)
    return etree.tostring(root)[:max_size]


def _change(rng: random.Random, element: etree._Element, mutate_bytes: ByteMutator) -> None:
    choice = rng.randrange(5)
    parent = element.getparent()
    if choice == 0 and len(element) == 0:
        element.text = rng.choice(LEAF_VALUES)
    elif choice == 1 and len(element) == 0:
        text = (element.text or "").encode()
        changed = mutate_bytes(text, max(len(text) * 2, 8)).decode("utf-8", "replace")
        element.text = "".join(c for c in changed if c.isprintable() or c in "\t\n")
    elif choice == 2 and element.attrib:
        name = rng.choice(sorted(element.attrib))
        element.set(name, rng.choice(ATTRIBUTE_VALUES))
    elif choice == 3 and parent is not None:
        parent.remove(element)
    elif parent is not None:
        parent.insert(parent.index(element), copy.deepcopy(element))


# Targets with a structure-aware mutator; the others use libFuzzer's byte mutations only.
MUTATORS: dict[str, Callable[[bytes, int, int, ByteMutator], bytes]] = {"iso": mutate_xml}
