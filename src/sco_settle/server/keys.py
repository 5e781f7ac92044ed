"""API keys: ``scos_<key id>_<secret>``, stored as a SHA-256 digest of the secret.

Guarantees:
- The secret is shown once, when the key is created (or rotated); only its digest is stored
  (table ``api_keys``, see ``db``). Nobody, not even the server, can show it again.
- A key belongs to one participant (a BIC) and has one role; both never change.
- A revoked key is refused from the next request on (requests read the key's row every time).
- Rotation issues a new key for the same participant and role, in one transaction with the
  predecessor's end: the old key stays valid until the end of its grace period (``expires_at``,
  never later than an expiry it already had) or until it is revoked, whichever comes first. A key
  is rotated at most once (it has at most one successor).

Why a plain, fast digest and not a password hash (argon2id, bcrypt) or an HMAC with a pepper:
the secret is 32 bytes from ``secrets`` (256 bits of entropy), not a password someone chose.
Guessing it from a leaked digest costs about 2**255 SHA-256 evaluations whatever the hash's
speed, so slowness buys nothing; it only made every wrong guess cost the server ~50 ms of CPU
(finding H2 of the security review). A per-deployment pepper would protect low-entropy secrets
if the database leaked without the pepper; for these secrets it adds nothing, while every
process that issues keys (the server, ``sco-settle keys``, tests, benchmarks) would need it and
losing it would invalidate every key. The digest covers a version tag and the key id as well
(``SHA-256("sco-settle api key v1" NUL key_id NUL secret)``), so a row's digest is good for that
key id only. Digests are compared with ``hmac.compare_digest``.

Keys issued before this scheme have an argon2id hash (``$argon2id$...``, *legacy*). They are
still accepted: ``auth`` verifies them (at most ``argon2_concurrent_max`` at once, never waiting
for a slot) and replaces the hash with the digest on the first success (``upgrade_secret_hash``).

Each key also has a *signing secret* for optional HMAC request signing (see ``auth``). HMAC needs
the secret itself on both sides, so it is stored as issued, like any shared signing secret: protect
the database as you protect the ledger. It cannot be used as a bearer key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sco_settle.audit.chain import AuditKind
from sco_settle.audit.records import KEY_FIELDS, key_payload, key_secret_digest
from sco_settle.audit.sql import SQLITE_DDL, AuditTables, append_entry
from sco_settle.server.config import DatabaseKind
from sco_settle.server.db import StateDb

KEY_PREFIX = "scos"
KEY_ID_BYTES = 8  # 16 hex characters
SECRET_BYTES = 32
ROTATION_GRACE_SECONDS_DEFAULT = 24 * 3600
DIGEST_PREFIX = "sha256$"  # secret_hash of keys issued now; legacy ones start with "$argon2"
_DIGEST_TAG = b"sco-settle api key v1"
LABEL_LENGTH_MAX = 100
# Who a key change is attributed to in the audit chain when the caller does not say: the API
# passes ``key:<key id>`` of the operator's key, the command line ``cli``.
ACTOR_DEFAULT = "unattributed"
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_BIC = re.compile(r"[A-Z0-9]{8}(?:[A-Z0-9]{3})?")
_TOKEN = re.compile(r"scos_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_COLUMNS = (
    "key_id, participant, role, secret_hash, signing_secret, label, created_at, expires_at,"
    " revoked_at, rotated_from, rotated_to"
)
# Decoded in place of a missing key's row (``find_for_authentication``); never stored.
_PLACEHOLDER_ROW = ("0" * 16, "", "participant", "", "", "", 0, None, None, None, None)


class Role(enum.StrEnum):
    PARTICIPANT = "participant"  # its own accounts and payments only
    CURRENCY_OPERATOR = "currency_operator"  # a central bank: read its currencies, run cycles
    NETWORK_OPERATOR = "network_operator"  # everything, cycles, keys
    AUDITOR = "auditor"  # read everything, change nothing


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    participant: str
    role: Role
    secret_hash: str
    signing_secret: str
    label: str
    created_at: int  # Unix seconds
    expires_at: int | None
    revoked_at: int | None
    rotated_from: str | None
    rotated_to: str | None

    def status(self, now: int) -> KeyStatus:
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE

    def public(self, now: int) -> dict[str, object]:
        """What may be shown about a key: never its hash or its signing secret."""
        return {
            "key_id": self.key_id,
            "participant": self.participant,
            "role": self.role.value,
            "label": self.label,
            "status": self.status(now).value,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "rotated_from": self.rotated_from,
            "rotated_to": self.rotated_to,
        }


@dataclass(frozen=True)
class IssuedKey:
    """A new key as shown to its holder, once."""

    record: KeyRecord
    api_key: str
    signing_secret: str


class UnknownKeyError(LookupError):
    """No key with that id."""


class KeyNotActiveError(RuntimeError):
    """The key is revoked or expired; it cannot be rotated."""


class KeyAlreadyRotatedError(KeyNotActiveError):
    """The key already has a successor; it cannot be rotated again.

    A subclass of ``KeyNotActiveError`` so that callers that only know "cannot be rotated" (the
    CLI) refuse it too; the API answers it with its own code, 409 ``key_already_rotated``.
    """


def parse_api_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def is_key_id(text: str) -> bool:
    return bool(_KEY_ID.fullmatch(text))


def secret_digest(key_id: str, secret: str) -> str:
    """What ``api_keys.secret_hash`` holds for a key issued now (see the module docstring)."""
    digest = hashlib.sha256(b"\0".join((_DIGEST_TAG, key_id.encode(), secret.encode())))
    return DIGEST_PREFIX + digest.hexdigest()


def is_legacy_hash(secret_hash: str) -> bool:
    """An argon2 hash of a key issued before digests (slow to verify)."""
    return not secret_hash.startswith(DIGEST_PREFIX)


class KeyStore:
    def __init__(self, db: StateDb, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        # Only verifies legacy argon2id hashes; new keys are stored as ``secret_digest``.
        self.hasher = hasher or PasswordHasher()
        self._audit_tables: AuditTables | None = None

    def create(
        self,
        participant: str,
        role: Role,
        *,
        label: str = "",
        now: int | None = None,
        actor: str = ACTOR_DEFAULT,
    ) -> IssuedKey:
        now = int(time.time()) if now is None else now
        issued = _new_key(participant, Role(role), label, now, rotated_from=None)
        with self.db.transaction(durable=True) as execute:
            _insert(execute, issued.record)
            self._audit(execute, AuditKind.KEY_CREATED, actor, issued.record)
        return issued

    def _audit(
        self, execute: Callable[..., list[tuple[object, ...]]], kind: AuditKind, actor: str,
        record: KeyRecord,
    ) -> None:  # fmt: skip
        """Append the key's state after the change to the audit chain, in the open transaction."""
        if self._audit_tables is None:
            self._audit_tables = audit_tables(self.db, execute)
        append_entry(execute, self._audit_tables, kind, actor, key_entry_payload(record))

    def get(self, key_id: str) -> KeyRecord | None:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
        return _record(rows[0]) if rows else None

    def find_for_authentication(self, key_id: str) -> KeyRecord | None:
        """``get``, doing the same work whether the key exists or not: a missing key decodes a
        placeholder row, so that its refusal takes as long as a known key's (no timing oracle
        on key ids; the remaining difference is SQLite returning a row's columns, ~2 us)."""
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
        record = _record(rows[0] if rows else _PLACEHOLDER_ROW)
        return record if rows else None

    def list(self, *, after: str = "", limit: int = 100) -> list[KeyRecord]:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_id > ? ORDER BY key_id LIMIT ?",
            (after, limit),
        )
        return [_record(row) for row in rows]

    def revoke(
        self, key_id: str, *, now: int | None = None, actor: str = ACTOR_DEFAULT
    ) -> KeyRecord:
        """Revoke a key (again is a no-op that keeps the first revocation time)."""
        now = int(time.time()) if now is None else now
        with self.db.transaction(durable=True) as execute:
            rows = execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
            if rows and _record(rows[0]).revoked_at is None:
                execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (now, key_id))
                revoked = dataclasses.replace(_record(rows[0]), revoked_at=now)
                self._audit(execute, AuditKind.KEY_REVOKED, actor, revoked)
        found = self.get(key_id)
        if found is None:
            raise UnknownKeyError(key_id)
        return found

    def rotate(
        self,
        key_id: str,
        *,
        grace_seconds: int = ROTATION_GRACE_SECONDS_DEFAULT,
        now: int | None = None,
        actor: str = ACTOR_DEFAULT,
    ) -> IssuedKey:
        """Issue a successor; the old key expires after ``grace_seconds`` (0: at once).

        One transaction reads the old key (locked), inserts the successor and sets the old key's
        ``expires_at`` and ``rotated_to``: a crash leaves both keys as they were, or both rotated.
        An earlier expiry of the old key is kept. Raises ``UnknownKeyError``,
        ``KeyNotActiveError`` or ``KeyAlreadyRotatedError``.
        """
        assert grace_seconds >= 0, grace_seconds
        now = int(time.time()) if now is None else now
        # PostgreSQL: lock the row, so that two rotations of one key cannot both pass the checks.
        # SQLite: the write transaction (BEGIN IMMEDIATE) already excludes every other writer.
        lock = " FOR UPDATE" if self.db.kind is DatabaseKind.POSTGRES else ""
        with self.db.transaction(durable=True) as execute:
            rows = execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?{lock}", (key_id,))
            if not rows:
                raise UnknownKeyError(key_id)
            old = _record(rows[0])
            if old.rotated_to is not None:
                raise KeyAlreadyRotatedError(f"key {key_id} already has a successor")
            if old.status(now) is not KeyStatus.ACTIVE:
                raise KeyNotActiveError(f"key {key_id} is {old.status(now).value}")
            expires_at = now + grace_seconds
            if old.expires_at is not None:
                expires_at = min(expires_at, old.expires_at)
            issued = _new_key(old.participant, old.role, old.label, now, rotated_from=key_id)
            _insert(execute, issued.record)
            execute(
                "UPDATE api_keys SET expires_at = ?, rotated_to = ? WHERE key_id = ?",
                (expires_at, issued.record.key_id, key_id),
            )
            rotated = dataclasses.replace(
                old, expires_at=expires_at, rotated_to=issued.record.key_id
            )
            self._audit(execute, AuditKind.KEY_ROTATED, actor, rotated)
            self._audit(execute, AuditKind.KEY_CREATED, actor, issued.record)
        return issued

    def verify_secret(self, record: KeyRecord, secret: str) -> bool:
        """Whether ``secret`` is the key's. Fast for digests; ~50 ms of CPU for a legacy hash."""
        if not is_legacy_hash(record.secret_hash):
            return hmac.compare_digest(record.secret_hash, secret_digest(record.key_id, secret))
        try:
            return bool(self.hasher.verify(record.secret_hash, secret))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def upgrade_secret_hash(self, record: KeyRecord, secret: str) -> None:
        """Replace a legacy hash with the digest of ``secret`` (already verified against it).

        Conditional on the row still holding the hash that was verified, so a concurrent change
        (another upgrade) is never overwritten with a stale value.
        """
        assert is_legacy_hash(record.secret_hash)
        digest = secret_digest(record.key_id, secret)
        with self.db.transaction(durable=True) as execute:
            rows = execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ? AND secret_hash = ?",
                (record.key_id, record.secret_hash),
            )
            if rows:
                execute(
                    "UPDATE api_keys SET secret_hash = ? WHERE key_id = ?", (digest, record.key_id)
                )
                upgraded = dataclasses.replace(_record(rows[0]), secret_hash=digest)
                self._audit(execute, AuditKind.KEY_SECRET_UPGRADED, "server", upgraded)


