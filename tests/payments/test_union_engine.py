"""The SCO clearing union as a settlement mode, through ``PaymentEngine`` on the real SQLite
store: bookings, swing limits and deferral with the payer told, one chain per cycle, interest,
recovery of a cycle, and the governance file."""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction

import pydantic
import pytest

from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.money import currency, is_currency
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import Ledger
from sco_settle.ledger.invariants import verify
from sco_settle.network import account_id_for_key, load_network
from sco_settle.network.install import install_network
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.model import AmountType, Payment, PaymentStatus, Reason
from sco_settle.payments.modes import Mode, mode_for
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.union import CODE_UNION_INTEREST, NS_PER_DAY, ClearingUnion, UnionBook
from sco_settle.payments.union_config import UnionConfig, load_union, parse_union
from sco_settle.payments.union_unit import unit_prices
from sco_settle.storage import MemoryStore, SqliteStore
from sco_settle.storage.payment_records_memory import MemoryPaymentRecords
from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

KZ_A, KZ_B, CN_A, RU_A, UZ_A = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ", "SABRRUMM", "NBFAUZ2X"
PBOC, NBK, CBR = "PBOCCNBJ", "NBRKKZKX", "CBRFRUMM"
START_NS = 1_800_000_000 * 10**9
_move_ids = itertools.count(20_000)  # the tests' own client transfers, below the engine's range


class Clock:
    def __init__(self) -> None:
        self.now = START_NS

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def view():
    return NetworkView(load_network("sco"), load_rates())


def union_engine(view, store=None, records=None, config: UnionConfig | None = None):
    """An engine in the union mode on ``store`` (memory by default), with ``config``."""
    view.invalidate()
    clock = Clock()
    ledger = Ledger(store or MemoryStore(), clock)
    install_network(ledger, view.network)
    engine = PaymentEngine(
        ledger, view, records or MemoryPaymentRecords(), EngineSettings(mode=Mode.UNION)
    )
    if config is not None:
        engine.mode = ClearingUnion(config)
    engine.clock = clock  # type: ignore[method-assign]
    return engine


def with_limits(limits: dict[str, str], **changes) -> UnionConfig:
    """The shipped union with some members' swing limits (major units of the unit) replaced."""
    shipped = load_union()
    members = tuple(
        m.model_copy(update={"swing_limit": Decimal(limits.get(m.central_bank, m.swing_limit))})
        for m in shipped.members
    )
    return shipped.model_copy(update={"members": members, **changes})


@pytest.fixture
def sqlite_engine(tmp_path, view):
    made = []

    def make(config: UnionConfig | None = None, name: str = "u.db"):
        path = tmp_path / name
        store = SqliteStore(path)  # The ledger's store first: it creates the database.
        records = SqlitePaymentRecords(path, durable=False)
        engine = union_engine(view, store, records, config)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.ledger.close()
        engine.records.close()


def pay(payment_id, debtor, creditor, amount, source, target, **extra):
    return Payment(payment_id, debtor, creditor, amount, source, target, **extra)


def balance(engine, key) -> int:
    state = engine.ledger.lookup_account(account_id_for_key(key))
    return state.credits_posted - state.debits_posted


def set_balance(engine, key, target_minor):
    """Move money between ``key`` and its currency's clearing account until it holds
    ``target_minor`` (a test's way to drain a bank)."""
    account_id = account_id_for_key(key)
    clearing = engine.clearing[key.currency]
    change = target_minor - balance(engine, key)
    debit, credit = (clearing, account_id) if change > 0 else (account_id, clearing)
    move = Transfer(next(_move_ids), debit, credit, abs(change))
    assert engine.ledger.create_transfers([move]) == ["ok"]


def positions(engine) -> dict[str, int]:
    book: UnionBook = engine.mode.book(engine)
    return {bic: book.position_minor(engine, bic) for bic in book.members}


