"""The direction of imports between sco_settle's packages, checked over the whole tree.

The layers, lowest first (docs/ARCHITECTURE.md draws and explains them)::

    domain                      pure values: ids, money, accounts, transfers, result codes
    ledger      -> domain       the deterministic state machine and its Store port
    storage     -> ledger       adapters of the ledger's Store port and of the payment records
                                port (payments/records.py, payments/model.py: nothing else of
                                payments)
    network     -> ledger       the YAML network, installed into a ledger
    messaging   -> domain       ISO 20022 read/write, nothing of the ledger
    payments    -> network      routing, FX, plans, the engine; no I/O adapters
    gateway     -> payments, messaging
    server, sim, dst -> everything below them (composition roots; dst is the deterministic
                                simulation tests' harness)
    cli         -> everything (the command line also starts the server)

Every import counts: at module level, inside a function (a lazy import hides a dependency, it
does not remove it), under ``TYPE_CHECKING``, absolute or relative, and
``importlib.import_module("sco_settle...")`` with a literal name.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SOURCE = REPOSITORY / "src" / "sco_settle"
ARCHITECTURE_DOC = REPOSITORY / "docs" / "ARCHITECTURE.md"

# The payment records port (payments/records.py, payments/quote_records.py) and the values it
# speaks in (payments/model.py):
# the only part of payments that storage, its adapter, may see. Both are pure (see below).
PAYMENT_RECORDS_PORT = ("payments.records", "payments.model", "payments.quote_records")

_BELOW_SERVER = (
    "domain", "ledger", "audit", "storage", "network", "messaging", "payments", "gateway",
    "events",
)  # fmt: skip

# What each package may import besides itself: packages ("payments") or single modules
# ("payments.store"). The root entry is sco_settle/__init__.py and __main__.py.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "domain": (),
    "ledger": ("domain",),
    # The audit chain: pure (chain, ledger_rows, records, verify) and its SQL, which the stores
    # call inside their own transactions.
    "audit": ("domain", "ledger"),
    "storage": ("domain", "ledger", "audit", *PAYMENT_RECORDS_PORT),
    # The event stream: reads the audit chain (the outbox) and the ledger rows, publishes to NATS.
    "events": ("domain", "ledger", "audit", "storage"),
    "network": ("domain", "ledger"),
    "messaging": ("domain",),
    "payments": ("domain", "ledger", "network"),
    "gateway": ("domain", "ledger", "network", "payments", "messaging"),
    "server": _BELOW_SERVER,
    "sim": _BELOW_SERVER,
    # Deterministic simulation testing: a composition root like sim. The server's idempotency
    # records reach it through a port that cli/dst.py fills in, so it never imports server.
    "dst": _BELOW_SERVER,
    "cli": (*_BELOW_SERVER, "server", "sim", "dst"),
    "reference_data": (),  # YAML data only.
    "": ("cli",),
}

# Imports that break the rule today, each with the reason it is tolerated. Keep it empty: a
# violation is fixed by moving code, not by adding a line here (nor by making the import lazy).
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True, slots=True)
class Import:
    line: int
    target: str  # Dotted, without the leading "sco_settle."; "" is the package itself.


def imports_of(source: str, module: str) -> Iterator[Import]:
    """Every import of sco_settle in ``source``, the text of the dotted ``module``."""
    # A relative import counts from the module's package; ``a.b.__init__`` sits in ``a.b``.
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _ours(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield from _ours(node.lineno, f"{base}.{alias.name}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield from _ours(node.lineno, node.args[0].value)


def _ours(line: int, dotted: str) -> Iterator[Import]:
    if dotted == "sco_settle" or dotted.startswith("sco_settle."):
        yield Import(line, dotted.removeprefix("sco_settle").removeprefix("."))


def layer_of(target: str) -> str:
    return target.split(".")[0]


def allowed(layer: str, target: str) -> bool:
    if target == "" or (layer != "" and layer_of(target) == layer):
        return True
    return any(target == entry or target.startswith(f"{entry}.") for entry in MAY_IMPORT[layer])


def source_files() -> Iterator[tuple[Path, str, str]]:
    """(path, dotted module, layer) of every module of the package."""
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        module = ".".join(("sco_settle", *parts))
        layer = parts[0] if len(parts) > 1 else ""
        yield path, module, layer


def violations() -> list[str]:
    found = []
    for path, module, layer in source_files():
        where = path.relative_to(SOURCE.parent.parent)
        for imported in imports_of(path.read_text(encoding="utf-8"), module):
            key = (str(path.relative_to(SOURCE)), layer_of(imported.target))
            if not allowed(layer, imported.target) and key not in KNOWN_VIOLATIONS:
                found.append(
                    f"{where}:{imported.line}: {layer or 'sco_settle'} imports"
                    f" sco_settle.{imported.target}"
                )
    return found


def test_every_import_follows_the_layers() -> None:
    found = violations()
    assert not found, "imports against the layering (tests/test_architecture.py):\n" + "\n".join(
        found
    )


def test_every_package_has_a_place_in_the_table() -> None:
    layers = {layer for _, _, layer in source_files()}
    assert layers <= set(MAY_IMPORT), (
        f"new package(s) {layers - set(MAY_IMPORT)}: add to MAY_IMPORT"
    )
    for layer, entries in MAY_IMPORT.items():
        for entry in entries:
            assert layer_of(entry) in MAY_IMPORT, (layer, entry)


def test_the_layers_form_no_cycle() -> None:
    depends = {
        layer: {layer_of(entry) for entry in entries} for layer, entries in MAY_IMPORT.items()
    }
    done: set[str] = set()

    def visit(layer: str, path: tuple[str, ...]) -> None:
        assert layer not in path, f"cycle in MAY_IMPORT: {' -> '.join((*path, layer))}"
        if layer in done:
            return
        for below in depends[layer]:
            visit(below, (*path, layer))
        done.add(layer)

    for layer in depends:
        visit(layer, ())


def test_only_the_cli_imports_the_server_and_only_the_entry_point_imports_the_cli() -> None:
    for layer, entries in MAY_IMPORT.items():
        imported = {layer_of(entry) for entry in entries}
        assert "server" not in imported or layer == "cli", layer
        assert "cli" not in imported or layer == "", layer


def test_the_payment_records_port_pulls_in_nothing_else_of_payments() -> None:
    # Storage may import the port; the port must not become a way to the engine.
    checked = set()
    for path, module, _ in source_files():
        if module.removeprefix("sco_settle.") not in PAYMENT_RECORDS_PORT:
            continue
        checked.add(module.removeprefix("sco_settle."))
        for imported in imports_of(path.read_text(encoding="utf-8"), module):
            assert imported.target.startswith(
                ("domain.", *(f"{m}." for m in PAYMENT_RECORDS_PORT))
            ), f"{path.name}:{imported.line} imports sco_settle.{imported.target}"
    assert checked == set(PAYMENT_RECORDS_PORT), "a port module moved: update PAYMENT_RECORDS_PORT"


def test_known_violations_are_still_violations() -> None:
    # An entry whose import has gone must go too, or the list only ever grows.
    seen = set()
    for path, module, layer in source_files():
        for imported in imports_of(path.read_text(encoding="utf-8"), module):
            if not allowed(layer, imported.target):
                seen.add((str(path.relative_to(SOURCE)), layer_of(imported.target)))
    assert set(KNOWN_VIOLATIONS) <= seen, set(KNOWN_VIOLATIONS) - seen


def test_the_walk_sees_lazy_relative_and_dynamic_imports() -> None:
    source = """