def key_entry_payload(record: KeyRecord) -> dict[str, object]:
    """What the audit chain states of a key: its public fields and the digest of its secrets."""
    fields = [getattr(record, name) for name in KEY_FIELDS]
    fields[KEY_FIELDS.index("role")] = record.role.value
    return key_payload(fields, key_secret_digest(record.secret_hash, record.signing_secret))


def audit_tables(db: StateDb, execute: Callable[..., object]) -> AuditTables:
    """The audit chain of ``db``'s ledger: in its SQLite file (created in the open transaction
    ``execute`` if the file predates the chain), or in the ledger's PostgreSQL schema, laid out
    first if no ledger was opened there yet (``keys create`` may come before ``serve``)."""
    if db.kind is DatabaseKind.SQLITE:
        for statement in SQLITE_DDL.split(";"):
            if statement.strip():
                execute(statement)
        return AuditTables.sqlite()
    schema = db.database.schema
    rows = db.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = ? AND tablename = 'audit_log'", (schema,)
    )
    if not rows:
        from sco_settle.storage.postgres import PostgresStore

        PostgresStore(db.database.dsn, schema=schema).close()
    return AuditTables.postgres(schema)


def _new_key(
    participant: str, role: Role, label: str, now: int, *, rotated_from: str | None
) -> IssuedKey:
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    signing_secret = secrets.token_urlsafe(SECRET_BYTES)
    assert len(secret) == 43 and _KEY_ID.fullmatch(key_id)
    record = KeyRecord(
        key_id=key_id,
        participant=participant,
        role=role,
        secret_hash=secret_digest(key_id, secret),
        signing_secret=signing_secret,
        label=label[:LABEL_LENGTH_MAX],
        created_at=now,
        expires_at=None,
        revoked_at=None,
        rotated_from=rotated_from,
        rotated_to=None,
    )
    api_key = f"{KEY_PREFIX}_{key_id}_{secret}"
    assert parse_api_key(api_key) == (key_id, secret)
    return IssuedKey(record, api_key, signing_secret)


