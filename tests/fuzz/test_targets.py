"""The fuzz targets themselves: seeds run clean, and the oracles catch what they are for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import cast

import fuzz.targets as targets
import pytest
from fuzz.targets import TARGETS, ContractBroken, seeds

from sco_settle.domain.transfer import Transfer
from sco_settle.ledger.jsonl import BatchFormatError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["apply", "iso", "network"])
def test_every_seed_runs_without_a_finding(name: str) -> None:
    target = TARGETS[name]()
    corpus = list(seeds(name))
    assert len(corpus) >= (50 if name == "iso" else 1)
    try:
        for _, data in corpus:
            target(data)
    finally:
        if isinstance(target, targets.NetworkTarget):
            target.close()


def test_api_seeds_run_without_a_finding_and_move_money() -> None:
    target = targets.ApiTarget()
    try:
        before = dict(target.service.published.balances)
        for _, data in seeds("api"):
            target(data)
        assert target.service.published.balances != before  # The seed payments settled.
    finally:
        target.close()


def test_apply_target_catches_a_refusal_that_changed_the_ledger(monkeypatch) -> None:
    target = targets.ApplyTarget()
    parse = targets.parse_batch

    def parse_apply_then_refuse(line: bytes):
        _, items = parse(line)
        # A codec that applied the batch before refusing it.
        target.ledger.create_transfers(cast("list[Transfer]", items))
        raise BatchFormatError("refused")

    monkeypatch.setattr(targets, "parse_batch", parse_apply_then_refuse)
    line = b'{"transfers": [{"id": 777, "debit_account": 4, "credit_account": 5, "amount": 1}]}'
    with pytest.raises(ContractBroken, match="refused but changed the ledger"):
        target(line)


def test_api_target_maps_server_errors_to_findings() -> None:
    target = targets.ApiTarget()
    try:
        target.service.close()  # The writer is gone: a 5xx for any payment, never a refusal.
        target.service.failure = RuntimeError("stopped")
        body = b'{"instruction_id": "X-1", "creditor_agent": "KCJBKZKX", "amount_minor": 1, '
        body += b'"currency": "KZT"}'
        with pytest.raises(Exception, match="ledger service stopped"):
            target(bytes([0]) + body)
        target(bytes([0]) + b'{"instruction_id": ""}')  # Refused by the model (422): no finding.
    finally:
        target.close()


@pytest.mark.slow
def test_bounded_fuzzing_of_every_target(tmp_path: Path) -> None:
    """What CI runs: each target for a fixed number of inputs (about half a minute in all)."""
    runs = {"apply": 30_000, "iso": 8_000, "network": 3_000, "api": 8_000}
    for name, count in runs.items():
        arguments = [name, "--runs", str(count), "--seed", "7", "--work", str(tmp_path / name)]
        completed = subprocess.run(
            [sys.executable, "fuzz/run.py", *arguments],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        figures = json.loads(completed.stdout)
        assert figures["findings"] == [], figures
        assert completed.returncode == 0, completed.stderr[-2000:]
        assert figures["executed"] == count
        assert figures["coverage_edges"] > 150, figures  # Our code is instrumented.
