"""The model-based ledger test of ``tests/ledger/test_stateful.py``, on a PostgreSQL store.

Same rules, same naive reference model; the ledger writes to a fresh schema per example, the
``restart`` rule reopens it from PostgreSQL, and the teardown replays the journal with ``verify``
through a read-only store. Bounded: SCO_STATEFUL_POSTGRES_EXAMPLES examples (default 30).
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, rule
from psycopg import sql

from sco_settle.domain.account import Account
from sco_settle.ledger import Ledger
from sco_settle.ledger.invariants import verify
from sco_settle.storage.postgres import PostgresStore
from tests.ledger.conftest import CMNED, DMNEC, FakeClock
from tests.ledger.test_stateful import LedgerMachine, Model

from .conftest import POSTGRES_DSN

# The accounts LedgerMachine starts with (its __init__ opens SQLite, so it is not reused).
INITIAL_ACCOUNTS = [
    Account(1, "PBOCCNBJ", "CNY", "issuance"),
    Account(2, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC),
    Account(3, "ICBKCNBJ", "CNY", "settlement", flags=DMNEC, credit_limit=200),
    Account(4, "NBRKKZKX", "CNY", "swap-line", flags=CMNED, credit_limit=300),
    Account(5, "NBRKKZKX", "KZT", "issuance"),
    Account(6, "HSBKKZKX", "KZT", "settlement", flags=DMNEC),
]


@pytest.fixture(autouse=True)
def _postgres_is_reachable(postgres_dsn):
    """Skip (locally) or fail (CI) before Hypothesis starts, as every PostgreSQL test does."""


class PostgresLedgerMachine(LedgerMachine):
    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.schema = f"sco_stateful_{worker}_{uuid.uuid4().hex[:12]}"
        self.clock = FakeClock()
        self.ledger = Ledger(PostgresStore(POSTGRES_DSN, schema=self.schema), self.clock)
        self.model = Model()
        self._check_accounts(INITIAL_ACCOUNTS)

    @rule()
    def restart(self):
        self.ledger.close()
        self.ledger = Ledger(PostgresStore(POSTGRES_DSN, schema=self.schema), self.clock)
        # A batch that changed nothing (every result "exists", say) is not written, so the
        # timestamps it took are not durable: after a restart the ledger numbers on from its
        # last durable event, and the model must too. (The random run of seed
        # 118122694312027368243495264336037468708 found the model one nanosecond ahead here:
        # a pending transfer expiring at exactly that nanosecond was expired in the model and
        # still open in the ledger. No durable state differs; the ledger is right.)
        self.model.last = self.ledger.state.last_timestamp

    def teardown(self):
        self.ledger.close()
        try:
            store = PostgresStore(POSTGRES_DSN, schema=self.schema, readonly=True)
            try:
                report = verify(store)
            finally:
                store.close()
        finally:
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
                connection.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
                )
        assert report.ok, report.violation


TestPostgresLedgerStateful = PostgresLedgerMachine.TestCase
TestPostgresLedgerStateful.settings = settings(
    max_examples=int(os.environ.get("SCO_STATEFUL_POSTGRES_EXAMPLES", "30")),
    stateful_step_count=25,
    deadline=None,
    # Reproducible in CI; explore with --hypothesis-seed or SCO_STATEFUL_RANDOM=1. (The random
    # run of seed 118122694312027368243495264336037468708 found the model's clock ahead of the
    # ledger's after a restart: see ``restart``.)
    derandomize=not os.environ.get("SCO_STATEFUL_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow],
)