def _insert(execute: Callable[..., object], record: KeyRecord) -> None:
    execute(
        f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            record.key_id,
            record.participant,
            record.role.value,
            record.secret_hash,
            record.signing_secret,
            record.label,
            record.created_at,
            record.expires_at,
            record.revoked_at,
            record.rotated_from,
            record.rotated_to,
        ),
    )


def _record(row: tuple[object, ...]) -> KeyRecord:
    return KeyRecord(
        key_id=str(row[0]),
        participant=str(row[1]),
        role=Role(str(row[2])),
        secret_hash=str(row[3]),
        signing_secret=str(row[4]),
        label=str(row[5]),
        created_at=int(row[6]),  # type: ignore[call-overload]
        expires_at=None if row[7] is None else int(row[7]),  # type: ignore[call-overload]
        revoked_at=None if row[8] is None else int(row[8]),  # type: ignore[call-overload]
        rotated_from=None if row[9] is None else str(row[9]),
        rotated_to=None if row[10] is None else str(row[10]),
    )


def holder_problem(network: object, participant: str, role: Role) -> str | None:
    """Why ``participant`` cannot hold a key with ``role`` in ``network``, or None if it can.

    Participants and currency operators are network participants (a currency operator is the
    central bank settling at least one currency); the network operator and auditors are
    identified by a BIC but need not be participants.
    """
    if not _BIC.fullmatch(participant):
        return f"{participant!r} is not a BIC (8 or 11 letters and digits)"
    known = participant in network.participants_by_bic  # type: ignore[attr-defined]
    if role is Role.PARTICIPANT and not known:
        return f"{participant} is not a participant of the network"
    if role is Role.CURRENCY_OPERATOR:
        agents = network.settlement_agents  # type: ignore[attr-defined]
        if participant not in agents.values():
            return f"{participant} settles no currency of the network"
    return None
