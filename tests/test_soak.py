"""The soak script, bounded (issue 12, §5): about a minute of paced load with two SIGKILLs of the
server, then the audit. The closing note's 30-minute run is ``python scripts/soak.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_minute_of_soak_with_two_kills_loses_nothing(tmp_path: Path) -> None:
    arguments = ["--minutes", "1", "--kill-every", "25", "--capacity-seconds", "5"]
    completed = subprocess.run(
        [sys.executable, "scripts/soak.py", *arguments, "--clients", "4", "--work", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.stdout, completed.stderr[-3000:]
    figures = json.loads(completed.stdout)
    audit = figures["audit"]
    assert completed.returncode == 0, (figures, completed.stderr[-3000:])
    assert figures["kills"] == 2
    assert audit["verify_passed"], audit["verify_output"]
    assert audit["lost"] == 0 and audit["final_status_changed"] == 0
    assert audit["acknowledged"] > 0 and audit["acknowledged_distinct"] == audit["acknowledged"]
    assert figures["refused_4xx"] == 0, figures["refused_examples"]
    assert figures["capacity_payments_per_s"] > 0
    for restart in figures["restarts"]:
        assert restart["first_write_s"] is not None, restart  # The server came back and wrote.
        assert restart["p99_ms_first_10s"] is not None
    lives = [life for life in figures["lives"] if life["rss_mb_last"] is not None]
    assert len(lives) >= 2  # Memory was sampled across restarts.
    assert figures["memory"]["rss_mb_max_of_lasts"] < 4 * figures["memory"]["rss_mb_min_of_lasts"]
