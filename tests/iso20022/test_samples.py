"""Every shipped sample gets its documented outcome (the table in docs/iso20022.md)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from sco_settle.messaging.iso20022 import (
    MessageRejectedError,
    TransactionRejection,
    open_message,
    read_message,
)
from tests.iso20022.builders import HERE, SAMPLES, sample_files, sample_id

# Outcome per sample, in expected_outcomes.csv: "accepted", "group-rejected <reason>" (every
# transaction rejected with the group-level reason) or "rejected <exception> <reason>".
with (HERE / "expected_outcomes.csv").open(encoding="utf-8") as _stream:
    EXPECTED = {row["file"]: row["outcome"] for row in csv.DictReader(_stream)}


def outcome(path: Path) -> str:
    try:
        message = read_message(path.read_bytes())
    except MessageRejectedError as error:
        return f"rejected {type(error).__name__} {error.reason}"
    group = getattr(message, "group_rejection", None)
    if group is not None:
        return f"group-rejected {group.reason}"
    rejected = [
        item for item in getattr(message, "items", ()) if isinstance(item, TransactionRejection)
    ]
    if rejected:
        return "tx-rejected " + ",".join(item.reason for item in rejected)
    return "accepted"


def test_every_sample_has_an_expected_outcome() -> None:
    assert sorted(EXPECTED) == [sample_id(path) for path in sample_files()]


@pytest.mark.parametrize("path", sample_files(), ids=sample_id)
def test_sample_outcome(path: Path) -> None:
    assert outcome(path) == EXPECTED[sample_id(path)]


def _manifest() -> dict[str, dict[str, str]]:
    with (HERE / "manifest.csv").open(encoding="utf-8") as stream:
        return {row["file"]: row for row in csv.DictReader(stream)}


@pytest.mark.parametrize("path", sample_files(), ids=sample_id)
def test_schema_validity_matches_the_manifest(path: Path) -> None:
    """lxml/libxml2 agrees with the xmlschema results recorded when the samples were collected."""
    row = _manifest()[sample_id(path)]
    try:
        opened = open_message(path.read_bytes())
    except MessageRejectedError:
        assert row["xsd_valid"] == "no"
        return
    assert row["xsd_valid"] == "yes"
    assert opened.definition == row["message_version"]
    assert (opened.header_definition or "") == row["apphdr_version"]


def test_samples_are_a_faithful_copy() -> None:
    """The samples here match the manifest's SHA-256 (users' clones have no shared/)."""

    for name, row in _manifest().items():
        digest = hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest()
        assert digest == row["sha256"], name
