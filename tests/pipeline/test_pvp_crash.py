"""Payment-versus-payment across a crash: a process settling cross-currency payments is killed with
SIGKILL again and again; every payment found in the ledger has its whole chain (both currency legs
and every hop), the ledger verifies, and the work resumes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time

from sco_settle.ledger.invariants import verify
from sco_settle.payments.plan import CODE_SWAP_DRAW
from sco_settle.storage import SqliteStore

KILLS = 12
PAYER = r"""
import sys, itertools
from sco_settle.network.install import install_network
from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.payments.engine import PaymentEngine
from sco_settle.payments.model import Payment
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.storage import SqliteStore
from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords
db, start = sys.argv[1], int(sys.argv[2])
network = load_network("sco")
ledger = Ledger(SqliteStore(db))
if not ledger.accounts():
    install_network(ledger, network)
engine = PaymentEngine(ledger, NetworkView(network, load_rates()), SqlitePaymentRecords(db))
pairs = [("HSBKKZKX", "BKCHCNBJ", "KZT", "CNY"), ("BKCHCNBJ", "HSBKKZKX", "CNY", "KZT"),
         ("KICBKG22", "ICBKCNBJ", "KGS", "CNY"), ("SABRRUMM", "ICBKCNBJ", "RUB", "CNY")]
for n in itertools.count(start):
    debtor, creditor, source, target = pairs[n % len(pairs)]
    engine.submit(Payment(f"crash-{n}", debtor, creditor, 1_000_00 + n, source, target))
    print(n, flush=True)
"""


def test_payment_chains_are_whole_after_sigkill(tmp_path):
    db = tmp_path / "pvp.db"
    rng = random.Random(11)
    start = 0
    for _ in range(KILLS):
        process = subprocess.Popen(
            [sys.executable, "-c", PAYER, str(db), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(process.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not lines and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # Start-up (imports, network load) is over at the first payment.
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        reader.join(timeout=10)
        err = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
        assert "Traceback" not in err, err
        done = [int(line) for line in lines if line.endswith("\n") and line.strip().isdigit()]
        start = (done[-1] + 1) if done else start
        store = SqliteStore(db, readonly=True)
        try:
            report = verify(store)
            assert report.ok, report.violation
            chains: dict[str, list] = {}
            for transfer in store.iter_transfers():
                if transfer.ref.startswith("crash-"):
                    chains.setdefault(transfer.ref, []).append(transfer)
        finally:
            store.close()
        for ref, transfers in chains.items():
            *body, last = transfers
            assert all(t.flags & 1 for t in body) and not last.flags & 1, f"{ref} is half-settled"
            if any(t.code == CODE_SWAP_DRAW for t in transfers):  # Converted by a central bank.
                assert len({t.currency for t in transfers}) == 2, f"{ref} lacks a currency leg"
        acknowledged = {f"crash-{n}" for n in done}
        assert acknowledged <= chains.keys(), "an acknowledged payment is missing from the ledger"
    assert len(chains) > KILLS
    # Security review M4 / issue 8 #3: a kill between the ledger commit and the payment record
    # left money moved with no record. At start the engine settles every such payment from the
    # ledger (its intent was durable first), so records and ledger reconcile both ways.
    from sco_settle.ledger import Ledger
    from sco_settle.network import load_network
    from sco_settle.payments.engine import PaymentEngine
    from sco_settle.payments.network_view import NetworkView, load_rates
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    ledger = Ledger(SqliteStore(db))
    journal = SqlitePaymentRecords(db)
    try:
        engine = PaymentEngine(ledger, NetworkView(load_network("sco"), load_rates()), journal)
        assert not engine.recovered.foreign, engine.recovered.foreign
        audit = engine.audit()
        assert audit.ok, audit.findings[:5]
        assert not journal.intents()
        settled = {p.payment_id for p, o in journal.records() if o.status.value == "settled"}
        assert settled == chains.keys()  # Every chain has its record, every record its chain.
    finally:
        ledger.close()
        journal.close()
