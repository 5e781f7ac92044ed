"""Swap lines as agreements drawn in tranches (``payments/swap_lines.py``): what may be drawn,
when, how much, and what repayment and rollover book."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.network.model import AgreementStatus
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.swap_lines import (
    DrawRefused,
    SwapLineDesk,
    TrancheState,
    TrancheTerms,
    add_months,
    agreement,
)
from sco_settle.storage import MemoryStore, SqliteStore

CBR, PBOC, NBK, SBP = "CBRFRUMM", "PBOCCNBJ", "NBRKKZKX", "SBPPPKKA"
DAY = dt.date(2026, 12, 7)
RATE = Decimal("0.025")
NETWORK = load_network("sco")
RATES = load_rates()


def desk_on(store=None) -> SwapLineDesk:  # type: ignore[no-untyped-def]
    ledger = Ledger(store or MemoryStore(), clock=lambda: 1_796_000_000 * 10**9)
    if not ledger.accounts():
        install_network(ledger, NETWORK)
    return SwapLineDesk(ledger, NetworkView(NETWORK, RATES))


def balance(desk: SwapLineDesk, key: str) -> int:
    state = desk.ledger.lookup_account(desk.view.account_id(key))
    return state.credits_posted - state.debits_posted


def test_agreement_status_follows_signing_tenor_and_later_evidence() -> None:
    kz = agreement(NETWORK, NBK, PBOC).line
    assert kz.expiry == dt.date(2017, 12, 14)
    assert kz.status_on(dt.date(2016, 1, 1)) is AgreementStatus.IN_FORCE
    assert kz.status_on(DAY) is AgreementStatus.LAPSED
    ru = agreement(NETWORK, CBR, PBOC).line  # drawn for a year in 2023: in use after 2023-11-22
    assert ru.expiry == dt.date(2023, 11, 22)
    assert ru.status_on(DAY) is AgreementStatus.PRESUMED_RENEWED
    pk = agreement(NETWORK, SBP, PBOC).line  # active as of Apr 2025
    assert pk.status_on(DAY) is AgreementStatus.PRESUMED_RENEWED
    ae = agreement(NETWORK, "CBAUAEAA", PBOC).line  # renewed Nov 2023 for five years
    assert ae.status_on(DAY) is AgreementStatus.IN_FORCE


def test_a_drawing_on_a_lapsed_agreement_is_refused_and_changes_nothing() -> None:
    desk = desk_on()
    before = [(s.account.id, s.debits_posted, s.credits_posted) for s in desk.ledger.accounts()]
    with pytest.raises(DrawRefused) as refused:
        desk.draw(NBK, PBOC, 1_000_000_00, DAY, 3, RATE, RATES)
    assert refused.value.code == "agreement_lapsed"
    after = [(s.account.id, s.debits_posted, s.credits_posted) for s in desk.ledger.accounts()]
    assert after == before


def test_a_deployment_may_allow_lapsed_agreements() -> None:
    policy = NETWORK.swap_line_policy.model_copy(update={"draw_lapsed": True})
    network = NETWORK.model_copy(update={"swap_line_policy": policy})
    desk = desk_on()
    desk.network = network
    terms = desk.draw(NBK, PBOC, 1_000_000_00, DAY, 3, RATE, RATES)
    assert terms.principal_minor == 1_000_000_00


@pytest.mark.parametrize(
    ("amount", "months", "code"),
    [
        (0, 3, "amount_invalid"),
        (100, 4, "tenor_invalid"),
        (150_000_000_001_00, 3, "exceeds_agreed_size"),
    ],
)
def test_bad_drawings_are_refused_with_a_reason(amount: int, months: int, code: str) -> None:
    desk = desk_on()
    with pytest.raises(DrawRefused) as refused:
        desk.draw(CBR, PBOC, amount, DAY, months, RATE, RATES)
    assert refused.value.code == code


def test_unknown_size_cannot_be_drawn() -> None:
    with pytest.raises(DrawRefused) as refused:
        desk_on().draw(PBOC, SBP, 1_000_00, DAY, 3, RATE, RATES)  # no PKR size in any source
    assert refused.value.code == "size_unknown"


def test_utilisation_counts_gross_and_never_passes_the_agreed_size() -> None:
    desk = desk_on()
    size = agreement(NETWORK, CBR, PBOC).size_minor
    first = desk.draw(CBR, PBOC, size // 2, DAY, 3, RATE, RATES)
    desk.draw(CBR, PBOC, size - size // 2, DAY, 6, RATE, RATES)
    with pytest.raises(DrawRefused) as refused:
        desk.draw(CBR, PBOC, 1, DAY, 3, RATE, RATES)
    assert refused.value.code == "exceeds_agreed_size"
    state = desk.state(agreement(NETWORK, CBR, PBOC), DAY)
    assert state.drawn_minor == size and state.headroom_minor == 0
    assert [t.terms.principal_minor for t in state.tranches] == [size // 2, size - size // 2]
    assert state.tranches[0].terms.tranche_id == first.tranche_id


def test_a_tranche_is_repaid_with_interest_and_its_counter_value_returned() -> None:
    desk = desk_on()
    terms = desk.draw(CBR, PBOC, 1_000_000_000_00, DAY, 3, RATE, RATES)
    assert terms.maturity == dt.date(2027, 3, 7)
    # The counter-value is the principal at the PBOC's mid CNY/RUB quote, rounded up.
    assert terms.counter_minor == 11_111_111_000_00
    assert balance(desk, f"settlement:{PBOC}:RUB") == terms.counter_minor
    assert balance(desk, f"settlement:{CBR}:CNY") == terms.principal_minor
    # 90 days at 2.5 % ACT/360 on the counter-value RUB 11,111,111,000.00, paid in RUB.
    assert terms.interest_minor() == 69_444_443_75
    repaid = desk.repay(CBR, PBOC, terms.tranche_id, terms.maturity)
    assert repaid.state is TrancheState.REPAID
    assert balance(desk, f"swap-interest:{PBOC}:RUB") == 69_444_443_75
    assert balance(desk, f"settlement:{CBR}:CNY") == 0
    assert balance(desk, f"settlement:{PBOC}:RUB") == 0
    assert desk.state(agreement(NETWORK, CBR, PBOC), DAY).drawn_minor == 0
    with pytest.raises(DrawRefused) as again:
        desk.repay(CBR, PBOC, terms.tranche_id, terms.maturity)
    assert again.value.code == "tranche_repaid"


def drawn_and_partly_sold() -> tuple[SwapLineDesk, TrancheTerms]:
    """A CNY 1 bn tranche of the Bank of Russia, whose facility then sold CNY 1.00 of it."""
    desk = desk_on()
    terms = desk.draw(CBR, PBOC, 1_000_000_000_00, DAY, 3, RATE, RATES)
    facility = desk.view.account_id(f"settlement:{CBR}:CNY")
    sold = desk.view.account_id("settlement:BKCHCNBJ:CNY")
    assert desk.ledger.create_transfers([Transfer(5, facility, sold, 1_00)]) == ["ok"]
    return desk, terms


def test_a_repayment_the_facility_cannot_pay_is_refused_whole() -> None:
    """The facility sold some of the tranche's CNY: the principal is not there to repay."""
    desk, terms = drawn_and_partly_sold()
    with pytest.raises(DrawRefused) as refused:
        desk.repay(CBR, PBOC, terms.tranche_id, terms.maturity)
    assert refused.value.code == "insufficient_funds"
    assert balance(desk, f"settlement:{CBR}:CNY") == terms.principal_minor - 1_00
    assert balance(desk, f"swap-interest:{PBOC}:RUB") == 0


