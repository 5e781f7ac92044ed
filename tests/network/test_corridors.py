"""The network that real trade uses (issue 10, section 4): between the SCO's member states every
commercial bank can reach every other one in national currencies (the review found China-India,
India-Russia, China-Iran, China-Belarus and China-Pakistan unreachable), and every fact of the
network file lists its sources (``sco-settle network facts``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.routing import find_routes
from sco_settle.sim.calibration import load_calibration
from sco_settle.storage import MemoryStore

MEMBERS = ("CN", "RU", "KZ", "KG", "TJ", "UZ", "IN", "PK", "IR", "BY")


@pytest.fixture(scope="module")
def graph():
    network = load_network("sco")
    view = NetworkView(network, load_rates())
    ledger = Ledger(MemoryStore(), lambda: 1_800_000_000 * 10**9)
    install_network(ledger, network)
    return network, view, view.graph(ledger)


def test_every_member_bank_reaches_every_other_members_bank(graph) -> None:
    network, view, routing = graph
    banks = {
        country: [p.bic for p in network.participants
                  if p.country == country and p.kind.value == "commercial_bank"]
        for country in MEMBERS
    }  # fmt: skip
    # The corridors the simulator carries (those with trade figures), and India-Iran; pairs of
    # members with no trade channel of their own (e.g. India-Kyrgyzstan) would need more hops
    # through CNY than the routing's hop limit allows.
    pairs = {(c.a, c.b) for c in load_calibration().corridors} | {("IN", "IR")}
    pairs = {pair for pair in pairs if set(pair) <= set(MEMBERS)}
    assert len(pairs) >= 10
    unreachable = []
    for first, second in sorted(pairs):
        for payer_country, payee_country in ((first, second), (second, first)):
            for payer in banks[payer_country]:
                for payee in banks[payee_country]:
                    source = network.home_currency(payer)
                    target = network.home_currency(payee)
                    amount = 10_000_000  # 100,000.00 of the payer's currency
                    found = find_routes(
                        routing, payer, payee, amount, source, target, view.rates, k=1
                    )
                    if not found.routes:
                        unreachable.append((payer, payee, found.status.value))
    assert not unreachable, unreachable[:10]


def test_every_fact_cites_sources_that_resolve() -> None:
    network = load_network("sco")
    cited = {
        key
        for section in (network.countries, network.participants, network.correspondent_links,
                        network.swap_lines)
        for entry in section
        for key in entry.sources
    }  # fmt: skip
    assert cited and cited <= set(network.sources)
    # What is not sourced says it is an assumption (a note) or is marked uncertain.
    for link in network.correspondent_links:
        assert link.sources or (link.uncertain and link.note), link


def test_network_facts_lists_sources_and_filters() -> None:
    def run(*args: str) -> list[dict]:
        done = subprocess.run(
            [sys.executable, "-m", "sco_settle", "network", "facts", "--json", *args],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        return [json.loads(line) for line in done.stdout.splitlines()]

    everything = run()
    assert {fact["section"] for fact in everything} == {
        "countries", "participants", "correspondent_links", "swap_lines", "fx_providers",
        "payment_service_providers",
    }  # fmt: skip
    srva = [f for f in everything if f["subject"] == "UCBAINBB holds INR for GAZPRUMM"]
    assert srva and any(s.startswith("rbi_circ_2022: https://") for s in srva[0]["sources"])
    iran = run("--country", "IR", "--uncertain")
    assert iran and all(f["uncertain"] and "IR" in f["countries"] for f in iran)
