"""Firm FX quotes (``payments/fx_quotes.py``, ``payments/quote_desk.py``): a quote holds the
providers' liquidity, a payment naming it settles exactly at its terms or not at all, a quote is
used once, an expired quote is refused, and only its debtor agent may use it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from sco_settle.domain.transfer import PendingStatus
from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.engine import PaymentEngine
from sco_settle.payments.fx_quotes import CODE_QUOTE_HOLD, QuoteStatus
from sco_settle.payments.model import AmountType, Payment, PaymentOutcome, PaymentStatus, Reason
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.quote_desk import FxQuoteRequest, quote_status
from sco_settle.payments.quote_records import ChargeBearer, FxQuote
from sco_settle.storage import MemoryStore, SqliteStore
from sco_settle.storage.payment_records_memory import MemoryPaymentRecords
from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

NETWORK = load_network("sco")
RATES = load_rates()
KZ_BANK, CN_BANK, OTHER_KZ_BANK = "KCJBKZKX", "BKCHCNBJ", "HSBKKZKX"
START_NS = 1_796_000_000 * 10**9
SECOND = 10**9


class Clock:
    def __init__(self) -> None:
        self.now = START_NS

    def __call__(self) -> int:
        self.now += 1  # strictly increasing, as the ledger wants
        return self.now


def engine_on(store=None, records=None, clock=None) -> PaymentEngine:  # type: ignore[no-untyped-def]
    ledger = Ledger(store or MemoryStore(), clock=clock or Clock())
    if not ledger.accounts():
        install_network(ledger, NETWORK)
    return PaymentEngine(ledger, NetworkView(NETWORK, RATES), records or MemoryPaymentRecords())


def request(**changes: object) -> FxQuoteRequest:
    base = FxQuoteRequest(KZ_BANK, CN_BANK, 50_000_000_00, "KZT", "CNY")
    return replace(base, **changes)  # type: ignore[arg-type]


def quoted(engine: PaymentEngine, **changes: object) -> FxQuote:
    answer = engine.quote_fx(request(**changes))
    assert isinstance(answer, FxQuote), answer
    return answer


def paying(quote: FxQuote, payment_id: str = "p-1", **changes: object) -> Payment:
    payment = Payment(
        payment_id,
        quote.debtor_agent,
        quote.creditor_agent,
        quote.fixed_minor,
        quote.currency,
        quote.creditor_currency,
        amount_type=quote.amount_type,
        fx_quote_id=quote.quote_id,
    )
    return replace(payment, **changes)  # type: ignore[arg-type]


def balances(engine: PaymentEngine) -> dict[int, tuple[int, int, int, int]]:
    return {
        s.account.id: (s.debits_posted, s.credits_posted, s.debits_pending, s.credits_pending)
        for s in engine.ledger.accounts()
    }


def available(engine: PaymentEngine, account_id: int) -> int:
    state = engine.ledger.lookup_account(account_id)
    assert state is not None
    return state.credits_posted - state.debits_posted - state.debits_pending


def test_a_quote_states_its_terms_and_holds_the_providers_liquidity() -> None:
    engine = engine_on()
    quote = quoted(engine)
    assert quote.send_minor == 50_000_000_00 and quote.receive_minor > 0
    assert quote.conversions and quote.conversions[0].provider == "ICBKKZKX"
    assert quote.route[0] == f"{KZ_BANK}/KZT" and quote.route[-1] == f"{CN_BANK}/CNY"
    assert quote.expires_ns - quote.created_ns == 60 * SECOND
    (hold,) = quote.holds
    assert hold.owner == "ICBKKZKX" and hold.currency == "CNY"
    assert hold.amount_minor == quote.receive_minor  # the provider delivers it all
    pending = engine.ledger.state.pending_open[hold.transfer_id]
    assert pending.code == CODE_QUOTE_HOLD and pending.amount == hold.amount_minor
    assert quote_status(engine, quote) is QuoteStatus.OPEN
    # Nothing was paid: only the hold is pending; the payer's money has not moved.
    payer = engine.view.account_id(f"settlement:{KZ_BANK}:KZT")
    assert payer is not None
    state = engine.ledger.lookup_account(payer)
    assert state is not None and state.debits_posted == 0


def test_a_payment_at_the_quote_settles_exactly_at_its_terms() -> None:
    engine = engine_on()
    quote = quoted(engine)
    (outcome,) = engine.submit_many([paying(quote)])
    assert outcome.status is PaymentStatus.SETTLED, outcome
    assert outcome.amount_sent_minor == quote.send_minor
    assert outcome.amount_delivered_minor == quote.receive_minor
    assert outcome.route == quote.route
    legs = engine.ledger.store.get_transfers(list(outcome.transfer_ids))
    booked = [legs[i] for i in outcome.transfer_ids]
    assert [(t.debit_account, t.credit_account, t.amount, t.code) for t in booked] == [
        (b.debit_account, b.credit_account, b.amount_minor, b.code) for b in quote.bookings
    ]
    statuses = engine.ledger.store.get_pending_statuses([h.transfer_id for h in quote.holds])
    assert set(statuses.values()) == {PendingStatus.VOIDED}
    assert quote_status(engine, quote) is QuoteStatus.USED
    assert engine.audit().ok  # records and ledger reconcile


def test_the_quote_holds_even_when_others_want_the_liquidity() -> None:
    """While the quote is open, the provider's held CNY is not available to other payments."""
    engine = engine_on()
    quote = quoted(engine)
    (hold,) = quote.holds
    assert available(engine, hold.account_id) >= 0
    before = available(engine, hold.account_id) + hold.amount_minor
    # the hold is counted against the provider's available balance
    state = engine.ledger.lookup_account(hold.account_id)
    assert state is not None and state.debits_pending >= hold.amount_minor
    assert before - hold.amount_minor == available(engine, hold.account_id)


