"""Server configuration: where the ledger lives, which network it runs, and every limit.

A database is named by URL:

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's convention: three
  slashes then the path); a bare path without a scheme is taken as a SQLite file too.
- ``postgresql://user@host:port/database`` (or ``postgres://``), with the ledger in ``schema``.

Where each kind of state is kept (see docs/api.md, "Where state is kept"):

==========================  =================================  ====================================
state                       SQLite deployment                  PostgreSQL deployment
==========================  =================================  ====================================
ledger (accounts, ...)      the database file                  schema ``<schema>``
payment records             tables ``payments``,               tables ``payments``,
                            ``payment_events``,                ``payment_events``,
                            ``payment_intents`` in the file    ``payment_intents`` in ``<schema>``
API keys, idempotency,      tables ``api_*`` in the same file  schema ``<schema>_api``
netting cycles
==========================  =================================  ====================================

``payment_records_path`` (``serve --payment-records``) keeps the payment records in a SQLite file
of their own instead, as deployments made before the records moved into the ledger's database did.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from sco_settle.payments.modes import Mode

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,58}")  # 63 minus the "_api" suffix.

PAGE_LIMIT_DEFAULT = 100
PAGE_LIMIT_MAX = 1000


class DatabaseKind(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class ConfigError(ValueError):
    """The configuration cannot work (a bad URL, schema name, ...); the message says why."""


@dataclass(frozen=True)
class Database:
    """A parsed database URL."""

    kind: DatabaseKind
    path: Path | None = None  # SQLite only
    dsn: str = ""  # PostgreSQL only
    schema: str = "sco_settle"  # PostgreSQL only

    @property
    def api_schema(self) -> str:
        return f"{self.schema}_api"

    def describe(self) -> str:
        """For logs: the location without credentials."""
        if self.kind is DatabaseKind.SQLITE:
            return f"sqlite:{self.path}"
        host = re.sub(r"//[^@/]*@", "//", self.dsn)
        return f"postgresql:{host.split('?')[0]} schema={self.schema}"


def parse_database_url(url: str, *, schema: str = "sco_settle") -> Database:
    text = url.strip()
    if not text:
        raise ConfigError("--db is empty; give sqlite:///PATH or postgresql://...")
    if text.startswith(("postgresql://", "postgres://")):
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(f"schema {schema!r} must match {_SCHEMA_NAME.pattern}")
        return Database(DatabaseKind.POSTGRES, dsn=text, schema=schema)
    if text.startswith("sqlite://"):
        rest = text[len("sqlite://") :]
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(f"{url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
        return Database(DatabaseKind.SQLITE, path=Path(rest[1:]))
    if "://" in text:
        raise ConfigError(f"{url!r}: unsupported database URL; use sqlite:/// or postgresql://")
    return Database(DatabaseKind.SQLITE, path=Path(text))


@dataclass(frozen=True)
class ServerConfig:
    database: Database
    network: str = "sco"  # network name or YAML file; installed into an empty ledger
    rates: str | None = None  # FX rate file; None: the network's shipped rates (``<name>``)
    # None: the payment records live in the ledger's database; else in this SQLite file.
    payment_records_path: Path | None = None
    mode: Mode = Mode.RTGS
    # The operating day (``payments/operating_day.py``, ``server/end_of_day.py``): payments
    # settle only inside their currency pair's window, and each currency's business day is
    # closed after its end of day (tranches unwound, statements written to ``statements_dir``).
    operating_day: bool = False
    statements_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # Limits (every queue and batch is bounded).
    write_queue_max: int = 10_000  # jobs waiting for the writer; beyond: 503 server_busy
    group_events_max: int = 8190  # transfers merged into one ledger batch (one commit)
    group_payments_max: int = 512  # payments merged into one engine batch
    body_bytes_max: int = 16 * 1024 * 1024  # a full ledger batch of JSON is ~2.5 MB
    read_connections_max: int = 4  # PostgreSQL read-only sessions for history reads
    key_cache_max: int = 10_000  # verified API keys remembered (LRU)
    nonce_cache_max: int = 100_000  # signed-request nonces remembered (bounded)
    signature_skew_seconds_max: int = 300
    argon2_concurrent_max: int = 2  # argon2 verifications at once (each ~50 ms of CPU)
    # Authentication limits
    # Failed authentications fill token buckets, one per key id and one per client address (an
    # IPv6 client by its /64): a bucket takes ``*_max`` failures in a burst and then
    # ``*_per_second``; an empty one is answered 429 before any hash work. A client that recently
    # authenticated with a key id is not limited on that key id (see ``auth``).
    auth_failures_per_key_id_max: int = 20
    auth_failures_per_key_id_per_second: float = 0.2
    auth_failures_per_client_max: int = 50
    auth_failures_per_client_per_second: float = 1.0
    auth_failure_buckets_max: int = 100_000  # buckets kept, of each kind (LRU): bounds memory
    auth_clients_known_max: int = 10_000  # (key id, client) pairs that authenticated (LRU)
    # Admission limits (``admission``: decided before a request is routed or its body read)
    # A failed authentication that counts as a guess is answered after this fixed delay (the
    # same whatever the cause); a 429 of the admission layer (failure limits, write quota, queue
    # share, write slots) when its Retry-After has passed, after at least that delay and at most
    # ``refusal_delay_max_seconds``. At most ``refusals_delayed_max`` answers wait at once, the
    # others are answered at once. 0: every refusal is answered at once.
    refusal_delay_seconds: float = 0.5
    refusal_delay_max_seconds: float = 5.0
    refusals_delayed_max: int = 1_000
    # Writes of one participant that run at once (from the first byte of their body to their
    # answer); more wait for a slot, in arrival order, bodies unread; beyond that many waiting:
    # 429 ``rate_limited``.
    write_requests_per_participant_max: int = 16
    write_requests_waiting_per_participant_max: int = 256
    nonce_per_key_max: int = 20_000  # live nonces of one key; beyond: 429 for that key only
    nonce_keys_max: int = 1_000  # keys with live nonces; beyond: 503 nonce_cache_full
    idempotency_ttl_seconds: int = 24 * 3600
    statement_entries_max: int = 50_000
    # Fairness limits
    # Writes are measured in units of writer work: a transfer is 1 unit, a payment (or a
    # transaction of an ISO 20022 message) ``write_units_per_payment``. Quota: a token bucket per
    # participant and one per API key, refilled at ``write_units_per_second`` up to
    # ``write_units_burst``; a write is admitted while both hold more than nothing and then takes
    # its units (a bucket may go into debt by one write); else 429 ``rate_limited`` with
    # Retry-After, before the body is even validated. The defaults let one participant use about
    # the writer's whole capacity, with 64 batches of 1,000 in flight: a backstop, to be set to
    # what each participant is meant to get.
    # Fairness: the writer serves one queue per participant, in turn, ``write_quantum_units`` per
    # participant and round (payment batches are served in slices of whole payments), so a
    # participant's backlog delays another's request by about one slice. A participant may have
    # at most ``write_queue_participant_max`` jobs and ``write_queue_participant_units_max`` units
    # waiting; beyond: 429 ``rate_limited`` for it alone (``write_queue_max`` still bounds all).
    write_units_per_payment: int = 16  # a payment costs the writer about 16 transfers' work
    write_units_per_second: float = 50_000.0  # per participant and per key (~3,000 payments/s)
    write_units_burst: int = 2_000_000  # per participant and per key (125 batches of 1,000)
    write_rate_buckets_max: int = 10_000  # buckets kept (LRU); an evicted bucket starts full
    write_quantum_units: int = 1_024  # per participant and round (64 payments: ~20-40 ms)
    write_queue_participant_max: int = 1_000  # jobs one participant may have waiting
    write_queue_participant_units_max: int = 1_200_000  # units one participant may have waiting
    # While the writer thread works through a backlog it is CPU-bound: request handlers then wait
    # for the GIL at every socket operation, up to Python's switch interval (5 ms by default),
    # and the backlog's many live objects make full garbage collections (which stop every
    # thread) frequent. The writer sets both when it starts (process-wide; 0: leave them), and
    # freezes what was loaded at start (``gc.freeze``: ~100,000 objects no collection needs to
    # walk again). Every young collection stops every thread for as long as it walks the young
    # objects still alive (payments in flight, routing graphs): at 50,000 that took 50-80 ms,
    # at 5,000 it takes 3-5 ms, ten times as often.
    writer_switch_interval_seconds: float = 0.0005
    writer_gc_young_threshold: int = 5_000  # first value of gc.set_threshold (Python: 700)
    writer_gc_freeze_at_start: bool = True
    # After answering client writes, the writer waits up to this long for their idempotency
    # records (queued back by the handlers within a millisecond or two) before it goes on with
    # another participant's slice, so that an answer does not wait for a whole slice (see
    # ``service._AwaitedRecords``). 0: do not wait.
    writer_record_wait_seconds: float = 0.005
    tick_seconds: float = 1.0  # expire pending transfers, retry the RTGS queue when idle
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        assert 1 <= self.group_events_max <= 8190, self.group_events_max
        assert self.write_queue_max >= 1 and self.group_payments_max >= 1
