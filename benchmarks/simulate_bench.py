"""Simulator throughput through the real engine (routing, planning, ledger); prints JSON.

    python benchmarks/simulate_bench.py                   # 1 day at scale 1/10, rtgs dns union
    python benchmarks/simulate_bench.py --quick           # 1 day at scale 1/200, rtgs and dns
    python benchmarks/simulate_bench.py --scale 1 --modes rtgs --no-baseline

Each (mode, variant) runs ``run_simulation`` (seed 7, in-memory ledger and payment records: the
simulator's default, ``SimOptions.db=None``) in a fresh Python process, so that one run's caches
and memory do not flatter or burden the next, and reports:

- ``payments``: payments submitted (the day's workload, retail flows included);
- ``wall_s`` and ``cpu_s``: the whole ``run_simulation`` call (workload generation, engine,
  end-of-day operations and the final journal replay); ``payments_per_s`` = payments / wall,
  ``payments_per_cpu_s`` = payments / CPU time (the steadier figure on a shared machine);
- ``rss_peak_mib``: the run's process's peak resident memory (``VmHWM``), imports included;
- ``result_sha256``: a digest of every payment's final outcome, the settled order, the cycle
  reports, the end-of-day queues and the ledger verdict.

The ``baseline`` variant runs the same workload with the engine's fast paths switched off
(``SimOptions(fast_paths=False)``: every routing graph compiled afresh with empty memo tables
from every account's balances, no memo of firm quotes or of reserving accounts: the paths of
the commit the fast paths were added on; not switchable, and so in both variants, are the
route search's constant-factor changes and DNS's one-route check of a held payment).
``identical`` says whether its digest equals the fast run's; ``speedup_cpu`` is baseline CPU
time over fast CPU time. ``projection_365d_scale_1_h_at_*`` extrapolates the fast rate
linearly to a 365-day run at scale 1 (payments per day at scale 1 counted from the workload
itself, day 0, times 365): an estimate, which ignores that queues and quotes differ from day
to day, and that the in-memory ledger and records grow with every day.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

VARIANTS = ("baseline", "fast")
Figures = dict[str, float | int | str]


def digest(result: object) -> str:
    """A SHA-256 over everything a run's reports are made of (``SimResult``)."""
    from sco_settle.sim.run import SimResult

    assert isinstance(result, SimResult)
    parts = [
        sorted(result.finals.items()),
        result.settled_order,
        result.cycles,
        sorted(result.unsettled_eod.items()),
        result.swap_lines,
        result.rejections_engine,
        result.verify_text,
        result.overnight_operations,
        sorted(result.fx_income.items()),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def run_one(mode: str, scale: Fraction, days: int, fast: bool) -> Figures:
    """One simulation in this process; its figures as a dict."""
    from sco_settle.payments.modes import Mode
    from sco_settle.sim.run import SimOptions, run_simulation

    options = SimOptions(days=days, seed=7, mode=Mode(mode), scale=scale, fast_paths=fast)
    started, cpu = time.perf_counter(), time.process_time()
    result = run_simulation(options, progress=_progress(mode, "fast" if fast else "baseline"))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    sys.stderr.write("\n")
    payments = len(result.payments)
    return {
        "payments": payments,
        "settled": sum(1 for f in result.finals.values() if f.status.value == "settled"),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "payments_per_s": round(payments / wall, 1),
        "payments_per_cpu_s": round(payments / cpu, 1),
        "rss_peak_mib": rss_peak_mib(),
        "verify_ok": result.verify_ok,
        "result_sha256": digest(result),
    }


def rss_peak_mib() -> float:
    """This process's peak resident memory: ``VmHWM`` (Linux: the peak of this program, reset
    by ``exec``), else ``ru_maxrss`` (which on Linux may carry the parent's peak over a fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _progress(mode: str, variant: str) -> Callable[[int, int], None]:
    """A one-line progress bar on stderr (simulated minutes done of the run's total)."""
    shown = [-1]

    def step(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent != shown[0]:
            shown[0] = percent
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r{mode:5} {variant:8} [{bar:25}] {percent:3d}%")
            sys.stderr.flush()

    return step


def in_subprocess(mode: str, scale: Fraction, days: int, fast: bool) -> Figures:
    command = [sys.executable, __file__, "--one", mode, "--scale", str(scale)]
    command += ["--days", str(days)] + ([] if fast else ["--baseline-only"])
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    figures: Figures = json.loads(done.stdout)
    return figures


def payments_per_day_at_scale_1() -> int:
    from sco_settle.network import load_network
    from sco_settle.sim.calibration import Rates, load_calibration
    from sco_settle.sim.workload import generate_day

    calibration = load_calibration()
    day = generate_day(
        calibration,
        load_network("sco"),
        Rates.load(calibration.usd_cny),
        seed=7,
        day=0,
        scale=Fraction(1),
    )
    return len(day)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale 1/200, rtgs and dns (CI)")
    parser.add_argument("--scale", type=Fraction, default=None, help="workload scale (1/10)")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=None, help="rtgs dns union")
    parser.add_argument("--no-baseline", action="store_true", help="fast paths only")
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    scale = args.scale or (Fraction(1, 200) if args.quick else Fraction(1, 10))
    if args.one is not None:  # A child: one run, its figures as JSON on stdout.
        print(json.dumps(run_one(args.one, scale, args.days, not args.baseline_only)))
        return
    modes = args.modes or (["rtgs", "dns"] if args.quick else ["rtgs", "dns", "union"])
    variants = ("fast",) if args.no_baseline else VARIANTS
    report: dict[str, object] = {"days": args.days, "seed": 7, "scale": str(scale)}
    per_day = None if args.quick else payments_per_day_at_scale_1()
    report["payments_per_day_scale_1"] = per_day
    for mode in modes:
        figures = {
            variant: in_subprocess(mode, scale, args.days, variant == "fast")
            for variant in variants
        }
        row: dict[str, object] = dict(figures)
        if "baseline" in figures:
            base, fast = figures["baseline"], figures["fast"]
            row["speedup_cpu"] = round(float(base["cpu_s"]) / float(fast["cpu_s"]), 2)
            row["identical"] = base["result_sha256"] == fast["result_sha256"]
        if per_day is not None:
            for figure in ("payments_per_s", "payments_per_cpu_s"):
                rate = float(figures["fast"][figure])
                hours = per_day * 365 / rate / 3600
                row[f"projection_365d_scale_1_h_at_{figure}"] = round(hours, 1)
        report[mode] = row
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