def test_a_quote_is_used_once() -> None:
    engine = engine_on()
    quote = quoted(engine)
    first, second = engine.submit_many([paying(quote, "p-1"), paying(quote, "p-2")])
    assert first.status is PaymentStatus.SETTLED
    assert second.status is PaymentStatus.REJECTED and second.reason is Reason.DUPL
    assert "already used" in second.reason_text


def test_an_expired_quote_is_refused_and_moves_nothing() -> None:
    clock = Clock()
    engine = engine_on(clock=clock)
    quote = quoted(engine, seconds=5)
    clock.now += 6 * SECOND
    before = balances(engine)
    (outcome,) = engine.submit_many([paying(quote)])
    assert outcome.status is PaymentStatus.REJECTED and outcome.reason is Reason.DT01
    assert "expired" in outcome.reason_text
    after = balances(engine)
    # only the hold's expiry may differ (the ledger expires it); no posted amount changed
    assert {k: v[:2] for k, v in after.items()} == {k: v[:2] for k, v in before.items()}
    engine.ledger.expire_pending()
    assert quote_status(engine, quote) is QuoteStatus.EXPIRED
    assert hold_released(engine, quote)


def hold_released(engine: PaymentEngine, quote: FxQuote) -> bool:
    return all(h.transfer_id not in engine.ledger.state.pending_open for h in quote.holds)


@pytest.mark.parametrize(
    ("changes", "reason", "text"),
    [
        ({"amount_minor": 49_999_999_99}, Reason.AM09, "amount"),
        ({"creditor_agent": "ICBKCNBJ"}, Reason.AM09, "creditor agent"),
        ({"creditor_currency": "KZT"}, Reason.AM09, "creditor currency"),
        ({"debtor_agent": OTHER_KZ_BANK}, Reason.NARR, "no FX quote"),
        ({"fx_quote_id": "fxq-nonexistent"}, Reason.NARR, "no FX quote"),
    ],
)
def test_a_payment_that_is_not_the_quote_is_refused_and_moves_nothing(
    changes: dict[str, object], reason: Reason, text: str
) -> None:
    engine = engine_on()
    quote = quoted(engine)
    before = balances(engine)
    (outcome,) = engine.submit_many([paying(quote, **changes)])
    assert outcome.status is PaymentStatus.REJECTED and outcome.reason is reason, outcome
    assert text in outcome.reason_text
    assert balances(engine) == before
    assert quote_status(engine, quote) is QuoteStatus.OPEN  # still there for its owner


def test_charge_bearer_fixes_the_amount_it_implies() -> None:
    engine = engine_on()
    debt = quoted(engine, amount_minor=700_000_00, amount_type=AmountType.RECEIVE,
                  charge_bearer=ChargeBearer.DEBT)  # fmt: skip
    assert debt.amount_type is AmountType.RECEIVE and debt.receive_minor == 700_000_00
    refused = engine.quote_fx(
        request(amount_type=AmountType.RECEIVE, charge_bearer=ChargeBearer.CRED)
    )
    assert isinstance(refused, PaymentOutcome) and refused.reason is Reason.NARR
    assert "CRED" in refused.reason_text