def check_books(engine):
    """Debits equal credits in every currency and the unit, the journal replays to the
    balances, and in the unit the positions and the rounding account sum to zero."""
    engine.ledger.state.check_totals()
    report = verify(engine.ledger.store)
    assert report.ok, report.violation
    book = engine.mode.book(engine)
    assert sum(positions(engine).values()) + balance(engine, book.rounding_key) == 0
    audit = engine.audit()
    assert not audit.findings, audit.findings


def test_the_mode_is_registered_and_the_unit_is_a_currency_of_the_ledger_but_no_state_issues_it():
    assert mode_for("union").name == "union" and Mode("union") is Mode.UNION
    assert is_currency("XSC") and currency("XSC").minor_units == 4
    assert "XSC" not in load_network("sco").settlement_agents  # nobody may pay in it


def test_a_union_payment_settles_both_sides_through_the_central_banks_and_the_unit(sqlite_engine):
    engine = sqlite_engine()
    kz_before, cn_before = (
        balance(engine, AccountKey.settlement(KZ_A, "KZT")),
        balance(engine, AccountKey.settlement(CN_A, "CNY")),
    )
    held = engine.submit(pay("u1", KZ_A, CN_A, 1_000_000_00, "KZT", "CNY"))
    assert held.status is PaymentStatus.QUEUED and "clearing-union" in held.reason_text
    report = engine.run_cycle()
    assert (report.kind, report.settled, report.deferred) == ("union", 1, 0)
    outcome = engine.outcome("u1")
    assert outcome.status is PaymentStatus.SETTLED
    assert outcome.reason_text == f"settled in net cycle {report.number}"  # names its cycle
    assert outcome.route == (
        f"{KZ_A}/KZT",
        f"{NBK}/KZT",
        f"{NBK}/XSC",
        f"{PBOC}/XSC",
        f"{PBOC}/CNY",
        f"{CN_A}/CNY",
    )
    prices = unit_prices(load_union().unit, engine.view.rates_at(engine.clock()), ["KZT", "CNY"])
    expected = 1_000_000_00 * prices.per_minor["KZT"] / prices.per_minor["CNY"]
    assert outcome.amount_delivered_minor == int(expected)  # exact, rounded down, at mid
    assert balance(engine, AccountKey.settlement(KZ_A, "KZT")) == kz_before - 1_000_000_00
    assert balance(engine, AccountKey.settlement(CN_A, "CNY")) == (
        cn_before + outcome.amount_delivered_minor
    )
    owed = positions(engine)
    assert owed[NBK] < 0 < owed[PBOC] and owed[NBK] + owed[PBOC] <= 0
    assert {bic for bic, value in owed.items() if value} == {NBK, PBOC}
    check_books(engine)


def test_the_payer_is_told_when_its_central_bank_would_pass_its_swing_limit_and_it_settles_later(
    sqlite_engine,
):
    # Kazakhstan's limit: XSC 1,000.0000; a KZT 1,000,000.00 payment is worth about XSC 14,116.
    engine = sqlite_engine(with_limits({NBK: "1000"}))
    # The deferral rule (payments.netting) defers the latest arrival first, whole.
    engine.submit(pay("small", KZ_B, CN_A, 10_000_00, "KZT", "CNY"))  # about XSC 141: fits
    engine.submit(pay("big", KZ_A, CN_A, 1_000_000_00, "KZT", "CNY"))
    report = engine.run_cycle()
    assert (report.settled, report.deferred) == (1, 1)
    assert engine.outcome("small").status is PaymentStatus.SETTLED
    waiting = engine.outcome("big")
    assert waiting.status is PaymentStatus.QUEUED and waiting.reason is Reason.AM04
    assert f"deferred in union cycle {report.number}: {NBK} would pass its swing limit" in (
        waiting.reason_text
    )
    assert positions(engine)[NBK] >= -1000_0000  # never past the limit
    check_books(engine)
    # China pays Kazakhstan: NBK's claim grows, and the deferred payment fits in the next cycle.
    engine.submit(pay("back", CN_A, KZ_B, 20_000_00, "CNY", "KZT"))
    report = engine.run_cycle()
    assert report.settled == 2 and engine.outcome("big").status is PaymentStatus.SETTLED
    assert positions(engine)[NBK] >= -1000_0000
    check_books(engine)


