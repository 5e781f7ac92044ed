"""The four fuzz targets: one input (bytes) in, nothing out, or an exception that is a finding.

Each target accepts exactly the documented refusals of its edge and treats anything else as a
finding: an exception of another type (a crash), a broken invariant (``ContractBroken``), or a
refused input that changed state. Hangs are caught by the runner (libFuzzer's ``-timeout``).

========  ==================================  ==============================================
target    edge                                documented refusals
========  ==================================  ==============================================
apply     ``sco-settle apply`` lines           ``BatchFormatError``, ``BatchTooLargeError``
          (``ledger/jsonl.py``) applied to an  (an error line); per-item result codes
          in-memory ledger
iso       ISO 20022 XML (``read_message``:     ``MessageRejectedError`` and its subclasses
          parse, XSD-validate, map)
network   network YAML (``load_network``)      ``NetworkError``
          installed into an in-memory ledger
api       API bodies: the request models,      pydantic ``ValidationError`` / JSON errors
          the routes' checks and the ledger    (422/400), ``ApiError`` below 500,
          service's writer                     ``BatchFormatError``, ``BatchTooLargeError``
========  ==================================  ==============================================

The first byte of an ``api`` input picks the body (``API_BODIES``); the rest is the JSON body.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydantic import BaseModel, ValidationError

from sco_settle.domain.account import Account
from sco_settle.domain.results import CreateAccountResult, CreateTransferResult
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BatchTooLargeError, Ledger
from sco_settle.ledger.jsonl import BatchFormatError, parse_batch
from sco_settle.messaging.iso20022 import MessageRejectedError, read_message
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.network.loader import NetworkError
from sco_settle.storage.memory import MemoryStore

if TYPE_CHECKING:
    from sco_settle.server.service import LedgerService

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"
ISO_SAMPLES = ROOT / "tests" / "iso20022" / "samples"
ISO_FAMILIES = ("pacs.008", "pacs.009", "pacs.004")  # The messages that move money.
LEDGER_JOURNAL_MAX = 20_000  # The apply target's ledger is rebuilt beyond this many transfers.


def scratch_folder(prefix: str) -> Path:
    """A new folder for a target's files: under ``$SCO_FUZZ_SCRATCH`` (``fuzz/run.py`` points it
    into its work folder and removes it afterwards), else in /dev/shm (memory), else in the
    system's temporary folder. The target's ``close`` removes it."""
    base = os.environ.get("SCO_FUZZ_SCRATCH") or ("/dev/shm" if Path("/dev/shm").is_dir() else "")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base or None))


class ContractBroken(AssertionError):
    """An input broke a promise of the edge: a refusal that changed state, a broken invariant."""


# ---------------------------------------------------------------------------------------------
# Ledger snapshots: what "nothing changed" compares.


@dataclass(frozen=True)
class LedgerSnapshot:
    balances: tuple[tuple[int, tuple[int, int, int, int]], ...]
    pending_open: frozenset[int]
    writes: int  # transfers stored (apply) or accounts published (the server's writer)


def ledger_snapshot(ledger: Ledger, store: MemoryStore) -> LedgerSnapshot:
    state = ledger.state
    return LedgerSnapshot(
        balances=tuple((key, account.balance_tuple()) for key, account in state.accounts.items()),
        pending_open=frozenset(state.pending_open),
        writes=store.count_transfers(),
    )


def service_snapshot(service: LedgerService) -> LedgerSnapshot:
    """What the server's readers see (``PublishedLedger``), safe to take outside the writer."""
    published = service.published
    return LedgerSnapshot(
        balances=tuple(published.balances.items()),
        pending_open=frozenset(service.ledger.state.pending_open),
        writes=len(published.accounts),
    )


def unchanged(before: LedgerSnapshot, after: LedgerSnapshot, what: str) -> None:
    if before != after:
        raise ContractBroken(f"{what} was refused but changed the ledger")


def stored_equals_state(ledger: Ledger, store: MemoryStore) -> None:
    """The committed balances are the in-memory ones, and debits equal credits per currency."""
    ledger.state.check_totals()
    for key, account in ledger.state.accounts.items():
        if store.balances.get(key) != account.balance_tuple():
            raise ContractBroken(f"account {key}: stored balance differs from the ledger's")


# ---------------------------------------------------------------------------------------------
# apply: the JSON-lines codec and the ledger behind ``sco-settle apply``.


class _Clock:
    """A deterministic ledger clock: one millisecond per reading."""

    def __init__(self) -> None:
        self.now = 1_800_000_000 * 10**9

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


