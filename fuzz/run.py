"""Fuzz one target with atheris and print its figures as one JSON document.

    python fuzz/run.py apply --runs 1000000 --seed 1
    python fuzz/run.py iso --runs 20000 --timeout 10 --work /tmp/fuzz-iso

Targets: apply (``sco-settle apply`` lines), iso (ISO 20022 XML), network (network YAML), api
(request bodies through the ledger service); see ``fuzz/targets.py``. The seed corpus comes from the
repository's own samples (``fuzz/corpus``, ``tests/iso20022/samples``); inputs libFuzzer finds
interesting are added to ``<work>/corpus``, every finding is written to ``<work>/`` (``crash-*``,
``timeout-*``, ``oom-*``) and replays with ``python -m fuzz.worker TARGET <file>``. libFuzzer stops
at the first finding; the exit status is 1 if there was one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_NAMES = ("apply", "iso", "network", "api")
# Longest input libFuzzer makes, per target: above the largest seed that is fast to run.
MAX_LEN = {"apply": 4096, "iso": 64 * 1024, "network": 4096, "api": 4096}
ARTIFACT_KINDS = ("crash", "timeout", "oom", "leak", "slow-unit")
_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second")


@dataclass
class Finding:
    kind: str  # crash, timeout, oom, ...
    artifact: str  # the input, replayable with ``python -m fuzz.worker TARGET <artifact>``
    error: str  # the last line of the Python traceback, or libFuzzer's error line


@dataclass
class Figures:
    target: str
    seed: int
    runs_requested: int
    executed: int = 0
    seconds: float = 0.0
    inputs_per_second: float = 0.0
    coverage_edges: int = 0  # libFuzzer "cov": instrumented branches of sco_settle reached
    coverage_features: int = 0  # libFuzzer "ft": edges with hit-count buckets, value profiles
    corpus_units: int = 0
    seed_units: int = 0
    new_units: int = 0
    peak_rss_mb: int = 0
    slowest_input_seconds: int = 0
    per_input_timeout_seconds: int = 0
    findings: list[Finding] = field(default_factory=list)
    exit_code: int = 0
    log: str = ""
    machine: dict[str, object] = field(default_factory=dict)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=TARGET_NAMES)
    parser.add_argument("--runs", type=int, default=10_000, help="inputs to execute")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--max-len", type=int, default=0, help="longest input (0: per target)")
    parser.add_argument("--work", type=Path, default=None, help="corpus and findings go here")
    return parser.parse_args(argv)


def _seed_corpus(target: str, folder: Path) -> int:
    sys.path.insert(0, str(ROOT))
    from fuzz.targets import seeds

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, data in seeds(target):
        (folder / f"seed-{name}").write_bytes(data)
        count += 1
    return count


def _command(args: argparse.Namespace, work: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "fuzz.worker",
        args.target,
        f"-runs={args.runs}",
        f"-seed={args.seed}",
        f"-timeout={args.timeout}",
        f"-max_len={args.max_len or MAX_LEN[args.target]}",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
        f"-artifact_prefix={work}/",
    ]
    dictionary = ROOT / "fuzz" / "dicts" / f"{args.target}.dict"
    if dictionary.is_file():
        command.append(f"-dict={dictionary}")
    return [*command, str(work / "corpus")]


def _read_log(text: str, figures: Figures) -> None:
    for line in text.splitlines():
        if status := _STATUS.match(line):
            _, cov, ft, corpus = (int(group) for group in status.groups())
            figures.coverage_edges, figures.coverage_features = cov, ft
            figures.corpus_units = corpus
        elif stat := _STAT.match(line):
            name, value = stat.group(1), int(stat.group(2))
            if name == "number_of_executed_units":
                figures.executed = value
            elif name == "new_units_added":
                figures.new_units = value
            elif name == "peak_rss_mb":
                figures.peak_rss_mb = value
            elif name == "slowest_unit_time_sec":
                figures.slowest_input_seconds = value


def _findings(work: Path, text: str) -> list[Finding]:
    lines = text.splitlines()
    error = next((line for line in lines if "ERROR: libFuzzer" in line), "")
    for index, line in enumerate(lines):
        if "Uncaught Python exception" in line:
            traceback = [ln for ln in lines[index + 1 :] if ln and not ln.startswith(" ")]
            error = next((ln for ln in traceback if not ln.startswith("Traceback")), error)
            break
    return [
        Finding(path.name.split("-")[0], str(path), error)
        for kind in ARTIFACT_KINDS
        for path in sorted(work.glob(f"{kind}-*"))
    ]


def run(argv: list[str] | None = None) -> Figures:
    args = _arguments(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix=f"sco-fuzz-{args.target}-"))
    work.mkdir(parents=True, exist_ok=True)
    figures = Figures(args.target, args.seed, args.runs, per_input_timeout_seconds=args.timeout)
    figures.seed_units = _seed_corpus(args.target, work / "corpus")
    figures.log = str(work / "libfuzzer.log")
    figures.machine = {"python": platform.python_version(), "cpus": _cpus()}
    started = time.monotonic()
    environment = {**os.environ, "SCO_FUZZ_SCRATCH": str(work / "scratch")}
    with open(figures.log, "wb") as log:
        process = subprocess.run(
            _command(args, work), cwd=ROOT, stdout=log, stderr=log, env=environment
        )
    shutil.rmtree(work / "scratch", ignore_errors=True)  # The targets' files (a ledger, ...).
    figures.seconds = round(time.monotonic() - started, 1)
    figures.exit_code = process.returncode
    text = Path(figures.log).read_text(errors="replace")
    _read_log(text, figures)
    if done := next((m for m in map(_DONE.match, text.splitlines()) if m), None):
        figures.executed = figures.executed or int(done.group(1))
    figures.inputs_per_second = round(figures.executed / max(figures.seconds, 0.1), 1)
    figures.findings = _findings(work, text)
    return figures


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def main() -> None:
    figures = run()
    print(json.dumps(asdict(figures), indent=2))
    sys.exit(1 if figures.findings or figures.exit_code else 0)


if __name__ == "__main__":
    main()
