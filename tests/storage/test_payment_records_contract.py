"""The payment records contract (``payments.records``), run against every adapter: memory (the
reference), SQLite and PostgreSQL.

The engine and the API must see the same records whichever store keeps them. Durable adapters
also have to keep everything across a reopen, serve read-only sessions that never write, and keep
a failed ``record`` invisible (its intents included: they are what crash recovery reads).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from sco_settle.payments.model import (
    Party,
    Payment,
    PaymentOutcome,
    PaymentStatus,
    Priority,
    Reason,
)
from sco_settle.payments.records import CorridorTotals, PaymentEvent, PaymentFilter
from sco_settle.storage.payment_records_memory import MemoryPaymentRecords
from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

RECORDS_KINDS = ["memory", "sqlite", "postgres"]
INT64_MAX = 2**63 - 1
T0 = 1_800_000_000 * 10**9
durable = pytest.mark.parametrize("records_factory", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(params=RECORDS_KINDS)
def records_factory(request, tmp_path):
    """``make(readonly=False)`` opens the records; calling it again reopens the same storage
    (the memory adapter has none: every call returns the same instance)."""
    kind = request.param
    memory = MemoryPaymentRecords()
    opened = []
    if kind == "postgres":
        from sco_settle.storage.payment_records_postgres import PostgresPaymentRecords
        from sco_settle.storage.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")
        PostgresStore(dsn, schema=schema).close()  # The ledger lays the schema out.

    def make(readonly=False):
        if kind == "memory":
            return memory
        if kind == "sqlite":
            records = SqlitePaymentRecords(tmp_path / "ledger.db", readonly=readonly)
        else:
            records = PostgresPaymentRecords(dsn, schema=schema, readonly=readonly)
        opened.append(records)
        return records

    make.kind = kind
    yield make
    for records in opened:
        records.close()


@pytest.fixture
def records(records_factory):
    return records_factory()


def pay(number, debtor="HSBKKZKX", creditor="BKCHCNBJ", amount=1_000_00, ccy="KZT", to="CNY"):
    return Payment(
        f"{debtor}:P{number}",
        debtor,
        creditor,
        amount,
        ccy,
        to,
        debtor=Party("Almaty Trading", "KZ00 0001"),
        creditor=Party("Урумчи Импорт", ""),
        remittance_info=f"invoice {number}",
    )


def outcome(payment, status=PaymentStatus.SETTLED, **fields):
    values = {"amount_delivered_minor": 0, "route": (), "transfer_ids": (), "settled_at": 0}
    if status is PaymentStatus.SETTLED:
        values = {
            "amount_delivered_minor": payment.amount_minor // 70,
            "route": ("HSBKKZKX/KZT", "BKCHCNBJ/CNY"),
            "transfer_ids": (2**127 + 5, 2**127 + 6),
            "settled_at": T0 + 7,
        }
    values.update(fields)
    return PaymentOutcome(payment.payment_id, status, **values)


RECEIVED = [(PaymentStatus.RECEIVED, ""), (PaymentStatus.VALIDATED, "")]


def test_a_record_reads_back_exactly(records):
    payment = pay(1)
    settled = outcome(payment, reason_text="fine")
    records.record([(payment, settled, None, RECEIVED)], T0)
    assert records.get(payment.payment_id) == (payment, settled, None)
    assert records.get("nobody:P1") is None
    rejected = pay(2)
    refused = outcome(rejected, PaymentStatus.REJECTED, reason=Reason.AM04, reason_text="no")
    records.record([(rejected, refused, None, [])], T0)
    assert records.get(rejected.payment_id) == (rejected, refused, None)


def test_many_records_read_back_at_once_as_one_at_a_time(records):
    payments = [pay(n) for n in range(1, 1_203)]  # more than one query's worth of ids
    records.record([(p, outcome(p), None, RECEIVED) for p in payments[::2]], T0)
    asked = [p.payment_id for p in payments] + ["nobody:P1", payments[0].payment_id]
    found = records.get_many(asked)
    assert found == {p.payment_id: records.get(p.payment_id) for p in payments[::2]}


def test_a_later_record_replaces_the_outcome_but_not_the_instruction(records):
    payment = pay(1)
    queued = outcome(payment, PaymentStatus.QUEUED, reason=Reason.AM04)
    records.record([(payment, queued, 7, RECEIVED)], T0)
    changed = replace(payment, remittance_info="changed")  # A record never rewrites it.
    settled = outcome(payment)
    records.record([(changed, settled, None, [(PaymentStatus.SETTLED, "lsm")])], T0 + 10)
    assert records.get(payment.payment_id) == (payment, settled, None)
    found = records.payment(payment.payment_id)
    assert (found.payment, found.outcome, found.received_at) == (payment, settled, T0)
    assert records.counts() == {"settled": 1}


def test_a_later_record_changes_only_the_instructions_priority(records):
    payment = pay(1)
    records.record([(payment, outcome(payment, PaymentStatus.QUEUED), 7, RECEIVED)], T0)
    urgent = replace(payment, priority=Priority.URGENT, remittance_info="changed")
    records.record([(urgent, outcome(payment, PaymentStatus.QUEUED), 7, [])], T0 + 10)
    assert records.get(payment.payment_id)[0] == replace(payment, priority=Priority.URGENT)
    assert records.payment(payment.payment_id).payment.priority is Priority.URGENT


def test_events_keep_their_order_across_records(records):
    payment = pay(1)
    records.record([(payment, outcome(payment, PaymentStatus.QUEUED), 1, RECEIVED)], T0)
    records.record([(payment, outcome(payment), None, [(PaymentStatus.SETTLED, "lsm")])], T0 + 5)
    records.record([(pay(2), outcome(pay(2)), None, RECEIVED)], T0 + 6)
    assert records.events(payment.payment_id) == [
        PaymentEvent("received", T0, ""),
        PaymentEvent("validated", T0, ""),
        PaymentEvent("settled", T0 + 5, "lsm"),
    ]
    assert records.events(payment.payment_id, limit=2) == records.events(payment.payment_id)[:2]
    assert records.events("nobody:P1") == []


def test_intents_are_replaced_dropped_and_cleared_by_the_record(records):
    first, second, third = pay(1), pay(2), pay(3)
    records.begin([], T0)
    records.begin([(second, "settle"), (first, "settle")], T0 + 1)
    records.begin([(third, "return")], T0)
    assert records.intents() == [(third, "return"), (first, "settle"), (second, "settle")]
    records.begin([(third, "cycle:1")], T0 + 2)  # Replaces the first intent of ``third``.
    assert records.intents() == [(first, "settle"), (second, "settle"), (third, "cycle:1")]
    records.record([(first, outcome(first), None, [])], T0 + 3)
    records.drop_intents([])
    records.drop_intents([third.payment_id, "nobody:P1"])
    assert records.intents() == [(second, "settle")]


def test_queued_payments_come_back_in_queue_order(records):
    payments = [pay(n) for n in range(4)]
    records.record(
        [
            (payments[0], outcome(payments[0], PaymentStatus.QUEUED), 30, []),
            (payments[1], outcome(payments[1]), None, []),
            (payments[2], outcome(payments[2], PaymentStatus.QUEUED), 10, []),
            (payments[3], outcome(payments[3], PaymentStatus.QUEUED), 20, []),
        ],
        T0,
    )
    assert list(records.queued()) == [(payments[2], 10), (payments[3], 20), (payments[0], 30)]
    records.record([(payments[3], outcome(payments[3]), None, [])], T0 + 1)
    assert list(records.queued()) == [(payments[2], 10), (payments[0], 30)]


def test_records_are_listed_by_payment_id_and_counted_by_status(records):
    ids = ["b:2", "a:10", "a:9", "é:1", "A:1"]
    statuses = [PaymentStatus.SETTLED, PaymentStatus.REJECTED, PaymentStatus.SETTLED] * 2
    for payment_id, status in zip(ids, statuses, strict=False):
        payment = replace(pay(0), payment_id=payment_id)
        records.record([(payment, outcome(payment, status), None, [])], T0)
    listed = list(records.records())
    assert [p.payment_id for p, _ in listed] == sorted(ids)  # Code point (byte) order.
    assert all(o.payment_id == p.payment_id for p, o in listed)
    assert records.counts() == {"settled": 3, "rejected": 2}


def test_seqs_follow_the_first_record_and_never_change(records):
    for number in (5, 3, 4):
        records.record([(pay(number), outcome(pay(number)), None, [])], T0 + number)
    seqs = {
        r.payment.payment_id: r.seq for r in records.list_payments(PaymentFilter(everything=True))
    }
    assert seqs[pay(5).payment_id] < seqs[pay(3).payment_id] < seqs[pay(4).payment_id]
    records.record([(pay(5), outcome(pay(5), PaymentStatus.RETURNED), None, [])], T0 + 9)
    assert records.payment(pay(5).payment_id).seq == seqs[pay(5).payment_id]


def test_lists_are_filtered_by_visibility_and_status_and_paged_by_seq(records):
    kz_cn = [pay(n) for n in range(5)]
    cn_kz = [pay(10 + n, "ICBKCNBJ", "KCJBKZKX", 500_00, "CNY", "KZT") for n in range(3)]
    ru_ru = [pay(20, "SABRRUMM", "VTBRRUMM", 7_00, "RUB", "RUB")]
    for payment in kz_cn + cn_kz + ru_ru:
        status = PaymentStatus.QUEUED if payment in cn_kz[:2] else PaymentStatus.SETTLED
        records.record([(payment, outcome(payment, status), 1, [])], T0)

    def ids(visible, **options):
        return [r.payment.payment_id for r in records.list_payments(visible, **options)]

    everything = PaymentFilter(everything=True)
    assert ids(everything) == [p.payment_id for p in kz_cn + cn_kz + ru_ru]
    assert ids(PaymentFilter(parties=["BKCHCNBJ"])) == [p.payment_id for p in kz_cn]
    assert ids(PaymentFilter(parties=["KCJBKZKX", "SABRRUMM"])) == [
        p.payment_id for p in cn_kz + ru_ru
    ]
    assert ids(PaymentFilter(currencies=["KZT"])) == [p.payment_id for p in kz_cn + cn_kz]
    assert ids(PaymentFilter()) == []
    assert ids(everything, status=PaymentStatus.QUEUED) == [p.payment_id for p in cn_kz[:2]]
    first = records.list_payments(everything, limit=4)
    rest = records.list_payments(everything, after=first[-1].seq, limit=100)
    assert [r.payment.payment_id for r in first + rest] == ids(everything)
    assert records.list_payments(everything, after=rest[-1].seq) == []
    found = records.payment(kz_cn[0].payment_id)
    assert found == first[0] and found.received_at == T0
    assert records.payment("nobody:P1") is None


def test_corridor_totals_are_exact_past_int64(records):
    huge = [pay(n, amount=INT64_MAX) for n in range(2)]
    for payment in huge:
        settled = outcome(payment, amount_delivered_minor=INT64_MAX)
        records.record([(payment, settled, None, [])], T0)
    queued = pay(5, amount=300)
    records.record([(queued, outcome(queued, PaymentStatus.QUEUED), 1, [])], T0 + 1)
    routed = pay(6, amount=300)  # In flight: counted in ``payments`` only.
    records.record([(routed, outcome(routed, PaymentStatus.ROUTED), None, [])], T0 + 1)
    rub = pay(7, "SABRRUMM", "BKCHCNBJ", 9, "RUB", "CNY")
    records.record([(rub, outcome(rub, PaymentStatus.REJECTED), None, [])], T0 + 2)
    everything = PaymentFilter(everything=True)
    assert records.corridors(everything) == [
        CorridorTotals(
            "KZ-CN",
            "KZ",
            "CN",
            "KZT",
            "CNY",
            payments=4,
            settled_count=2,
            queued_count=1,
            settled_value_minor=2 * INT64_MAX,
            delivered_value_minor=2 * INT64_MAX,
        ),
        CorridorTotals("RU-CN", "RU", "CN", "RUB", "CNY", payments=1, rejected_count=1),
    ]
    assert [c.corridor for c in records.corridors(PaymentFilter(currencies=["RUB"]))] == ["RU-CN"]
    window = records.corridors(everything, received_min=T0 + 1, received_max=T0 + 1)
    assert [(c.payments, c.settled_count) for c in window] == [(2, 0)]
    assert records.corridors(PaymentFilter()) == []


def test_an_amount_outside_int64_is_recorded(records):
    # The engine refuses it (AM02), and records the refusal with the instruction as sent.
    payment = pay(1, amount=10**20)
    refused = outcome(payment, PaymentStatus.REJECTED, reason=Reason.AM02)
    records.record([(payment, refused, None, RECEIVED)], T0)
    assert records.get(payment.payment_id) == (payment, refused, None)
    (totals,) = records.corridors(PaymentFilter(everything=True))
    assert (totals.rejected_count, totals.settled_value_minor) == (1, 0)


@durable
def test_everything_is_kept_across_a_reopen(records_factory):
    records = records_factory()
    payment, waiting, pending = pay(1), pay(2), pay(3)
    records.begin([(payment, "settle"), (pending, "settle")], T0)
    records.record([(payment, outcome(payment), None, RECEIVED)], T0 + 1)
    records.record([(waiting, outcome(waiting, PaymentStatus.QUEUED), 4, [])], T0 + 1)
    before = _contents(records)
    records.close()
    again = records_factory()
    assert _contents(again) == before
    assert again.intents() == [(pending, "settle")]
    assert list(again.queued()) == [(waiting, 4)]


@durable
def test_a_read_only_session_reads_and_never_writes(records_factory):
    writer = records_factory()
    payment = pay(1)
    writer.record([(payment, outcome(payment), None, RECEIVED)], T0)
    writer.begin([(pay(2), "settle")], T0)
    reader = records_factory(readonly=True)
    assert _contents(reader) == _contents(writer)
    for write in (
        lambda: reader.record([(pay(3), outcome(pay(3)), None, [])], T0),
        lambda: reader.begin([(pay(3), "settle")], T0),
        lambda: reader.drop_intents([pay(2).payment_id]),
    ):
        with pytest.raises(PermissionError):
            write()
    assert _contents(reader) == _contents(writer)


@durable
def test_a_failed_record_leaves_no_trace(records_factory):
    records = records_factory()
    first, second = pay(1), pay(2)
    records.begin([(first, "settle"), (second, "settle")], T0)
    before = _contents(records)
    broken = [(PaymentStatus.SETTLED, None)]  # NOT NULL: fails after the payments are written.
    with pytest.raises(Exception, match=r"(?i)null"):
        records.record(
            [(first, outcome(first), None, RECEIVED), (second, outcome(second), None, broken)],
            T0 + 1,
        )
    assert _contents(records) == before
    assert records.intents() == [(first, "settle"), (second, "settle")]
    records.record([(first, outcome(first), None, RECEIVED)], T0 + 2)  # It still works.
    assert [p.payment_id for p, _ in records.records()] == [first.payment_id]


def test_the_earlier_sqlite_layout_is_migrated_and_keeps_its_cursors(tmp_path):
    # Before the records had their own read side, the server kept their API index in a table of
    # its own, ``api_payment_index``, whose seqs clients hold as list cursors.
    from sco_settle.storage.payment_records_sql import payment_to_json

    path = tmp_path / "old.db"
    payments = [pay(1), pay(2, "ICBKCNBJ", "KCJBKZKX", 5_00, "CNY", "KZT"), pay(3)]
    old = sqlite3.connect(path)
    old.executescript(_EARLIER_LAYOUT)
    for payment in payments:
        old.execute(
            "INSERT INTO payments VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                payment.payment_id,
                payment_to_json(payment),
                "settled",
                None,
                "",
                9,
                "[]",
                "[]",
                T0,
                T0 + 1,
                None,
            ),
        )
        old.execute(
            "INSERT INTO payment_events VALUES (?, 1, 'received', ?, '')", (payment.payment_id, T0)
        )
    # The first two were indexed (with seqs 5 and 9); the third not yet.
    old.executemany(
        "INSERT INTO api_payment_index VALUES (?,?,?,?,?,?,?,?)",
        [
            (5, payments[0].payment_id, "HSBKKZKX", "BKCHCNBJ", "KZT", "CNY", 1_000_00, T0 + 1),
            (9, payments[1].payment_id, "ICBKCNBJ", "KCJBKZKX", "CNY", "KZT", 5_00, T0 + 1),
        ],
    )
    old.commit()
    old.close()
    records = SqlitePaymentRecords(path)
    try:
        listed = records.list_payments(PaymentFilter(everything=True))
        assert [(r.seq, r.payment) for r in listed] == list(zip((5, 9, 10), payments, strict=True))
        assert [r.payment for r in records.list_payments(PaymentFilter(parties=["KCJBKZKX"]))] == [
            payments[1]
        ]
        assert records.list_payments(PaymentFilter(everything=True), after=9)[0].seq == 10
        (kz_cn, cn_kz) = records.corridors(PaymentFilter(everything=True))[::-1]
        assert (kz_cn.settled_count, kz_cn.settled_value_minor) == (2, 2 * 1_000_00)
        assert (cn_kz.corridor, cn_kz.delivered_value_minor) == ("CN-KZ", 9)
        assert records.events(payments[2].payment_id) == [PaymentEvent("received", T0, "")]
        records.record([(pay(4), outcome(pay(4)), None, [])], T0 + 2)
        assert records.payment(pay(4).payment_id).seq == 11
        tables = {row[0] for row in records.connection.execute("SELECT name FROM sqlite_master")}
        assert "api_payment_index" not in tables
    finally:
        records.close()


_EARLIER_LAYOUT = """
CREATE TABLE payments (
    payment_id TEXT PRIMARY KEY, body TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    reason_text TEXT NOT NULL, delivered INTEGER NOT NULL, route TEXT NOT NULL,
    transfer_ids TEXT NOT NULL, settled_at INTEGER NOT NULL, received_at INTEGER NOT NULL,
    queue_seq INTEGER
);
CREATE INDEX payments_by_status ON payments (status, queue_seq);
CREATE TABLE payment_intents (
    payment_id TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL
);
CREATE TABLE payment_events (
    payment_id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL, at INTEGER NOT NULL,
    detail TEXT NOT NULL, PRIMARY KEY (payment_id, seq)
) WITHOUT ROWID;
CREATE TABLE api_payment_index (
    seq INTEGER PRIMARY KEY, payment_id TEXT NOT NULL UNIQUE, debtor_agent TEXT NOT NULL,
    creditor_agent TEXT NOT NULL, currency TEXT NOT NULL, creditor_currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL, received_at INTEGER NOT NULL
);
"""


def _contents(records):
    """Everything the records hold, through the port."""
    everything = PaymentFilter(everything=True)
    listed = records.list_payments(everything, limit=1000)
    return {
        "records": list(records.records()),
        "intents": records.intents(),
        "queued": list(records.queued()),
        "counts": records.counts(),
        "listed": listed,
        "events": {r.payment.payment_id: records.events(r.payment.payment_id) for r in listed},
        "corridors": records.corridors(everything),
    }
