"""Who is calling, and what they may see: API keys, optional HMAC signing, roles.

Authentication (every endpoint but ``GET /health``), either or both of:

- ``Authorization: Bearer scos_<key id>_<secret>``. The secret is checked against its argon2id
  hash. Argon2 is deliberately slow (~50 ms), so a success is remembered in a bounded LRU keyed by
  (key id, SHA-256 of the secret) together with the *hash it verified against*. The key's row is
  still read on every request: a revoked or expired key is refused at once, and a key whose hash
  changed is verified again.
- Signed requests: ``X-SCOS-Key-Id``, ``X-SCOS-Timestamp`` (Unix seconds), ``X-SCOS-Nonce``
  (16-64 of ``[A-Za-z0-9_-]``) and ``X-SCOS-Signature``, the lowercase hex HMAC-SHA256, keyed
  with the key's signing secret, of::

      METHOD "\\n" RAW_PATH ["?" RAW_QUERY] "\\n" TIMESTAMP "\\n" NONCE "\\n" hex(SHA-256(body))

  A timestamp more than ``signature_skew_seconds_max`` (300 s) away from the server's clock is
  refused, and so is a nonce already seen for the key within the window (a bounded cache; when it
  is full of live nonces, signed requests get 503 until some expire).

When both are present they must name the same key and both must verify.

Authorization (``Principal``): a participant sees and moves only its own accounts and payments;
a currency operator (a central bank) reads everything in the currencies it settles and runs their
netting cycles; the network operator does everything; an auditor reads everything.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sco_settle.domain.account import Account
from sco_settle.server.config import ServerConfig
from sco_settle.server.errors import ApiError
from sco_settle.server.keys import KeyRecord, KeyStatus, KeyStore, Role, parse_api_key

_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_SIGNING_HEADERS = ("x-scos-key-id", "x-scos-timestamp", "x-scos-nonce", "x-scos-signature")
_READ_ALL = frozenset({Role.NETWORK_OPERATOR, Role.AUDITOR})


@dataclass(frozen=True)
class Principal:
    key_id: str
    participant: str  # BIC
    role: Role
    currencies: frozenset[str]  # a currency operator's currencies (those it settles)

    @property
    def scope(self) -> str:
        """The idempotency scope: keys of one participant and role (also across rotation)."""
        return f"{self.role.value}:{self.participant}"

    def may_read_account(self, account: Account) -> bool:
        if self.role in _READ_ALL:
            return True
        if self.role is Role.CURRENCY_OPERATOR:
            return account.currency in self.currencies
        return account.participant == self.participant

    def may_read_payment(
        self, debtor_agent: str, creditor_agent: str, currency: str, creditor_currency: str
    ) -> bool:
        if self.role in _READ_ALL:
            return True
        if self.role is Role.CURRENCY_OPERATOR:
            return currency in self.currencies or creditor_currency in self.currencies
        return self.participant in (debtor_agent, creditor_agent)

    @property
    def moves_money(self) -> bool:
        """May submit transfers and payments (participants: from their own accounts only)."""
        return self.role in (Role.PARTICIPANT, Role.NETWORK_OPERATOR)

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(role.value for role in roles)
            raise ApiError("forbidden", f"this operation needs the role {allowed}")


@dataclass(frozen=True)
class SignedRequest:
    method: str
    target: str  # raw path, plus "?" and the raw query if there is one
    body: bytes


def canonical_request(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), target, timestamp, nonce, digest)).encode()


def sign(secret: str, method: str, target: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The ``X-SCOS-Signature`` value (also used by the tests and the benchmark)."""
    message = canonical_request(method, target, timestamp, nonce, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class NonceCache:
    """Nonces seen per key, kept until their timestamp can no longer pass the skew check."""

    def __init__(self, entries_max: int) -> None:
        self.entries_max = entries_max
        self._expiry: dict[tuple[str, str], float] = {}
        self._order: deque[tuple[float, tuple[str, str]]] = deque()
        self._lock = threading.Lock()

    def add(self, key_id: str, nonce: str, expires_at: float, now: float) -> None:
        """Remember the nonce, or raise ``nonce_replayed`` / ``nonce_cache_full``."""
        entry = (key_id, nonce)
        with self._lock:
            while self._order and self._order[0][0] <= now:
                _, old = self._order.popleft()
                if self._expiry.get(old, now + 1) <= now:
                    del self._expiry[old]
            if self._expiry.get(entry, 0) > now:
                raise ApiError("nonce_replayed", "this nonce was already used with this key")
            if len(self._expiry) >= self.entries_max:
                raise ApiError("nonce_cache_full", "too many signed requests in the last minutes")
            self._expiry[entry] = expires_at
            self._order.append((expires_at, entry))


class VerifiedKeys:
    """A bounded LRU of (key id, SHA-256 of secret) -> the argon2 hash that secret verified."""

    def __init__(self, entries_max: int) -> None:
        self.entries_max = entries_max
        self._entries: OrderedDict[tuple[str, bytes], str] = OrderedDict()
        self._lock = threading.Lock()

    def verified(self, key_id: str, digest: bytes, secret_hash: str) -> bool:
        with self._lock:
            found = self._entries.get((key_id, digest))
            if found is None:
                return False
            self._entries.move_to_end((key_id, digest))
            return hmac.compare_digest(found, secret_hash)

    def remember(self, key_id: str, digest: bytes, secret_hash: str) -> None:
        with self._lock:
            self._entries[(key_id, digest)] = secret_hash
            self._entries.move_to_end((key_id, digest))
            while len(self._entries) > self.entries_max:
                self._entries.popitem(last=False)


class Authenticator:
    def __init__(
        self,
        keys: KeyStore,
        config: ServerConfig,
        currencies_of: Callable[[str], frozenset[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.config = config
        self.currencies_of = currencies_of
        self.clock = clock
        self.verified = VerifiedKeys(config.key_cache_max)
        self.nonces = NonceCache(config.nonce_cache_max)
        self._argon2_slots = threading.BoundedSemaphore(config.argon2_concurrent_max)

    def authenticate(self, headers: Mapping[str, str], request: SignedRequest) -> Principal:
        """The caller, or raise a 401 ``ApiError``. Blocking (database read, maybe argon2)."""
        bearer = _bearer(headers.get("authorization"))
        signed = any(name in headers for name in _SIGNING_HEADERS)
        if bearer is None and not signed:
            raise ApiError(
                "credentials_missing",
                "send Authorization: Bearer <API key> or signed-request headers",
                headers={"WWW-Authenticate": 'Bearer realm="sco-settle"'},
            )
        record = None
        if bearer is not None:
            record = self._check_bearer(bearer)
        if signed:
            signed_record = self._check_signature(headers, request)
            if record is not None and record.key_id != signed_record.key_id:
                raise ApiError("signature_invalid", "the signature is not by the bearer key")
            record = signed_record
        assert record is not None
        return Principal(
            key_id=record.key_id,
            participant=record.participant,
            role=record.role,
            currencies=self.currencies_of(record.participant)
            if record.role is Role.CURRENCY_OPERATOR
            else frozenset(),
        )

    def _active(self, key_id: str, code: str) -> KeyRecord:
        record = self.keys.get(key_id)
        if record is None or record.status(int(self.clock())) is not KeyStatus.ACTIVE:
            raise ApiError(code, "unknown, revoked or expired key")
        return record

    def _check_bearer(self, token: str) -> KeyRecord:
        parsed = parse_api_key(token)
        if parsed is None:
            raise ApiError("credentials_invalid", "not an SCO Settle API key")
        key_id, secret = parsed
        record = self._active(key_id, "credentials_invalid")
        digest = hashlib.sha256(secret.encode()).digest()
        if self.verified.verified(key_id, digest, record.secret_hash):
            return record
        with self._argon2_slots:
            ok = self.keys.verify_secret(record, secret)
        if not ok:
            raise ApiError("credentials_invalid", "unknown, revoked or expired key")
        self.verified.remember(key_id, digest, record.secret_hash)
        return record

    def _check_signature(self, headers: Mapping[str, str], request: SignedRequest) -> KeyRecord:
        values = [headers.get(name, "") for name in _SIGNING_HEADERS]
        key_id, timestamp, nonce, signature = values
        if not all(values):
            raise ApiError("signature_invalid", "all four X-SCOS-* signing headers are needed")
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            raise ApiError("signature_invalid", "X-SCOS-Timestamp must be Unix seconds")
        if not _NONCE.fullmatch(nonce):
            raise ApiError("signature_invalid", "X-SCOS-Nonce must be 16-64 of [A-Za-z0-9_-]")
        if not _SIGNATURE.fullmatch(signature):
            raise ApiError("signature_invalid", "X-SCOS-Signature must be 64 lowercase hex digits")
        record = self._active(key_id, "signature_invalid")
        expected = sign(
            record.signing_secret, request.method, request.target, timestamp, nonce, request.body
        )
        if not hmac.compare_digest(expected, signature):
            raise ApiError("signature_invalid", "the signature does not match the request")
        now = self.clock()
        skew = self.config.signature_skew_seconds_max
        if abs(now - int(timestamp)) > skew:
            raise ApiError("signature_expired", f"timestamp is more than {skew} s from now")
        self.nonces.add(key_id, nonce, int(timestamp) + skew + 1, now)
        return record


def _bearer(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("credentials_invalid", "use the Bearer scheme")
    return token.strip()
