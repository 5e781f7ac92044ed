"""The comparison's measures on hand-made workloads whose bounds are computed by hand."""

from __future__ import annotations

from fractions import Fraction

from sco_settle.payments.model import AmountType, Payment, PaymentStatus
from sco_settle.sim.calibration import Rates
from sco_settle.sim.measures import Bounds, Liquidity, Scope, liquidity_used, workload_bounds
from sco_settle.sim.run import EPOCH_NS, NS_PER_SECOND, Final, SimOptions, SimResult
from sco_settle.sim.workload import CROSS_BORDER, DOMESTIC, SimPayment

A, B, C = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ"  # A and B in Kazakhstan, C in China
RATES = Rates({"KZT": Fraction(70)}, Fraction(7))  # 70 KZT per CNY (an assumption of the test)


def sim(number: int, payer: str, payee: str, amount: int, code: str, to: str, second: int):
    payment = Payment(f"P{number}", payer, payee, amount, code, to)
    kind = DOMESTIC if payer[4:6] == payee[4:6] else CROSS_BORDER
    return SimPayment(payment, 0, second, kind, payer[4:6], payee[4:6], "x", "g", 0)


# One day, in arrival order. Positions (CNY unless said), each payment alone at its arrival:
#   1 A->B 100 CNY           A -100           B +100
#   2 B->C  70 CNY                            B  +30            C +70
#   3 C->A 3,500 KZT = 50 CNY  A -50                            C KZT -3,500
#   4 A->C  40 CNY           A -90                              C +110
# Upper bound: CNY A 100 (its deepest point, after payment 1); KZT C 3,500.
# Lower bound (end of day): CNY A 90; B and C are net receivers; KZT C 3,500.
WORKLOAD = [
    sim(1, A, B, 100, "CNY", "CNY", 10),
    sim(2, B, C, 70, "CNY", "CNY", 20),
    sim(3, C, A, 3_500, "KZT", "CNY", 30),
    sim(4, A, C, 40, "CNY", "CNY", 40),
]


def test_bounds_by_hand_on_three_banks():
    bounds = workload_bounds(reversed(WORKLOAD), RATES, Scope.ALL)  # any order in, arrival used
    assert bounds == {
        "CNY": Bounds(gross_minor=210, lower_minor=90, upper_minor=100),
        "KZT": Bounds(gross_minor=3_500, lower_minor=3_500, upper_minor=3_500),
    }


def test_bounds_per_scope_count_only_that_scopes_payments():
    # Cross-border: payments 2, 3 and 4. A: +50 then -40 (never in debit); B: -70; C KZT -3,500.
    assert workload_bounds(WORKLOAD, RATES, Scope.CROSS_BORDER) == {
        "CNY": Bounds(gross_minor=110, lower_minor=70, upper_minor=70),
        "KZT": Bounds(gross_minor=3_500, lower_minor=3_500, upper_minor=3_500),
    }
    # Domestic: payment 1 alone.
    assert workload_bounds(WORKLOAD, RATES, Scope.DOMESTIC) == {
        "CNY": Bounds(gross_minor=100, lower_minor=100, upper_minor=100)
    }


def test_a_fixed_received_amount_costs_its_mid_equivalent():
    payment = Payment(
        "R1", C, A, 20, "KZT", "CNY", amount_type=AmountType.RECEIVE
    )  # A receives CNY 0.20; C pays KZT 14.00
    received = SimPayment(payment, 0, 5, CROSS_BORDER, "CN", "KZ", "x", "g", 0)
    assert workload_bounds([received], RATES, Scope.ALL)["KZT"] == Bounds(1_400, 1_400, 1_400)


def result_of(order: list[int], *, together: bool) -> SimResult:
    """A run that settled the payments numbered ``order`` in that order: each alone (gross),
    or all in one chain (one netting cycle)."""
    finals = {}
    for position, number in enumerate(order):
        payment_id = f"P{number}"
        at_ns = EPOCH_NS + (100 + position) * NS_PER_SECOND
        chain = 1 if together else 1 + position
        route = ("a/CNY", "b/CNY")
        finals[payment_id] = Final(
            PaymentStatus.SETTLED, "", at_ns, chain, 0, route, 0, alone=not together
        )
    for sim_payment in WORKLOAD:
        payment_id = sim_payment.payment.payment_id
        if payment_id not in finals:
            finals[payment_id] = Final(PaymentStatus.REJECTED, "TM01", EPOCH_NS, 0, 0, ())
    return SimResult(
        SimOptions(),
        Fraction(1),
        WORKLOAD,
        finals,
        [f"P{number}" for number in order],
        [],
        {},
        [],
        True,
        "",
        {},
    )


def test_gross_settlement_in_arrival_order_uses_the_upper_bound():
    used = liquidity_used(result_of([1, 2, 3, 4], together=False), RATES, Scope.ALL)
    assert used["CNY"] == Liquidity(gross_minor=210, net_minor=90, used_minor=100, upper_minor=100)


def test_one_netting_cycle_uses_the_lower_bound():
    used = liquidity_used(result_of([1, 2, 3, 4], together=True), RATES, Scope.ALL)
    assert used["CNY"] == Liquidity(gross_minor=210, net_minor=90, used_minor=90, upper_minor=100)


def test_a_late_incoming_payment_can_push_a_payer_past_the_upper_bound():
    # C's payment to A (3) settles last: A is 140 in debit before it arrives. So a mode that
    # delays incoming payments can use more than the upper bound (documented in measures).
    used = liquidity_used(result_of([1, 2, 4, 3], together=False), RATES, Scope.ALL)
    assert used["CNY"].used_minor == 140 > 100


def test_a_settled_subset_has_its_own_bounds():
    # Only payments 1 and 2 settled: A -100 (its own bounds 100 and 100), B +100 -70.
    used = liquidity_used(result_of([1, 2], together=False), RATES, Scope.ALL)
    assert used == {
        "CNY": Liquidity(gross_minor=170, net_minor=100, used_minor=100, upper_minor=100)
    }


def test_payments_of_one_batch_settled_gross_count_one_after_another():
    # The ledger gives every payment of one batch the same ``settled_at``; gross ones are alone.
    result = result_of([1, 2, 3, 4], together=False)
    same_chain = {
        pid: Final(f.status, f.reason, f.at_ns, 7, 0, f.route, 0, alone=True)
        for pid, f in result.finals.items()
    }
    result.finals = same_chain
    assert liquidity_used(result, RATES, Scope.ALL)["CNY"].used_minor == 100
