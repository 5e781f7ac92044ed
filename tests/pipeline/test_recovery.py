"""The ledger is the truth about a payment: squatted leg ids never count as settled (security
review C2), a crash between the ledger commit and the record is repaired at start (M4), and the
audit reconciles records with the ledger both ways."""

from __future__ import annotations

from dataclasses import replace

from sco_settle.domain.ids import ENGINE_ID_MIN, is_engine_id
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.payments.engine import PaymentEngine
from sco_settle.payments.model import Payment, PaymentStatus, Reason
from sco_settle.payments.plan import leg_id, lsm_ids, return_leg_id, transfer_id_for

from .conftest import balance

KZ_A, KZ_B, CN_A = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ"


def pay(payment_id: str, debtor: str, creditor: str, amount: int, ccy="KZT", to_ccy=None):
    return Payment(payment_id, debtor, creditor, amount, ccy, to_ccy or ccy)


def snapshot(engine):
    return sorted((s.id, s.balance_tuple()) for s in engine.ledger.accounts())


def test_payment_leg_ids_live_in_the_engine_range():
    ids = [leg_id("HSBKKZKX:x", n) for n in range(40)] + [*lsm_ids("a:b"), return_leg_id("a", 0)]
    assert all(is_engine_id(i) for i in ids)
    assert all(ENGINE_ID_MIN <= transfer_id_for(str(n)) < 2**128 - 1 for n in range(1000))


def test_a_squatted_leg_id_is_a_duplicate_never_settled(make_engine):
    """Before the fix, a client created and voided a 1-unit pending transfer under the derived
    leg-0 id; the payment was then answered ``settled`` with no money moved. The engine range is
    closed to clients at the API (tests/server); here the squat is written straight into the
    ledger, and the engine still refuses to call it settled."""
    engine = make_engine()
    payer = engine.view.account_id(f"settlement:{KZ_A}:KZT")
    payee = engine.view.account_id(f"settlement:{KZ_B}:KZT")
    squat = leg_id(f"{KZ_A}:INV-9", 0)
    pending = int(TransferFlags.PENDING)
    void = int(TransferFlags.VOID_PENDING)
    assert engine.ledger.create_transfers([Transfer(squat, payer, payee, 1, pending)])[0].name == (
        "OK"
    )
    engine.ledger.create_transfers([Transfer(squat + 1, 0, 0, 0, void, pending_id=squat)])
    before = snapshot(engine)
    outcome = engine.submit(pay(f"{KZ_A}:INV-9", KZ_A, KZ_B, 9_000_000_00))
    assert outcome.status is PaymentStatus.REJECTED and outcome.reason is Reason.DUPL
    assert snapshot(engine) == before  # Nothing moved, and nothing claims it did.


def test_a_resubmission_after_a_lost_record_finds_its_chain_in_the_ledger(make_engine):
    engine = make_engine()
    payment = pay(f"{KZ_A}:LOST-1", KZ_A, CN_A, 1_000_000_00, "KZT", "CNY")
    first = engine.submit(payment)
    assert first.status is PaymentStatus.SETTLED
    moved = snapshot(engine)
    # The record is lost (a crash between the ledger commit and the journal, before intents).
    engine.records.connection.execute("DELETE FROM payments")
    again = engine.submit(payment)
    assert again.status is PaymentStatus.SETTLED and again.transfer_ids == first.transfer_ids
    assert again.amount_delivered_minor == first.amount_delivered_minor
    assert snapshot(engine) == moved  # Not applied twice.
    # The same id with other content is a duplicate: the ledger's chain is not this payment's.
    engine.records.connection.execute("DELETE FROM payments")
    other = engine.submit(replace(payment, amount_minor=2_000_000_00))
    assert other.status is PaymentStatus.REJECTED and other.reason is Reason.DUPL
    assert snapshot(engine) == moved


def test_start_up_settles_intents_from_the_ledger_and_drops_unapplied_ones(make_engine):
    engine = make_engine()
    settled = pay(f"{KZ_A}:CRASH-1", KZ_A, KZ_B, 7_000_00)
    unapplied = pay(f"{KZ_A}:CRASH-2", KZ_A, KZ_B, 8_000_00)
    clock = engine.ledger.clock()
    engine.records.begin([(settled, "settle"), (unapplied, "settle")], clock)
    chain = engine.plan(settled, engine.route(settled)[0])
    assert all(r.name == "OK" for r in engine.ledger.create_transfers(chain))
    # The process dies here: money moved, no record. A new engine starts on the same stores.
    restarted = PaymentEngine(engine.ledger, engine.view, engine.records)
    assert restarted.recovered.settled == 1 and restarted.recovered.dropped == 1
    assert not restarted.recovered.foreign and not engine.records.intents()
    outcome = restarted.outcome(settled.payment_id)
    assert outcome.status is PaymentStatus.SETTLED
    assert outcome.transfer_ids == tuple(t.id for t in chain)
    assert restarted.outcome(unapplied.payment_id) is None  # As if never received.
    assert restarted.audit().ok
    # A retry of the unapplied payment runs afresh; of the settled one, answers its outcome.
    assert restarted.submit(unapplied).status is PaymentStatus.SETTLED
    assert restarted.submit(settled).duplicate


