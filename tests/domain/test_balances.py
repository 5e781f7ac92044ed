"""``Balances``: an account's counters, limit and flags, and the quantities derived from them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sco_settle.domain.account import Account, AccountFlags
from sco_settle.domain.balances import Balances

counters = st.integers(min_value=0, max_value=10**15)


@given(counters, counters, counters, counters, counters)
def test_derived_quantities(dp: int, dpo: int, cp: int, cpo: int, limit: int) -> None:
    balances = Balances(dp, dpo, cp, cpo, limit)
    assert balances.counters == (dp, dpo, cp, cpo)
    assert balances.posted_minor == cpo - dpo
    assert balances.available_minor == cpo - dpo - dp  # Pending credits do not count.
    assert balances.headroom_minor == balances.available_minor + limit
    assert balances.drawn_minor == max(dpo + dp - cpo, 0)
    assert balances.drawn_minor >= 0
    assert balances.drawn_minor == 0 or balances.available_minor == -balances.drawn_minor


def test_a_swap_line_draw() -> None:
    # A swap line of 1,000 is drawn 300 (posted) and 50 more (reserved); 20 was repaid.
    line = Balances(debits_pending=50, debits_posted=300, credits_posted=20, credit_limit=1_000)
    assert line.drawn_minor == 330
    assert line.headroom_minor == 670


def test_flags_by_name() -> None:
    constrained = Balances(flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.HISTORY)
    assert constrained.debits_must_not_exceed_credits
    assert not constrained.credits_must_not_exceed_debits
    assert constrained.history
    mirrored = Balances(flags=AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
    assert mirrored.credits_must_not_exceed_debits
    assert not mirrored.debits_must_not_exceed_credits
    assert not Balances().history


class _State:
    """The attributes the ledger's ``AccountState`` has."""

    debits_pending, debits_posted, credits_pending, credits_posted = 1, 2, 3, 40
    credit_limit = 7
    flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


def test_from_a_live_account_and_from_an_account_with_counters() -> None:
    expected = Balances(1, 2, 3, 40, 7, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    assert Balances.of(_State()) == expected
    account = Account(1, "HSBKKZKX", "KZT", "settlement", flags=2, credit_limit=7)
    assert Balances.of_account(account, (1, 2, 3, 40)) == expected
    assert isinstance(Balances.of(_State()).flags, AccountFlags)


def test_counters_are_checked() -> None:
    with pytest.raises(AssertionError):
        Balances(debits_pending=-1)
    with pytest.raises(AssertionError):
        Balances(credits_posted=True)
    with pytest.raises(AttributeError):
        Balances().credit_limit = 5  # type: ignore[misc]
