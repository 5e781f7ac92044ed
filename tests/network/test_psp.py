"""Payment-service providers in the network file (issue 10, section 4): UnionPay, Alipay+ and
WeChat Pay with their business per country, their settlement banks, and each fact's sources and
certainty; the loader refuses a provider whose settlement bank is missing or holds no account in
the currency."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import typer
from typer.testing import CliRunner

from sco_settle.cli.network import register
from sco_settle.network import NetworkError, load_network, parse_network
from sco_settle.network.model import PspOperationStatus, currencies_held

SIM_DAY = dt.date(2026, 1, 5)  # the simulator's first day (sim/run.py EPOCH_NS)

MINI = """\
format: 1
name: mini
countries:
  - {code: KZ, name: Kazakhstan, sco_status: member, sco_status_since: 2001-06-15, currency: KZT}
  - {code: CN, name: China, sco_status: member, sco_status_since: 2001-06-15, currency: CNY}
participants:
  - {bic: NBRKKZKX, name: National Bank of Kazakhstan, kind: central_bank, country: KZ}
  - {bic: PBOCCNBJ, name: People's Bank of China, kind: central_bank, country: CN}
  - {bic: HSBKKZKX, name: Halyk Bank, kind: commercial_bank, country: KZ}
  - {bic: BKCHCNBJ, name: Bank of China, kind: commercial_bank, country: CN}
payment_service_providers:
  - id: unionpay
    name: UnionPay
    operator: UnionPay International
    country: CN
    channel: card
    operations:
      - {country: KZ, status: active, sources: [kabar]}
    settlement_banks:
      - {currency: CNY, bic: BKCHCNBJ, uncertain: true, note: assumed}
      - {currency: KZT, bic: HSBKKZKX}
sources:
  kabar: "http://old.kabar.kg/eng/business/full/14156"
"""


def problems(text: str) -> str:
    with pytest.raises(NetworkError) as caught:
        parse_network(text)
    return str(caught.value)


def test_the_mini_network_loads_with_its_provider() -> None:
    psp = parse_network(MINI).payment_service_providers[0]
    assert psp.banks_for("KZT") == ("HSBKKZKX",)
    assert psp.principal_bank("CNY") == "BKCHCNBJ"
    assert psp.operating_in("KZ", SIM_DAY) and not psp.operating_in("CN", SIM_DAY)


def test_a_settlement_bank_that_is_not_a_participant_is_refused() -> None:
    text = MINI.replace("{currency: KZT, bic: HSBKKZKX}", "{currency: KZT, bic: CASPKZKA}")
    found = problems(text)
    # Reported at the line of the offending entry.
    line = text.splitlines().index("      - {currency: KZT, bic: CASPKZKA}") + 1
    assert f"<network>:{line}: payment-service provider 'unionpay': settlement bank " in found
    assert "'CASPKZKA' is not a participant" in found


def test_a_settlement_bank_without_an_account_in_the_currency_is_refused() -> None:
    text = MINI.replace("{currency: KZT, bic: HSBKKZKX}", "{currency: KZT, bic: BKCHCNBJ}")
    found = problems(text)
    assert "settlement bank BKCHCNBJ holds no KZT account" in found


def test_an_active_country_without_a_settlement_bank_in_its_currency_is_refused() -> None:
    text = MINI.replace("      - {currency: KZT, bic: HSBKKZKX}\n", "")
    assert "it operates in KZ but has no settlement bank in KZT" in problems(text)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{country: KZ, status: active, sources: [kabar]}",
         "{country: KZ, status: exited, sources: [kabar]}",
         "an exit from KZ needs its date (until)"),
        ("{country: KZ, status: active, sources: [kabar]}",
         "{country: KZ, status: mou, since: 2025-12, until: 2025-06}",
         "in KZ, until 2025-06 is before 2025-12"),
        ("{country: KZ, status: active, sources: [kabar]}",
         "{country: KZ, status: active, sources: [nowhere]}",
         "source 'nowhere' is not in sources"),
        ("{currency: CNY, bic: BKCHCNBJ, uncertain: true, note: assumed}",
         "{currency: CNY, bic: BKCHCNBJ, uncertain: true}",
         "an uncertain fact needs a note"),
        ("{country: KZ, status: active, sources: [kabar]}",
         "{country: IN, status: planned}",
         "country 'IN' is not in countries"),
        ("    channel: card\n", "    channel: fax\n", "channel"),
    ],
)  # fmt: skip
def test_bad_provider_entries_are_refused(old: str, new: str, message: str) -> None:
    assert old in MINI
    assert message in problems(MINI.replace(old, new))


def test_a_duplicate_provider_is_refused() -> None:
    start = MINI.index("  - id: unionpay")
    end = MINI.index("sources:\n  kabar")
    text = MINI[:end] + MINI[start:end] + MINI[end:]
    assert "payment-service provider 'unionpay': duplicate id" in problems(text)


def test_the_shipped_network_has_the_three_providers_and_their_facts() -> None:
    network = load_network("sco")
    psps = {psp.id: psp for psp in network.payment_service_providers}
    assert set(psps) == {"unionpay", "alipay_plus", "wechat_pay"}
    unionpay = psps["unionpay"]
    # Tajikistan: the three issuers the reference names settle TJS.
    assert unionpay.banks_for("TJS") == ("EJSATJ22", "SPRBTJ22", "IBTKTJ22")
    assert unionpay.operating_in("TJ", SIM_DAY) and unionpay.operating_in("KZ", SIM_DAY)
    # Kyrgyzstan: the exit (mid-2025) and the Elkart MoUs are recorded, but nothing operates.
    kg = {op.status: op for op in unionpay.operations if op.country == "KG"}
    assert kg[PspOperationStatus.EXITED].until == "2025-06"
    assert kg[PspOperationStatus.MOU].since == "2025-12"
    assert unionpay.operating_in("KG", dt.date(2025, 1, 1))
    assert not any(psp.operating_in("KG", SIM_DAY) for psp in psps.values())
    alipay_kg = [op for op in psps["alipay_plus"].operations if op.country == "KG"]
    assert [(op.status, op.since) for op in alipay_kg] == [(PspOperationStatus.MOU, "2025-09")]
    # Every settlement bank is a participant holding the currency; every gap is labelled.
    for psp in psps.values():
        for bank in psp.settlement_banks:
            assert bank.currency in currencies_held(network, bank.bic), (psp.id, bank)
            assert bank.sources or (bank.uncertain and bank.note), (psp.id, bank)
        for operation in psp.operations:
            assert operation.sources or (operation.uncertain and operation.note), operation
    # No source names a Chinese settlement bank: each CNY one is a labelled assumption.
    for psp in psps.values():
        cny = [bank for bank in psp.settlement_banks if bank.currency == "CNY"]
        assert cny and all(bank.uncertain and "ASSUMPTION" in (bank.note or "") for bank in cny)


def test_network_facts_for_tajikistan_list_unionpay_with_sources() -> None:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps ``network`` a subcommand
    done = CliRunner().invoke(app, ["network", "facts", "--country", "TJ", "--json"])
    assert done.exit_code == 0, done.output
    facts = [json.loads(line) for line in done.output.splitlines()]
    psp = [f for f in facts if f["section"] == "payment_service_providers"]
    subjects = {f["subject"] for f in psp}
    assert any(s.startswith("UnionPay in TJ: active") for s in subjects), subjects
    assert "UnionPay settles TJS at bank SPRBTJ22 Spitamen Bank" in subjects
    assert all("TJ" in f["countries"] for f in psp)
    licence = next(f for f in psp if f["subject"].startswith("UnionPay in TJ"))
    assert any(s.startswith("tjng_unionpay: https://") for s in licence["sources"])
    uncertain = CliRunner().invoke(app, ["network", "facts", "--country", "KG", "--uncertain",
                                         "--json"])  # fmt: skip
    assert uncertain.exit_code == 0, uncertain.output
    assert all(json.loads(line)["uncertain"] for line in uncertain.output.splitlines())