def test_start_up_finishes_a_return_the_ledger_applied(make_engine):
    """A return is a payment: a crash after its chain reached the ledger but before its
    record is recovered like any payment, and its original is marked returned with it."""
    engine = make_engine()
    payment = pay(f"{KZ_A}:RET-1", KZ_A, KZ_B, 3_000_00)
    assert engine.submit(payment).status is PaymentStatus.SETTLED
    before_return = balance(engine, f"settlement:{KZ_A}:KZT")
    reverse = Payment(
        f"{KZ_B}:R1:{payment.payment_id}", KZ_B, KZ_A, 3_000_00, "KZT", "KZT",
        returns=payment.payment_id,
    )  # fmt: skip
    # The crash: the intent is durable, the chain applied, the record never written.
    engine.records.begin([(reverse, "settle")], engine.ledger.clock())
    chain = engine.plan(reverse, engine.route(reverse)[0])
    assert engine.ledger.create_transfers(chain) == ["ok"] * len(chain)
    restarted = PaymentEngine(engine.ledger, engine.view, engine.records)
    assert restarted.recovered.returned == 1
    assert restarted.outcome(reverse.payment_id).status is PaymentStatus.SETTLED
    original = restarted.outcome(payment.payment_id)
    assert original.status is PaymentStatus.RETURNED
    assert original.amount_returned_minor == 3_000_00
    assert balance(engine, f"settlement:{KZ_A}:KZT") == before_return + 3_000_00
    assert restarted.audit().ok


def test_audit_finds_records_without_money_and_money_without_records(make_engine):
    engine = make_engine()
    good = engine.submit(pay(f"{KZ_A}:A-1", KZ_A, KZ_B, 1_000_00))
    assert engine.audit().ok
    # A settled record whose legs are not in the ledger (what C2 produced).
    ghost = pay(f"{KZ_A}:A-2", KZ_A, KZ_B, 5_000_00)
    fake = replace(good, payment_id=ghost.payment_id, transfer_ids=(leg_id(ghost.payment_id, 0),))
    engine.records.record([(ghost, fake, None, [])], engine.ledger.clock())
    # Money moved by the engine with no record (what M4 produced).
    orphan = pay(f"{KZ_A}:A-3", KZ_A, KZ_B, 2_000_00)
    engine.ledger.create_transfers(engine.plan(orphan, engine.route(orphan)[0]))
    report = engine.audit()
    problems = {finding.payment_id: finding.problem for finding in report.findings}
    assert "missing" in problems[ghost.payment_id]
    assert "has no record" in problems[""]
    assert good.payment_id not in problems


def test_the_records_can_be_audited_read_only(tmp_path):
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    path = tmp_path / "j.db"
    SqlitePaymentRecords(path).close()
    readonly = SqlitePaymentRecords(path, readonly=True)
    assert list(readonly.records()) == [] and readonly.intents() == []
    readonly.close()


def test_net_cycles_reconcile_and_a_crash_after_the_net_chain_is_recovered(make_engine):
    from sco_settle.payments.engine import EngineSettings, Mode

    engine = make_engine(EngineSettings(mode=Mode.DNS))
    engine.submit_many([pay("n1", KZ_A, KZ_B, 7_000_00), pay("n2", KZ_B, KZ_A, 2_000_00)])
    report = engine.run_cycle()
    assert report.settled == 2 and engine.audit().ok
    with_chain = engine.outcome("n1")
    assert with_chain.transfer_ids and engine.audit().ok
    # A second cycle whose record is lost after the net chain committed.
    engine.submit_many([pay("n3", KZ_A, KZ_B, 4_000_00)])
    moved_before = snapshot(engine)
    real_record = engine.records.record
    engine.records.record = lambda *args, **kwargs: None  # The crash: nothing recorded.
    engine.run_cycle()
    engine.records.record = real_record
    assert snapshot(engine) != moved_before and engine.records.intents()
    restarted = PaymentEngine(engine.ledger, engine.view, engine.records, engine.settings)
    assert restarted.recovered.settled == 1 and not restarted.queue
    assert restarted.outcome("n3").status is PaymentStatus.SETTLED
    assert restarted.audit().ok
    # The next cycle does not settle it again.
    after = snapshot(engine)
    restarted.run_cycle()
    assert snapshot(engine) == after


def test_a_returned_lsm_settled_payment_reconciles(make_engine):
    """A payment settled by gridlock resolution (LSM legs, not gross legs) and then returned:
    the audit must recognise its LSM legs behind the return legs."""
    engine = make_engine()
    accounts = {bic: engine.view.account_id(f"settlement:{bic}:KZT") for bic in (KZ_A, KZ_B)}
    sink = engine.clearing["KZT"]
    for number, (bic, account) in enumerate(accounts.items()):
        drained = balance(engine, f"settlement:{bic}:KZT")
        assert engine.ledger.create_transfers([Transfer(70 + number, account, sink, drained)]) == [
            "ok"
        ]
    engine.submit_many([pay("G1", KZ_A, KZ_B, 500_00), pay("G2", KZ_B, KZ_A, 500_00)])
    engine.run_cycle()
    settled = engine.outcome("G1")
    assert settled.status is PaymentStatus.SETTLED and settled.transfer_ids == lsm_ids("G1")
    assert engine.ledger.create_transfers([Transfer(72, sink, accounts[KZ_B], 500_00)]) == ["ok"]
    answer = engine.return_payment("G1", returned_by=KZ_B, reason="AC04")
    assert answer.accepted
    assert engine.audit().ok, engine.audit().findings
