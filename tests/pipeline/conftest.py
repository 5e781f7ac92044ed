from __future__ import annotations

import pytest

from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network as _install_network
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.journal import PaymentJournal
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.storage import SqliteStore


class SimClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000 * 10**9

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 10**9)


@pytest.fixture(scope="session")
def network():
    return load_network("sco")


@pytest.fixture(scope="session")
def view(network):
    return NetworkView(network, load_rates())


@pytest.fixture
def make_engine(tmp_path, view):
    created = []

    def make(settings: EngineSettings | None = None, **kwargs):
        clock = SimClock()
        ledger = Ledger(SqliteStore(tmp_path / f"p{len(created)}.db"), clock)
        _install_network(ledger, view.network)
        engine = PaymentEngine(
            ledger, view, PaymentJournal(":memory:"), settings or EngineSettings(), **kwargs
        )
        engine.clock = clock
        created.append(engine)
        return engine

    yield make
    for engine in created:
        engine.ledger.close()


def balance(engine, key):
    state = engine.ledger.lookup_account(engine.view.account_id(key))
    return state.credits_posted - state.debits_posted - state.debits_pending
