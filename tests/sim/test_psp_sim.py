"""A simulated day with the payment-service providers' retail flows: their net obligations settle
through the network as interbank payments between their settlement banks, the ledger verifies
and reconciles with the payment records, and the trade workload is the one it was without them.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from sco_settle.network import load_network
from sco_settle.payments.model import AmountType, PaymentStatus
from sco_settle.payments.modes import Mode
from sco_settle.sim.calibration import Rates, load_calibration
from sco_settle.sim.report import build_report, write_tables
from sco_settle.sim.run import SimOptions, SimResult, run_simulation

SMALL = Fraction(1, 20)
NETWORK = load_network("sco")


def run(tmp: Path, mode: Mode, *, retail: bool = True) -> SimResult:
    db = tmp / f"{mode.value}-{retail}.db"
    return run_simulation(SimOptions(days=1, seed=11, mode=mode, scale=SMALL, db=db, retail=retail))


@pytest.fixture(scope="module", params=[Mode.RTGS, Mode.DNS], ids=["rtgs", "dns"])
def with_psp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("psp")
    return tmp, request.param, run(tmp, request.param)


def test_every_psp_settlement_payment_settles_at_its_instructed_amount(with_psp) -> None:
    _, _, result = with_psp
    assert result.verify_ok, result.verify_text
    assert {cycle.provider for cycle in result.retail_cycles} == {
        "unionpay", "alipay_plus", "wechat_pay"
    }  # fmt: skip
    instructions = [i for cycle in result.retail_cycles for i in cycle.instructions]
    settlements = [sim for sim in result.payments if sim.provider]
    assert len(settlements) == len(instructions) > 0
    for sim, instruction in zip(settlements, instructions, strict=True):
        payment, final = sim.payment, result.finals[sim.payment.payment_id]
        assert final.status is PaymentStatus.SETTLED, (payment, final)
        assert (payment.debtor_agent, payment.creditor_agent) == (
            instruction.debtor_bank, instruction.creditor_bank
        )  # fmt: skip
        if instruction.amount_type is AmountType.RECEIVE:
            assert final.delivered_minor == instruction.amount_minor
        else:
            assert final.sent_minor == instruction.amount_minor
    # Between the providers' settlement banks only, and never in Kyrgyzstan.
    banks = {bank.bic for psp in NETWORK.payment_service_providers for bank in psp.settlement_banks}
    assert all({s.payment.debtor_agent, s.payment.creditor_agent} <= banks for s in settlements)
    assert not any("KG" in (s.payer_country, s.payee_country) for s in settlements)


def test_the_ledger_on_disk_verifies_and_reconciles(with_psp) -> None:
    tmp, mode, _ = with_psp
    verified = subprocess.run(
        [sys.executable, "-m", "sco_settle", "verify", "--db", str(tmp / f"{mode.value}-True.db")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "payment records reconcile with the ledger" in verified.stdout


def test_the_report_has_a_psp_section_that_adds_up(with_psp) -> None:
    tmp, mode, result = with_psp
    calibration = load_calibration()
    report = build_report(result, calibration, NETWORK, Rates.load(calibration.usd_cny))
    out = tmp / f"out-{mode.value}"
    write_tables(report, out)
    with (out / "psp.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["provider"] for row in rows} == {"unionpay", "alipay_plus", "wechat_pay"}
    for row in rows:
        gross, net = int(row["gross_value_cny_minor"]), int(row["net_value_cny_minor"])
        assert int(row["netting_saving_cny_minor"]) == gross - net
        assert int(row["settled"]) == int(row["settlement_payments"]) > 0
        assert int(row["net_settled_value_cny_minor"]) == net
    # WeChat Pay carries one direction only: nothing nets, so nothing is saved.
    wechat = next(row for row in rows if row["provider"] == "wechat_pay")
    assert wechat["netting_saving_cny_minor"] == "0"
    assert report.metrics["psp_settlement_settled"] == report.metrics["psp_settlement_payments"]
    with (out / "psp_pairs.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            paid, collected = int(row["paid_local_minor"]), int(row["collected_local_minor"])
            netted = int(row["netted_local_minor"])
            assert paid == netted + int(row["settled_in_local_minor"])
            assert collected == netted + int(row["settled_out_of_local_minor"])


def test_retail_flows_leave_the_trade_workload_as_it_was(tmp_path: Path) -> None:
    result = run(tmp_path, Mode.RTGS)
    without = run(tmp_path, Mode.RTGS, retail=False)
    assert result.retail_cycles and not without.retail_cycles
    assert not any(sim.provider for sim in without.payments)
    trade = [sim for sim in result.payments if not sim.provider]
    assert trade == without.payments
    # Banks that are only providers' settlement banks pay and receive no trade payment.
    only = load_calibration().retail.settlement_only_banks  # type: ignore[union-attr]
    assert not any({s.payment.debtor_agent, s.payment.creditor_agent} & only for s in trade)
