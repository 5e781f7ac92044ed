"""``EngineSettings.liquidity_saving``: the switch the comparison's "LSM off" run uses."""

from __future__ import annotations

import pytest

from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.balances import Balances
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.model import Payment, PaymentStatus
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.storage import MemoryStore
from sco_settle.storage.payment_records_memory import MemoryPaymentRecords

NOW_NS = 1_800_000_000 * 10**9  # a fixed clock: nothing here times out
BANKS = ("HSBKKZKX", "KCJBKZKX", "BKCHKZKA")  # three Kazakh banks with KZT settlement accounts


def gridlocked(settings: EngineSettings) -> tuple[PaymentEngine, list[Payment]]:
    """Three banks with empty KZT accounts and a queued cycle A->B->C->A that no payment can
    start alone: only settling them together (the LSM) clears it."""
    ledger = Ledger(MemoryStore(), lambda: NOW_NS)
    network = load_network("sco")
    install_network(ledger, network)
    engine = PaymentEngine(
        ledger, NetworkView(network, load_rates()), MemoryPaymentRecords(), settings
    )
    drain = []
    for number, bank in enumerate(BANKS):
        account = engine.view.account_id(AccountKey.settlement(bank, "KZT"))
        assert account is not None
        state = ledger.lookup_account(account)
        assert state is not None
        held = Balances.of(state).available_minor
        drain.append(Transfer(900 + number, account, engine.clearing["KZT"], held))
    assert ledger.create_transfers(drain) == ["ok"] * 3
    cycle = [
        Payment(f"g{n}", payer, payee, 300, "KZT", "KZT")
        for n, (payer, payee) in enumerate(zip(BANKS, BANKS[1:] + BANKS[:1], strict=True))
    ]
    assert [o.status for o in engine.submit_many(cycle)] == [PaymentStatus.QUEUED] * 3
    return engine, cycle


@pytest.mark.parametrize(("saving", "expected"), [(True, "settled"), (False, "queued")])
def test_a_gridlock_clears_only_with_the_liquidity_saving_mechanism(saving, expected):
    engine, cycle = gridlocked(EngineSettings(liquidity_saving=saving))
    engine.run_cycle()
    assert {engine.outcome(p.payment_id).status.value for p in cycle} == {expected}
    assert engine.stats.settled_by_gridlock == (3 if saving else 0)
    engine.ledger.state.check_totals()
