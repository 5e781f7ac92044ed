"""``sco-settle network facts``: every fact of a network file with its sources and certainty.

A user can see what the network rests on and what is assumed: each country, participant,
correspondent link, swap line, FX provider and payment-service provider (its business in each
country and its settlement banks), whether the reference marks it uncertain, its note, and the
sources it cites (keys resolved to their URLs from the file's ``sources`` table).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sco_settle.network.model import Network, PaymentServiceProvider


@dataclass(frozen=True)
class Fact:
    """One entry of the network file, as the ``facts`` command lists it."""

    section: str  # countries, participants, correspondent_links, swap_lines, fx_providers,
    # payment_service_providers
    subject: str  # what the entry is about, e.g. "UCBAINBB holds INR for GAZPRUMM"
    countries: tuple[str, ...]
    uncertain: bool
    note: str
    sources: tuple[str, ...]  # "key: URL"


def facts(network: Network) -> list[Fact]:
    """Every entry of ``network`` as a ``Fact``, in file order."""
    cites = network.sources

    def sourced(keys: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f"{key}: {cites[key]}" for key in keys)

    def country(bic: str) -> str:
        return network.participant(bic).country

    found = [
        Fact("countries", f"{c.code} {c.name} ({c.sco_status.value}, {c.currency})", (c.code,),
             c.uncertain, c.note or "", sourced(c.sources))
        for c in network.countries
    ]  # fmt: skip
    found += [
        Fact("participants", f"{p.bic} {p.name} ({p.kind.value})", (p.country,),
             p.uncertain, p.note or "", sourced(p.sources))
        for p in network.participants
    ]  # fmt: skip
    found += [
        Fact("correspondent_links", f"{link.holder} holds {link.currency} for {link.owner}",
             (country(link.holder), country(link.owner)), link.uncertain, link.note or "",
             sourced(link.sources))
        for link in network.correspondent_links
    ]  # fmt: skip
    found += [
        Fact("swap_lines", f"{line.central_banks[0]} - {line.central_banks[1]} swap line"
             f" (last signed {line.last_signed}, {line.tenor_years} y; {line.status})",
             tuple(country(bic) for bic in line.central_banks), line.uncertain,
             line.note or "", sourced(line.sources))
        for line in network.swap_lines
    ]  # fmt: skip
    found += [
        Fact("fx_providers", f"{p.bic} deals {', '.join(p.pairs)} ({p.role.value}) for"
             f" {', '.join(p.clients) if p.clients is not None else 'any bank'}",
             (country(p.bic), *(p.clients or ())), p.uncertain, p.note or "", sourced(p.sources))
        for p in network.fx_providers
    ]  # fmt: skip
    for psp in network.payment_service_providers:
        found += _psp_facts(network, psp, sourced)
    return found


def _psp_facts(
    network: Network,
    psp: PaymentServiceProvider,
    sourced: Callable[[tuple[str, ...]], tuple[str, ...]],
) -> list[Fact]:
    """A payment-service provider, its business in each country and its settlement banks."""
    section = "payment_service_providers"
    countries = tuple(dict.fromkeys([psp.country, *(op.country for op in psp.operations)]))
    found = [
        Fact(section, f"{psp.id}: {psp.name} ({psp.channel.value}; {psp.operator})", countries,
             psp.uncertain, psp.note or "", sourced(psp.sources))
    ]  # fmt: skip
    for op in psp.operations:
        dates = "".join(
            f" {word} {date}" for word, date in (("since", op.since), ("until", op.until)) if date
        )
        partners = f" (with {', '.join(op.partners)})" if op.partners else ""
        subject = f"{psp.name} in {op.country}: {op.status.value}{dates}{partners}"
        found.append(
            Fact(section, subject, (op.country,), op.uncertain, op.note or "", sourced(op.sources))
        )
    for bank in psp.settlement_banks:
        role = "principal " if psp.principal_bank(bank.currency) == bank.bic else ""
        participant = network.participant(bank.bic)
        subject = f"{psp.name} settles {bank.currency} at {role}bank {bank.bic} {participant.name}"
        found.append(
            Fact(section, subject, (participant.country,), bank.uncertain, bank.note or "",
                 sourced(bank.sources))
        )  # fmt: skip
    return found


def register(app: typer.Typer) -> None:
    """Add the ``network`` command group (``network facts``) to ``app``."""
    group = typer.Typer(help="What a network file holds, and where each fact comes from.")
    group.command("facts")(list_facts)
    app.add_typer(group, name="network")


def list_facts(
    network: Annotated[str, typer.Option(help='Network name ("sco") or a YAML file.')] = "sco",
    country: Annotated[
        str | None, typer.Option(help="Only facts about this country (ISO 3166 alpha-2).")
    ] = None,
    uncertain: Annotated[bool, typer.Option(help="Only facts marked uncertain.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List the network's facts with their sources and certainty (uncertain items flagged)."""
    from sco_settle.network import load_network

    chosen = [
        fact
        for fact in facts(load_network(network))
        if (country is None or country.upper() in fact.countries)
        and (not uncertain or fact.uncertain)
    ]
    if as_json:
        for fact in chosen:
            typer.echo(json.dumps(asdict(fact), ensure_ascii=False))
        return
    table = Table(title=f"{len(chosen)} facts", show_lines=True)
    for column in ("section", "fact", "certainty", "sources and note"):
        table.add_column(column)
    for fact in chosen:
        detail = "\n".join([*fact.sources, *([fact.note] if fact.note else [])])
        certainty = "uncertain" if fact.uncertain else ("sourced" if fact.sources else "-")
        table.add_row(fact.section, fact.subject, certainty, detail or "(no source cited)")
    Console(width=160).print(table)
