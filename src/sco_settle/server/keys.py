"""API keys: ``scos_<key id>_<secret>``, stored as an argon2id hash of the secret.

Guarantees:
- The secret is shown once, when the key is created (or rotated); only its argon2id hash is
  stored (table ``api_keys``, see ``db``). Nobody, not even the server, can show it again.
- A key belongs to one participant (a BIC) and has one role; both never change.
- A revoked key is refused from the next request on (requests read the key's row every time).
- Rotation issues a new key for the same participant and role; the old one stays valid until the
  end of its grace period (``expires_at``) or until it is revoked, whichever comes first.

Each key also has a *signing secret* for optional HMAC request signing (see ``auth``). HMAC needs
the secret itself on both sides, so it is stored as issued, like any shared signing secret: protect
the database as you protect the ledger. It cannot be used as a bearer key.
"""

from __future__ import annotations

import enum
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sco_settle.server.db import StateDb

KEY_PREFIX = "scos"
KEY_ID_BYTES = 8  # 16 hex characters
SECRET_BYTES = 32
ROTATION_GRACE_SECONDS_DEFAULT = 24 * 3600
LABEL_LENGTH_MAX = 100
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_BIC = re.compile(r"[A-Z0-9]{8}(?:[A-Z0-9]{3})?")
_TOKEN = re.compile(r"scos_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_COLUMNS = (
    "key_id, participant, role, secret_hash, signing_secret, label, created_at, expires_at,"
    " revoked_at, rotated_from, rotated_to"
)


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


def parse_api_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def is_key_id(text: str) -> bool:
    return bool(_KEY_ID.fullmatch(text))


class KeyStore:
    def __init__(self, db: StateDb, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile

    def create(
        self,
        participant: str,
        role: Role,
        *,
        label: str = "",
        now: int | None = None,
        rotated_from: str | None = None,
        expires_predecessor_at: int | None = None,
    ) -> IssuedKey:
        now = int(time.time()) if now is None else now
        key_id = secrets.token_hex(KEY_ID_BYTES)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        signing_secret = secrets.token_urlsafe(SECRET_BYTES)
        assert len(secret) == 43 and _KEY_ID.fullmatch(key_id)
        record = KeyRecord(
            key_id=key_id,
            participant=participant,
            role=Role(role),
            secret_hash=self.hasher.hash(secret),
            signing_secret=signing_secret,
            label=label[:LABEL_LENGTH_MAX],
            created_at=now,
            expires_at=None,
            revoked_at=None,
            rotated_from=rotated_from,
            rotated_to=None,
        )
        with self.db.transaction(durable=True) as execute:
            _insert(execute, record)
            if rotated_from is not None:
                # The predecessor's end, in the same transaction: both or neither.
                execute(
                    "UPDATE api_keys SET expires_at = ?, rotated_to = ? WHERE key_id = ?",
                    (expires_predecessor_at, key_id, rotated_from),
                )
        api_key = f"{KEY_PREFIX}_{key_id}_{secret}"
        assert parse_api_key(api_key) == (key_id, secret)
        return IssuedKey(record, api_key, signing_secret)

    def get(self, key_id: str) -> KeyRecord | None:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
        return _record(rows[0]) if rows else None

    def list(self, *, after: str = "", limit: int = 100) -> list[KeyRecord]:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_id > ? ORDER BY key_id LIMIT ?",
            (after, limit),
        )
        return [_record(row) for row in rows]

    def revoke(self, key_id: str, *, now: int | None = None) -> KeyRecord:
        """Revoke a key (again is a no-op that keeps the first revocation time)."""
        now = int(time.time()) if now is None else now
        with self.db.transaction(durable=True) as execute:
            execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
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
    ) -> IssuedKey:
        """Issue a successor; the old key expires after ``grace_seconds`` (0: at once)."""
        assert grace_seconds >= 0, grace_seconds
        now = int(time.time()) if now is None else now
        old = self.get(key_id)
        if old is None:
            raise UnknownKeyError(key_id)
        if old.status(now) is not KeyStatus.ACTIVE:
            raise KeyNotActiveError(f"key {key_id} is {old.status(now).value}")
        issued = self.create(
            old.participant, old.role, label=old.label, now=now, rotated_from=key_id
        )
        expires_at = now + grace_seconds
        if old.expires_at is not None:
            expires_at = min(expires_at, old.expires_at)
        with self.db.transaction(durable=True) as execute:
            execute(
                "UPDATE api_keys SET expires_at = ?, rotated_to = ? WHERE key_id = ?",
                (expires_at, issued.record.key_id, key_id),
            )
        return issued

    def verify_secret(self, record: KeyRecord, secret: str) -> bool:
        """The slow check (argon2id, ~50 ms of CPU): callers cache successes."""
        try:
            return bool(self.hasher.verify(record.secret_hash, secret))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


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