def test_charges_are_reported_with_their_bearer() -> None:
    """The provider charges a commission per conversion (in the currency it receives): with
    CRED it comes off what the creditor receives, with DEBT it is added to what the debtor pays,
    and the creditor receives the fixed amount in full."""
    providers = tuple(
        entry.model_copy(update={"charge": {"KZT": Decimal(1_000)}})
        if entry.bic == "ICBKKZKX"
        else entry
        for entry in NETWORK.fx_providers
    )
    network = NETWORK.model_copy(update={"fx_providers": providers})
    ledger = Ledger(MemoryStore(), clock=Clock())
    install_network(ledger, network)
    engine = PaymentEngine(ledger, NetworkView(network, RATES), MemoryPaymentRecords())
    plain = quoted(engine_on())
    cred = quoted(engine, charge_bearer=ChargeBearer.CRED)
    assert [(c.agent, c.amount_minor, c.currency, c.borne_by) for c in cred.charges] == [
        ("ICBKKZKX", 1_000_00, "KZT", "creditor")
    ]
    assert cred.send_minor == plain.send_minor and cred.receive_minor < plain.receive_minor
    debt = quoted(engine, amount_minor=plain.receive_minor, amount_type=AmountType.RECEIVE,
                  charge_bearer=ChargeBearer.DEBT)  # fmt: skip
    assert [c.borne_by for c in debt.charges] == ["debtor"]
    uncharged = quoted(engine_on(), amount_minor=plain.receive_minor,
                       amount_type=AmountType.RECEIVE, charge_bearer=ChargeBearer.DEBT)  # fmt: skip
    assert debt.send_minor == uncharged.send_minor + 1_000_00  # the charge on top
    (outcome,) = engine.submit_many([paying(debt)])
    assert outcome.status is PaymentStatus.SETTLED
    assert outcome.amount_delivered_minor == plain.receive_minor  # in full
    assert engine.audit().ok


def test_a_quote_needs_liquidity_to_hold() -> None:
    engine = engine_on()
    refused = engine.quote_fx(request(amount_minor=10**17))
    assert isinstance(refused, PaymentOutcome) and refused.status is PaymentStatus.REJECTED
    assert refused.reason in (Reason.AM02, Reason.AM04)
    assert not engine.ledger.state.pending_open or all(
        t.code != CODE_QUOTE_HOLD for t in engine.ledger.state.pending_open.values()
    )


def test_a_quote_survives_a_restart_on_sqlite(tmp_path: Path) -> None:
    """The quote is durable before it is answered: a new engine over the same files settles a
    payment at it."""
    path = tmp_path / "ledger.db"
    clock = Clock()
    store = SqliteStore(path)
    records = SqlitePaymentRecords(path, shares_wal_with_ledger=True)
    engine = engine_on(store, records, clock)
    quote = quoted(engine)
    engine.ledger.close()
    records.close()
    store, records = SqliteStore(path), SqlitePaymentRecords(path, shares_wal_with_ledger=True)
    restarted = engine_on(store, records, clock)
    assert restarted.quotes.get_quote(quote.quote_id) == quote
    (outcome,) = restarted.submit_many([paying(quote)])
    assert outcome.status is PaymentStatus.SETTLED
    assert outcome.amount_delivered_minor == quote.receive_minor
    restarted.ledger.close()
    records.close()


def test_one_bank_cannot_hold_every_providers_liquidity() -> None:
    """Open quotes per debtor agent are bounded; another bank still gets its quote."""
    from sco_settle.payments.quote_desk import QUOTES_OPEN_MAX

    engine = engine_on()
    for _ in range(QUOTES_OPEN_MAX):
        quoted(engine, amount_minor=1_000_00)
    refused = engine.quote_fx(request(amount_minor=1_000_00))
    assert isinstance(refused, PaymentOutcome) and refused.reason is Reason.AM04
    assert "open FX quotes" in refused.reason_text
    assert isinstance(
        engine.quote_fx(request(debtor_agent=OTHER_KZ_BANK, amount_minor=1_000_00)), FxQuote
    )