def test_a_cycle_settles_in_one_linked_chain_and_a_refused_chain_settles_nothing(view):
    engine = union_engine(view)
    engine.submit_many(
        [
            pay("a", KZ_A, CN_A, 500_000_00, "KZT", "CNY"),
            pay("b", CN_A, RU_A, 20_000_00, "CNY", "RUB"),
            pay("c", RU_A, UZ_A, 300_000_00, "RUB", "UZS"),
        ]
    )
    before = engine.ledger.store.count_transfers()
    report = engine.run_cycle()
    assert report.settled == 3
    ids = {engine.outcome(p).transfer_ids for p in "abc"}
    assert len(ids) == 1  # every payment names the same chain: the cycle's
    first, last = next(iter(ids))
    found = engine.ledger.store.get_transfers([first, last])
    assert found[first].flags & 1 and not found[last].flags & 1  # linked ... closing
    assert engine.ledger.store.count_transfers() > before
    check_books(engine)


def test_a_payment_worth_less_than_the_unit_can_carry_is_rejected_not_settled_as_nothing(view):
    engine = union_engine(view)
    engine.submit(pay("dust", UZ_A, CN_A, 1, "UZS", "CNY"))  # UZS 0.01 is far below CNY 0.01
    engine.run_cycle()
    outcome = engine.outcome("dust")
    assert outcome.status is PaymentStatus.REJECTED and outcome.reason is Reason.AM01
    check_books(engine)