def test_a_rollover_repays_and_draws_again_in_one_chain() -> None:
    desk = desk_on()
    old = desk.draw(CBR, PBOC, 1_000_000_000_00, DAY, 3, RATE, RATES)
    new = desk.rollover(CBR, PBOC, old.tranche_id, old.maturity, 6, RATE, RATES)
    assert (new.value_date, new.maturity) == (old.maturity, dt.date(2027, 9, 7))
    state = desk.state(agreement(NETWORK, CBR, PBOC), old.maturity)
    assert [t.state for t in state.tranches] == [TrancheState.REPAID, TrancheState.OUTSTANDING]
    assert state.drawn_minor == old.principal_minor == new.principal_minor
    assert balance(desk, f"swap-interest:{PBOC}:RUB") == old.interest_minor()


def test_a_rollover_that_cannot_repay_changes_nothing() -> None:
    desk, old = drawn_and_partly_sold()
    with pytest.raises(DrawRefused):  # neither half happens
        desk.rollover(CBR, PBOC, old.tranche_id, old.maturity, 6, RATE, RATES)
    state = desk.state(agreement(NETWORK, CBR, PBOC), DAY)
    assert [t.state for t in state.tranches] == [TrancheState.OUTSTANDING]


def test_tranches_are_read_back_from_the_ledger_after_a_restart(tmp_path) -> None:
    path = tmp_path / "ledger.db"
    desk = desk_on(SqliteStore(path))
    terms = desk.draw(SBP, PBOC, 3_000_000_000_00, DAY, 12, Decimal("0.03"), RATES)
    desk.ledger.close()
    again = desk_on(SqliteStore(path))
    (found,) = again.state(agreement(NETWORK, SBP, PBOC), DAY).tranches
    assert found.terms == terms and found.state is TrancheState.OUTSTANDING
    again.ledger.close()


def test_interest_is_act_360_rounded_up_and_months_keep_the_day() -> None:
    terms = TrancheTerms("t", CBR, PBOC, 1_000_01, 1, DAY, add_months(DAY, 12), Decimal("0.01"))
    assert terms.maturity == dt.date(2027, 12, 7)
    # On the counter-value (1 minor unit): 365 days x 1 % / 360 = 0.0101 -> 1 (rounded up).
    assert terms.interest_minor() == 1
    big = TrancheTerms("t", CBR, PBOC, 1, 1_000_01, DAY, add_months(DAY, 12), Decimal("0.01"))
    # 365 days x 1 % / 360 on 100,001 minor units = 1,013.9 -> 1,014.
    assert big.interest_minor() == 1_014
    assert add_months(dt.date(2027, 1, 31), 1) == dt.date(2027, 2, 28)
