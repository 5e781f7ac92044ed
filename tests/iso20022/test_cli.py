"""The ``iso validate`` command."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sco_settle.cli.iso import iso_app
from tests.iso20022.builders import SAMPLES

RUNNER = CliRunner()


def test_valid_message() -> None:
    path = (
        SAMPLES
        / "pacs.008.001.12"
        / "bal-mx2mt__iso20022_to_swiftmt__tests__p_2_1_1__CBPR_p.2.1.1_pacs.008-AtoB.xml"
    )
    result = RUNNER.invoke(iso_app, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.output == "valid: pacs.008.001.12\n"


def test_valid_but_unmapped_version_still_validates() -> None:
    path = SAMPLES / "camt.053.001.02/moov__test__testdata__statement_1.xml"
    result = RUNNER.invoke(iso_app, ["validate", str(path)])
    assert (result.exit_code, result.output) == (0, "valid: camt.053.001.02\n")


def test_invalid_message_reports_file_line_and_first_error() -> None:
    path = (
        SAMPLES / "pacs.008.001.08/cbprur__test_files__2025__cbprplus_pacs008_sample_xsd_issue.xml"
    )
    result = RUNNER.invoke(iso_app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"invalid: {path}:82: pacs.008.001.08: Element 'CdtrAgt'")


def test_unsafe_and_malformed_files(tmp_path: Path) -> None:
    unsafe = tmp_path / "xxe.xml"
    unsafe.write_bytes(b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>')
    result = RUNNER.invoke(iso_app, ["validate", str(unsafe)])
    assert result.exit_code == 1
    assert "document type declarations" in result.output
    assert "root:" not in result.output
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<a>\n<b></a>")
    result = RUNNER.invoke(iso_app, ["validate", str(broken)])
    assert result.exit_code == 1
    assert result.output.startswith(f"invalid: {broken}:2: not well-formed XML")


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = RUNNER.invoke(iso_app, ["validate", str(tmp_path / "missing.xml")])
    assert result.exit_code == 2