import json
import sco_settle.domain.money
from sco_settle.ledger import Ledger
from . import sibling
from ..storage.sqlite import SqliteStore
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from sco_settle.server.service import LedgerService

def later():
    from sco_settle.payments import engine
    importlib.import_module("sco_settle.cli.main")
"""
    targets = {(i.line, i.target) for i in imports_of(source, "sco_settle.payments.plan")}
    assert targets == {
        (3, "domain.money"),
        (4, "ledger.Ledger"),
        (5, "payments.sibling"),
        (6, "storage.sqlite.SqliteStore"),
        (9, "server.service.LedgerService"),
        (12, "payments.engine"),
        (13, "cli.main"),
    }
    assert not allowed("payments", "storage.sqlite.SqliteStore")
    assert not allowed("payments", "server.service.LedgerService")
    assert allowed("payments", "payments.sibling")
    assert allowed("payments", "ledger.Ledger")


def test_the_architecture_document_names_only_modules_that_exist() -> None:
    # docs/ARCHITECTURE.md cites modules by path (relative to src/sco_settle, or to the repository
    # for tests/ and docs/): a module that moves must take its citations along.
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    cited = set(re.findall(r"`([\w./*-]+(?:\.py|\.md|/\*?))`", text))
    assert len(cited) > 20, cited
    for path in sorted(cited):
        root = REPOSITORY if path.startswith(("tests/", "docs/", "src/")) else SOURCE
        assert list(root.glob(path.rstrip("/") or ".")), f"docs/ARCHITECTURE.md cites {path}"
    for layer in set(MAY_IMPORT) - {"", "reference_data"}:  # The entry point; YAML data.
        assert f"| `{layer}` |" in text, f"docs/ARCHITECTURE.md has no row for {layer}"