def test_a_fixed_received_amount_is_delivered_exactly_and_charged_rounded_up(view):
    engine = union_engine(view)
    engine.submit(pay("recv", KZ_A, CN_A, 14_100_00, "KZT", "CNY", amount_type=AmountType.RECEIVE))
    engine.run_cycle()
    outcome = engine.outcome("recv")
    assert outcome.status is PaymentStatus.SETTLED and outcome.amount_delivered_minor == 14_100_00
    prices = engine.mode.book(engine).prices(engine)
    cost = 14_100_00 * prices.per_minor["CNY"] / prices.per_minor["KZT"]
    assert outcome.amount_sent_minor == -(-cost.numerator // cost.denominator)
    check_books(engine)


def test_domestic_and_non_member_payments_are_netted_in_the_same_cycle_over_their_routes(view):
    shipped = load_union()  # A union without Russia: RUB payments take the ordinary routes.
    members = tuple(m for m in shipped.members if m.central_bank != CBR)
    engine = union_engine(view, config=shipped.model_copy(update={"members": members}))
    engine.submit_many(
        [
            pay("dom", KZ_A, KZ_B, 5_000_00, "KZT", "KZT"),
            pay("ru", CN_A, RU_A, 10_000_00, "CNY", "RUB"),
        ]
    )
    assert engine.outcome("dom").reason_text == "held for the next settlement cycle"
    assert engine.outcome("ru").reason_text == "held for the next settlement cycle"
    engine.run_cycle()
    for payment_id in ("dom", "ru"):
        outcome = engine.outcome(payment_id)
        assert outcome.status is PaymentStatus.SETTLED, outcome
        assert not any("XSC" in node for node in outcome.route)
    assert not any(positions(engine).values())
    check_books(engine)


def test_interest_is_paid_once_a_day_by_each_debtor_central_bank_in_its_own_currency(view):
    engine = union_engine(view)
    engine.submit(pay("i1", KZ_A, CN_A, 1_000_000_00, "KZT", "CNY"))
    engine.run_cycle()
    debt = -positions(engine)[NBK]
    income = AccountKey.swap_interest("SCOUCNB0", "KZT")
    assert balance(engine, income) == 0  # no debt when the day's interest was charged
    engine.clock.now += NS_PER_DAY
    engine.run_cycle()
    engine.run_cycle()  # the second cycle of the day charges nothing more
    prices = engine.mode.book(engine).prices(engine)
    due_unit = -(-debt // 18_000)  # 2 % a year, one day, ACT/360: debt / 18,000, rounded up
    due = -(-due_unit * prices.per_minor["KZT"].denominator // prices.per_minor["KZT"].numerator)
    assert balance(engine, income) == due > 0
    charged = [t for t in engine.ledger.store.iter_transfers() if t.code == CODE_UNION_INTEREST]
    assert len(charged) == 1 and charged[0].debit_account == account_id_for_key(
        AccountKey.issuance(NBK, "KZT")
    )
    assert positions(engine)[NBK] == -debt  # interest never counts against the swing limit
    check_books(engine)


def test_a_restarted_engine_keeps_the_union_positions_and_settles_what_was_held(sqlite_engine):
    engine = sqlite_engine()
    engine.submit_many(
        [
            pay("r1", KZ_A, CN_A, 100_000_00, "KZT", "CNY"),
            pay("r2", RU_A, KZ_B, 100_000_00, "RUB", "KZT"),
        ]
    )
    engine.run_cycle()
    engine.submit(pay("r3", CN_A, RU_A, 1_000_00, "CNY", "RUB"))
    kept = positions(engine)
    engine.ledger.close()
    engine.records.close()
    again = sqlite_engine()  # the same database file
    assert positions(again) == kept and "r3" in again.queue
    assert again.run_cycle().settled == 1
    check_books(again)


def test_the_governance_file_is_validated_and_every_figure_is_stated():
    shipped = load_union()
    assert shipped.unit.code == "XSC" and len(shipped.members) == 10 and not shipped.partners
    assert all(member.basis for member in shipped.members)  # each limit says why
    good = shipped.model_dump(mode="json")
    for broken, message in (
        ({"unit": {**good["unit"], "code": "CNY"}}, "not a unit of account"),
        ({"unit": {**good["unit"], "basket": good["unit"]["basket"][:-1]}}, "sum to 97"),
        ({"members": [*good["members"], good["members"][0]]}, "listed twice"),
        ({"members": [{**good["members"][0], "swing_limit": 1.5}], "partners": []}, "float"),
        ({"cycles": {"minutes": [900, 660]}}, "sorted"),
    ):
        with pytest.raises(pydantic.ValidationError, match=message):
            UnionConfig.model_validate({**good, **broken})
    one_currency = """
name: a one-currency union
agent: SCOUCNB0
unit:
  code: XSC
  basket: [{currency: CNY, amount: '1', weight_percent: '100'}]
  rate_source: {provider: MARKET, pivot: CNY}
members:
  - {central_bank: PBOCCNBJ, swing_limit: '1'}
  - {central_bank: NBRKKZKX, swing_limit: '1'}
interest: {rate_percent_per_year: '0'}
cycles: {minutes: [600]}
"""
    assert parse_union(one_currency).unit.amounts == {"CNY": 1}


def test_the_basket_has_the_weights_it_states_at_the_reference_rates():
    shipped = load_union()
    prices = unit_prices(shipped.unit, load_rates(), [])
    values = {
        code: amount * 10 ** currency(code).minor_units * prices.per_minor[code]
        for code, amount in shipped.unit.amounts.items()
    }
    total = sum(values.values())
    assert abs(total - 10**4) <= 1  # 1 XSC is CNY 1.00 at the reference mids
    for item in shipped.unit.basket:
        share = values[item.currency] / total * 100
        assert abs(share - Fraction(item.weight_percent)) < Fraction(5, 100), item


def test_a_member_that_does_not_issue_a_network_currency_is_refused(view):
    shipped = load_union()
    stranger = shipped.members[0].model_copy(update={"central_bank": KZ_A})  # a commercial bank
    config = shipped.model_copy(update={"members": (*shipped.members[1:], stranger)})
    engine = union_engine(view, config=config)
    with pytest.raises(ValueError, match="not a central bank"):
        engine.submit(pay("x", KZ_A, CN_A, 1_00, "KZT", "CNY"))
