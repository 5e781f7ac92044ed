"""The simulated network: a handful of banks of the SCO network, and each seed's settings.

A seed's run must be small to be fast, so it uses a part of the shipped ``sco`` network: the
central and commercial banks of China, Kazakhstan and Kyrgyzstan, Bank of Xinjiang's vostro
accounts for the Kazakh and Kyrgyz banks, and the PBOC-NBRK swap line. That keeps every kind of
route: domestic, cross-currency through a central bank's swap line, and through correspondents.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

from sco_settle.domain.participants import ParticipantKind
from sco_settle.network import Network, load_network
from sco_settle.payments.engine import EngineSettings
from sco_settle.payments.fx import RateTable
from sco_settle.payments.modes import Mode
from sco_settle.payments.network_view import NetworkView, load_rates

COUNTRIES = ("CN", "KZ", "KG")
BANKS_MAX_PER_COUNTRY = 2  # commercial banks kept per country, besides the correspondent
CORRESPONDENT = "BOXJCNU0"  # Bank of Xinjiang: vostro accounts for Central Asian banks
NS_PER_MINUTE = 60 * 10**9


@dataclass(frozen=True)
class World:
    """What every seed shares: the network part, its rates, and who is who in it."""

    network: Network
    rates: RateTable
    banks: tuple[str, ...]  # commercial banks: the clients that pay
    home: dict[str, str]  # bank BIC -> home currency

    def view(self) -> NetworkView:
        """A fresh view: its routing-graph cache must not carry one seed's state into another."""
        return NetworkView(self.network, self.rates)


@functools.cache
def world() -> World:
    network = subnetwork(load_network("sco"), COUNTRIES)
    banks = tuple(
        participant.bic
        for participant in network.participants
        if participant.kind is ParticipantKind.COMMERCIAL_BANK
    )
    home = {bic: network.home_currency(bic) for bic in banks}
    return World(network, load_rates(), banks, home)


def subnetwork(network: Network, countries: tuple[str, ...]) -> Network:
    """``network`` cut down to ``countries``: their central banks, the correspondent and a few
    commercial banks each, and the links and swap lines among those."""
    document: dict[str, Any] = network.model_dump()
    kept: set[str] = set()
    per_country: dict[str, int] = {}
    for participant in document["participants"]:
        country = participant["country"]
        if country not in countries:
            continue
        central = participant["kind"] == ParticipantKind.CENTRAL_BANK
        if central or participant["bic"] == CORRESPONDENT:
            kept.add(participant["bic"])
        elif per_country.get(country, 0) < BANKS_MAX_PER_COUNTRY:
            per_country[country] = per_country.get(country, 0) + 1
            kept.add(participant["bic"])
    document["countries"] = [c for c in document["countries"] if c["code"] in countries]
    document["participants"] = [p for p in document["participants"] if p["bic"] in kept]
    document["correspondent_links"] = [
        link
        for link in document.get("correspondent_links", ())
        if link["holder"] in kept and link["owner"] in kept
    ]
    document["swap_lines"] = [
        line for line in document.get("swap_lines", ()) if set(line["central_banks"]) <= kept
    ]
    held: dict[str, set[str]] = {}
    homes = {c["code"]: c["currency"] for c in document["countries"]}
    for participant in document["participants"]:
        held[participant["bic"]] = {homes[participant["country"]]}
        held[participant["bic"]].update(a["currency"] for a in participant["accounts"])
        participant["correspondent_for"] = [
            bic for bic in participant["correspondent_for"] if bic in kept
        ]
    for link in document["correspondent_links"]:
        held[link["owner"]].add(link["currency"])
    providers = []
    for provider in document.get("fx_providers", ()):
        pairs = [
            pair
            for pair in provider["pairs"]
            if provider["bic"] in kept and {pair[:3], pair[4:]} <= held[provider["bic"]]
        ]
        if pairs:
            dealt = {code for pair in pairs for code in (pair[:3], pair[4:])}
            limits = {k: v for k, v in provider["dealing_limit"].items() if k in dealt}
            providers.append({**provider, "pairs": pairs, "dealing_limit": limits})
    document["fx_providers"] = providers
    # Payment-service providers settle retail flows the simulator adds, not the DST workload;
    # a small world keeps none (their countries and banks are mostly outside it).
    document["payment_service_providers"] = []
    return Network.model_validate(document)


def draw_settings(rng: random.Random) -> EngineSettings:
    """One seed's engine: RTGS mostly, DNS sometimes; FIFO strict or bypassed by the LSM; a
    queue timeout short enough for payments to time out (TM01) within a run."""
    return EngineSettings(
        mode=Mode.DNS if rng.random() < 0.25 else Mode.RTGS,
        fifo_bypass=rng.random() < 0.5,
        queue_timeout_ns=rng.choice((5, 20, 60)) * NS_PER_MINUTE,
    )
