"""Consent (review D8): a bank's account carries only the payments it agreed to carry, and no
conversion creates, loses or hides money."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.payments.fx import Rate, RateTable
from sco_settle.payments.plan import kept_by_converter, plan_route
from sco_settle.payments.routing import (
    Consent,
    CorrespondentAccount,
    ExclusionReason,
    FxPoint,
    RouteStatus,
    RoutingGraph,
    SettlementAccount,
    enumerate_routes,
    find_routes,
)

D_BANK, HOLDER, SERVICER, PBOC, NBK, DEALER = (
    "BKCHCNBJ", "ICBKCNBJ", "HSBKKZKX", "PBOCCNBJ", "NBRKKZKX", "KCJBKZKX",
)  # fmt: skip
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def transit(forwarding: dict[str, set[str]] | None) -> RoutingGraph:
    """D_BANK pays SERVICER in CNY; the only way is HOLDER's CNY nostro at SERVICER."""
    return RoutingGraph.build(
        settlement_accounts=[
            SettlementAccount(D_BANK, PBOC, "CNY", 10**9),
            SettlementAccount(HOLDER, PBOC, "CNY", 10**9),
        ],
        correspondents=[CorrespondentAccount(HOLDER, SERVICER, "CNY", 10**9)],
        forwarding=forwarding,
    )


def test_nobodys_nostro_carries_a_payment_without_its_consent() -> None:
    rates = RateTable([])
    refused = find_routes(transit({}), D_BANK, SERVICER, 1_000, "CNY", "CNY", rates)
    assert refused.status is RouteStatus.NO_FEASIBLE_ROUTE
    assert {e.reason for e in refused.exclusions} == {ExclusionReason.NO_CONSENT}
    agreed = find_routes(transit({HOLDER: {D_BANK}}), D_BANK, SERVICER, 1_000, "CNY", "CNY", rates)
    assert agreed.status is RouteStatus.OK
    assert [str(node) for node in agreed.best.nodes] == [
        f"{D_BANK}/CNY", f"{PBOC}/CNY", f"{HOLDER}/CNY", f"{SERVICER}/CNY",
    ]  # fmt: skip
    # A graph built without consent rules (forwarding None) lets every bank forward.
    assert find_routes(transit(None), D_BANK, SERVICER, 1_000, "CNY", "CNY", rates).best
    # The brute force applies the same rules.
    assert not enumerate_routes(transit({}), D_BANK, SERVICER, 1_000, "CNY", "CNY", rates).routes


def dealer_graph(consent: Consent) -> RoutingGraph:
    """D_BANK (CNY) pays NBK's member SERVICER in KZT through DEALER, which holds both."""
    return RoutingGraph.build(
        settlement_accounts=[
            SettlementAccount(D_BANK, PBOC, "CNY", 10**15),
            SettlementAccount(DEALER, PBOC, "CNY", 10**15),
            SettlementAccount(DEALER, NBK, "KZT", 10**15),
            SettlementAccount(SERVICER, NBK, "KZT", 10**15),
        ],
        fx_points=[
            FxPoint(DEALER, "CNY", "KZT", 10**15, 0, DEALER, consent),
            FxPoint(DEALER, "KZT", "CNY", 10**15, 0, DEALER, consent),
        ],
        forwarding={},
    )


def test_an_fx_provider_converts_only_for_its_clients() -> None:
    rates = RateTable([Rate("CNY", "KZT", Decimal("70"), Decimal("71"), DEALER, AS_OF)])
    kazakh = Consent(agents=frozenset({DEALER}), countries=frozenset({"KZ"}))
    uzbek = Consent(agents=frozenset({DEALER}), countries=frozenset({"UZ"}))
    found = find_routes(dealer_graph(kazakh), D_BANK, SERVICER, 10_000, "CNY", "KZT", rates)
    assert found.status is RouteStatus.OK  # the payee's bank is Kazakh
    other = find_routes(dealer_graph(uzbek), D_BANK, SERVICER, 10_000, "CNY", "KZT", rates)
    assert ExclusionReason.NO_CONSENT in {e.reason for e in other.exclusions} and not other.routes


def _recording_lookup(keys: dict[int, AccountKey]) -> Callable[[AccountKey], int | None]:
    """Account ids for a plan, remembering which key each id names."""

    def lookup(key: AccountKey) -> int | None:
        if key.kind is AccountKeyKind.ISSUANCE:
            return None  # the dealer is no central bank: it issues nothing
        keys[len(keys) + 1] = key
        return len(keys)

    return lookup


@settings(max_examples=300, deadline=None)
@given(
    mid=st.decimals(Decimal("0.001"), Decimal("5000"), places=6),
    spread_bp=st.integers(0, 500),
    amount=st.integers(1, 10**14),
)
def test_a_conversion_conserves_value_to_the_minor_unit(
    mid: Decimal, spread_bp: int, amount: int
) -> None:
    """Random rates and amounts, both directions: the payer's amount is exactly what the
    provider keeps as liquidity plus its FX income; what it delivers is never worth more than
    what it received at mid; and every currency balances in the chain."""
    half = mid * spread_bp / 20_000
    bid, ask = (
        (mid - half).quantize(Decimal("0.000001")),
        (mid + half).quantize(Decimal("0.000001")),
    )
    if bid <= 0:
        return
    rates = RateTable([Rate("CNY", "KZT", bid, ask, DEALER, AS_OF)])
    graph = dealer_graph(Consent(anyone=True))
    for source, target in (("CNY", "KZT"), ("KZT", "CNY")):
        payer = D_BANK if source == "CNY" else SERVICER
        payee = SERVICER if source == "CNY" else D_BANK
        result = find_routes(graph, payer, payee, amount, source, target, rates)
        if result.best is None:
            continue  # rounds to zero
        legs = [leg for leg in result.best.legs if leg.source.participant == DEALER]
        run = tuple(leg for leg in legs if leg.kind.value == "fx")
        kept = kept_by_converter(run)
        assert 0 <= kept <= amount
        keys: dict[int, AccountKey] = {}
        lookup = _recording_lookup(keys)
        chain = plan_route(result.best, "p", lookup)
        moved: dict[AccountKey, int] = {}
        for transfer in chain:
            debit, credit = keys[transfer.debit_account], keys[transfer.credit_account]
            assert debit.currency == credit.currency  # each transfer stays in one currency
            moved[debit] = moved.get(debit, 0) - transfer.amount
            moved[credit] = moved.get(credit, 0) + transfer.amount
        dealer = AccountKey.settlement(DEALER, source)
        assert moved[dealer] == amount - kept  # its liquidity in the currency it bought
        assert moved.get(AccountKey.fx_income(DEALER, source), 0) == kept
        income = [t for t in chain if t.code == 16]
        assert sum(t.amount for t in income) == kept
        assert chain[0].amount == amount and chain[-1].amount == result.best.amount_delivered_minor
