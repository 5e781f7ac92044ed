"""``AccountKey``: one value for an account's name, whose text form is persisted.

The text form is hashed into ledger account ids (``network.account_id_for_key``) and stored as
account refs, so ``str(key)`` must stay byte-identical to the f-strings it replaced.
"""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sco_settle.domain.account_key import AccountKey, AccountKeyError, AccountKeyKind

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

bics = st.builds(
    lambda prefix, country, location, branch: prefix + country + location + branch,
    st.text(_ALNUM, min_size=4, max_size=4),
    st.text(_LETTERS, min_size=2, max_size=2),
    st.text(_ALNUM, min_size=2, max_size=2),
    st.one_of(st.just(""), st.text(_ALNUM, min_size=3, max_size=3)),
)
currencies = st.text(_LETTERS, min_size=3, max_size=3)
_SIMPLE = [k for k in AccountKeyKind if not k.has_counterparty]


@st.composite
def account_keys(draw: st.DrawFn) -> AccountKey:
    kind = draw(st.sampled_from(list(AccountKeyKind)))
    counterparty = draw(bics) if kind.has_counterparty else None
    return AccountKey(kind, draw(bics), draw(currencies), counterparty)


@given(account_keys())
def test_parse_inverts_str(key: AccountKey) -> None:
    assert AccountKey.parse(str(key)) == key
    assert hash(AccountKey.parse(str(key))) == hash(key)
    assert repr(key) == f"AccountKey.parse({str(key)!r})"


@given(bics, bics, currencies)
def test_text_forms_are_the_legacy_f_strings(first: str, second: str, code: str) -> None:
    # Each f-string is copied from the code that built keys before ``AccountKey``.
    assert str(AccountKey.settlement(first, code)) == f"settlement:{first}:{code}"
    assert str(AccountKey.issuance(first, code)) == f"issuance:{first}:{code}"
    assert str(AccountKey.clearing(first, code)) == f"clearing:{first}:{code}"
    assert str(AccountKey.liquidity(first, code)) == f"liquidity:{first}:{code}"
    assert str(AccountKey.fee(first, code)) == f"fee:{first}:{code}"
    # network.model: vostro_key(holder_bic, owner_bic, currency_code), where the link's
    # "holder" keeps the account (the servicer) and its "owner" holds the money.
    assert str(AccountKey.vostro(first, second, code)) == f"vostro:{first}:{second}:{code}"
    assert str(AccountKey.swap_line(first, second, code)) == f"swap-line:{first}:{second}:{code}"


def test_fields_name_the_owner_and_the_counterparty() -> None:
    vostro = AccountKey.vostro("BKCHCNBJ", "HSBKKZKX", "CNY")
    assert (vostro.kind, vostro.owner, vostro.counterparty, vostro.currency) == (
        AccountKeyKind.VOSTRO,
        "HSBKKZKX",
        "BKCHCNBJ",
        "CNY",
    )
    line = AccountKey.swap_line("NBRKKZKX", "PBOCCNBJ", "CNY")
    assert (line.owner, line.counterparty) == ("NBRKKZKX", "PBOCCNBJ")
    settlement = AccountKey.settlement("HSBKKZKX", "KZT")
    assert (settlement.owner, settlement.counterparty) == ("HSBKKZKX", None)
    assert AccountKey.parse("settlement:HSBKKZKX:KZT") == settlement
    assert {settlement: 1}[AccountKey.settlement("HSBKKZKX", "KZT")] == 1


def test_a_key_is_frozen_and_slotted() -> None:
    key = AccountKey.settlement("HSBKKZKX", "KZT")
    with pytest.raises(AttributeError):
        key.owner = "KCJBKZKX"  # type: ignore[misc]
    assert not hasattr(key, "__dict__")
    assert pickle.loads(pickle.dumps(key)) == key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "unknown kind ''"),
        ("settlement", "a settlement key has 3 parts"),
        ("nostro:HSBKKZKX:KZT", "unknown kind 'nostro'"),
        ("Settlement:HSBKKZKX:KZT", "unknown kind 'Settlement'"),
        ("settlement:HSBKKZKX", "a settlement key has 3 parts separated by ':', not 2"),
        ("settlement:HSBKKZKX:KZT:", "a settlement key has 3 parts separated by ':', not 4"),
        ("vostro:BKCHCNBJ:HSBKKZKX", "a vostro key has 4 parts separated by ':', not 3"),
        ("swap-line:NBRKKZKX:CNY", "a swap-line key has 4 parts"),
        ("settlement:hsbkkzkx:KZT", "owner 'hsbkkzkx' is not an upper-case BIC"),
        ("settlement:HSBKKZKX1:KZT", "owner 'HSBKKZKX1' is not an upper-case BIC"),
        ("settlement: HSBKKZKX:KZT", "owner ' HSBKKZKX' is not an upper-case BIC"),
        ("settlement:HSBKKZKX:kzt", "currency 'kzt' is not three upper-case letters"),
        ("settlement:HSBKKZKX:KZ", "currency 'KZ' is not three upper-case letters"),
        ("vostro:BKCHCNBJ::CNY", "owner '' is not an upper-case BIC"),
        ("vostro::HSBKKZKX:CNY", "counterparty '' is not an upper-case BIC"),
        ("opening:settlement:HSBKKZKX:KZT", "unknown kind 'opening'"),
    ],
)
def test_parse_refuses_malformed_keys(text: str, message: str) -> None:
    with pytest.raises(AccountKeyError, match=message.replace("(", r"\(")) as caught:
        AccountKey.parse(text)
    assert isinstance(caught.value, ValueError)
    assert repr(text) in str(caught.value)


def test_the_constructor_keeps_the_counterparty_rule() -> None:
    with pytest.raises(AccountKeyError, match="settlement key has no counterparty"):
        AccountKey(AccountKeyKind.SETTLEMENT, "HSBKKZKX", "KZT", "BKCHCNBJ")
    with pytest.raises(AccountKeyError, match="counterparty None is not an upper-case BIC"):
        AccountKey(AccountKeyKind.VOSTRO, "HSBKKZKX", "KZT")
    with pytest.raises(AccountKeyError, match="kind must be an AccountKeyKind"):
        AccountKey("settlement", "HSBKKZKX", "KZT")  # type: ignore[arg-type]
    with pytest.raises(AccountKeyError, match="an account key is text, got bytes"):
        AccountKey.parse(b"settlement:HSBKKZKX:KZT")  # type: ignore[arg-type]


@given(st.sampled_from(_SIMPLE), bics, currencies, st.text(max_size=3))
def test_nothing_can_be_appended_to_a_key(
    kind: AccountKeyKind, bic: str, code: str, tail: str
) -> None:
    text = f"{kind.value}:{bic}:{code}{tail}"
    if tail:
        with pytest.raises(AccountKeyError):
            AccountKey.parse(text)
    else:
        assert str(AccountKey.parse(text)) == text