def _seeded_ledger() -> tuple[Ledger, MemoryStore]:
    """A fresh in-memory ledger holding the accounts and transfers of the apply seed corpus."""
    store = MemoryStore()
    ledger = Ledger(store, _Clock())
    for path in sorted((CORPUS / "apply").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(BatchFormatError, BatchTooLargeError):
                _apply_line(ledger, line)
    return ledger, store


def _apply_line(
    ledger: Ledger, line: bytes
) -> list[CreateAccountResult] | list[CreateTransferResult]:
    """One line as ``sco-settle apply`` takes it (``cli/main.py``): parse, then apply."""
    kind, items = parse_batch(line)
    if kind == "accounts":
        return ledger.create_accounts(cast("list[Account]", items))
    return ledger.create_transfers(cast("list[Transfer]", items))


class ApplyTarget:
    def __init__(self) -> None:
        self.ledger, self.store = _seeded_ledger()

    def __call__(self, data: bytes) -> None:
        if self.store.count_transfers() > LEDGER_JOURNAL_MAX:
            self.ledger, self.store = _seeded_ledger()
        for number, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():  # As ``apply``: blank lines are skipped.
                self._line(line, f"line {number}")

    def _line(self, line: bytes, what: str) -> None:
        before = ledger_snapshot(self.ledger, self.store)
        try:
            results = _apply_line(self.ledger, line)
        except (BatchFormatError, BatchTooLargeError):
            unchanged(before, ledger_snapshot(self.ledger, self.store), what)
            return
        if all(result != "ok" for result in results):
            unchanged(before, ledger_snapshot(self.ledger, self.store), f"{what} (every item)")
        stored_equals_state(self.ledger, self.store)


# ---------------------------------------------------------------------------------------------
# iso: ISO 20022 XML, read and validated.


def iso_target(data: bytes) -> None:
    with contextlib.suppress(MessageRejectedError):
        read_message(data)


# ---------------------------------------------------------------------------------------------
# network: the network YAML, loaded from a file and installed into a fresh ledger.


class NetworkTarget:
    def __init__(self) -> None:
        self.folder = scratch_folder("sco-fuzz-network-")
        self.path = self.folder / "network.yaml"

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __call__(self, data: bytes) -> None:
        self.path.write_bytes(data)
        try:
            network = load_network(self.path)
        except NetworkError:
            return
        # A network the loader accepts must install (``NetworkInstallError`` would be a finding).
        store = MemoryStore()
        ledger = Ledger(store, _Clock())
        install_network(ledger, network)
        stored_equals_state(ledger, store)


# ---------------------------------------------------------------------------------------------
# api: request bodies, the routes' checks and the ledger service's writer (no HTTP).


@dataclass(frozen=True)
class ApiBody:
    name: str
    model: type[BaseModel] | None  # None: the transfer-batch codec (``ledger/jsonl.py``)
    submits: str  # "payments", "transfers" or "" (validation only)


def _api_bodies() -> tuple[ApiBody, ...]:
    from sco_settle.server import schemas

    return (
        ApiBody("payment", schemas.PaymentIn, "payments"),
        ApiBody("payment-batch", schemas.PaymentBatchIn, "payments"),
        ApiBody("transfer-batch", None, "transfers"),
        ApiBody("payment-return", schemas.PaymentReturnIn, ""),
        ApiBody("payment-change", schemas.PaymentChange, ""),
        ApiBody("route-quote", schemas.QuoteIn, ""),
        ApiBody("fx-quote", schemas.FxQuoteIn, ""),
        ApiBody("cycle", schemas.CycleIn, ""),
        ApiBody("key-create", schemas.KeyCreate, ""),
        ApiBody("key-rotate", schemas.KeyRotate, ""),
    )


API_PARTICIPANT = "HSBKKZKX"  # Halyk Bank: KZT, with correspondents in CNY.


class ApiTarget:
    """A ledger service (the server's writer, on a SQLite file in a temporary directory, with
    the SCO network) and a participant's principal; bodies go through what the routes do."""

    def __init__(self) -> None:
        from sco_settle.network import load_network as load
        from sco_settle.payments.network_view import load_rates
        from sco_settle.server import ServerConfig, parse_database_url
        from sco_settle.server.auth import Principal
        from sco_settle.server.keys import Role
        from sco_settle.server.routes import payments, transfers  # noqa: F401 - instrumented now
        from sco_settle.server.service import LedgerService

        self.folder = scratch_folder("sco-fuzz-api-")
        config = ServerConfig(
            parse_database_url(f"sqlite:///{self.folder}/ledger.db"),
            tick_seconds=10.0**9,  # No expiries or queue retries between inputs.
            write_units_per_second=10.0**12,
            write_units_burst=2**62,
            log_level="WARNING",
        )
        self.bodies = _api_bodies()
        self.service = LedgerService(config, load("sco"), load_rates("sco"))
        self.service.start()
        self.principal = Principal("fuzz", API_PARTICIPANT, Role.PARTICIPANT, frozenset())

    def close(self) -> None:
        self.service.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __call__(self, data: bytes) -> None:
        if not data:
            return
        body = self.bodies[data[0] % len(self.bodies)]
        try:
            self._body(body, data[1:])
        except ValidationError:
            return  # 422 request_invalid
        except _api_refusals() as error:
            from sco_settle.server.errors import ApiError, api_error_for

            mapped = error if isinstance(error, ApiError) else api_error_for(error)
            if mapped is None or mapped.status >= 500:
                raise

    def _body(self, body: ApiBody, raw: bytes) -> None:
        if body.model is None:
            self._transfers(raw)
            return
        try:
            document = json.loads(raw)  # As FastAPI reads a JSON body.
        except (ValueError, RecursionError):
            return  # 422 (not JSON) or 400 (cannot be parsed)
        model = body.model.model_validate(document)
        if body.submits == "payments":
            self._payments(model)

    def _payments(self, model: BaseModel) -> None:
        from sco_settle.server.routes.payments import payment_from
        from sco_settle.server.schemas import PaymentBatchIn, PaymentIn

        bodies = [model] if isinstance(model, PaymentIn) else cast(PaymentBatchIn, model).payments
        payments = [payment_from(body, self.principal) for body in bodies]
        queue_empty = not self.service.engine.queue
        before = service_snapshot(self.service)
        outcomes = self.service.payments(payments, principal=self.principal).result(timeout=60)
        rejected = [outcome for outcome in outcomes if outcome.status == "rejected"]
        for outcome in rejected:
            if outcome.transfer_ids:
                raise ContractBroken(f"rejected payment {outcome.payment_id} has transfers")
        if queue_empty and len(rejected) == len(outcomes):
            unchanged(before, service_snapshot(self.service), "every payment")

    def _transfers(self, raw: bytes) -> None:
        from sco_settle.server.routes.transfers import refuse_engine_ids

        before = service_snapshot(self.service)
        try:
            kind, items = parse_batch(raw)
            if kind != "transfers":
                return  # 400 batch_format_invalid
            refuse_engine_ids(cast("list[Transfer]", items))
            future = self.service.transfers(self.principal, cast("list[Transfer]", items))
            results = future.result(timeout=60)
        except BaseException:
            unchanged(before, service_snapshot(self.service), "a transfer batch")
            raise
        if all(result != "ok" for result in results):
            unchanged(before, service_snapshot(self.service), "every transfer")


def _api_refusals() -> tuple[type[BaseException], ...]:
    from sco_settle.server.errors import ApiError

    return (ApiError, BatchFormatError, BatchTooLargeError)


# ---------------------------------------------------------------------------------------------
# Registry and seed corpora.


TARGETS: dict[str, Callable[[], Callable[[bytes], None]]] = {
    "apply": ApplyTarget,
    "iso": lambda: iso_target,
    "network": NetworkTarget,
    "api": ApiTarget,
}


def seeds(target: str) -> Iterator[tuple[str, bytes]]:
    """The seed corpus of a target: (name, bytes), from the repository's own samples."""
    if target == "iso":
        for folder in sorted(ISO_SAMPLES.iterdir()):
            if folder.name.startswith(ISO_FAMILIES):
                for path in sorted(folder.glob("*.xml")):
                    yield f"{folder.name}__{path.name}", path.read_bytes()
        example = ROOT / "examples" / "pacs008_kz_to_cn.xml"
        yield f"examples__{example.name}", example.read_bytes()
        return
    names = [body.name for body in _api_bodies()] if target == "api" else []
    for path in sorted((CORPUS / target).iterdir()):
        if not path.is_file() or path.suffix == ".md":
            continue
        if target == "api":  # "<body>__<what>.json": the selector byte, then the body.
            selector = names.index(path.name.split("__")[0])
            yield path.name, bytes([selector]) + path.read_bytes()
        else:
            yield path.name, path.read_bytes()
