"""Who is calling, and what they may see: API keys, optional HMAC signing, roles.

Authentication (every endpoint but ``GET /health``), either or both of:

- ``Authorization: Bearer scos_<key id>_<secret>``. The secret is checked against the key's
  SHA-256 digest (``keys.secret_digest``; why a fast digest is right for a 256-bit random secret
  is explained in ``keys``), with ``hmac.compare_digest``. The key's row is read on every request:
  a revoked or expired key is refused at once.
- Signed requests: ``X-SCOS-Key-Id``, ``X-SCOS-Timestamp`` (Unix seconds), ``X-SCOS-Nonce``
  (16-64 of ``[A-Za-z0-9_-]``) and ``X-SCOS-Signature``, the lowercase hex HMAC-SHA256, keyed
  with the key's signing secret, of::

      METHOD "\\n" RAW_PATH ["?" RAW_QUERY] "\\n" TIMESTAMP "\\n" NONCE "\\n" hex(SHA-256(body))

  A timestamp more than ``signature_skew_seconds_max`` (300 s) away from the server's clock is
  refused, and so is a nonce already seen for the key within the window (``NonceCache``: bounded
  per key, so one key holder cannot lock the others out).

When both are present they must name the same key and both must verify.

Abuse resistance (findings H2, M6 and L4 of the security review):

- No existence oracle. A key id that does not exist (or is revoked or expired) costs the same as
  a known one: the row is read, the digest (or the HMAC) is computed and compared against a dummy
  value, and the answer is the same 401 with the same detail.
- No pool starvation. New keys never touch argon2. A legacy key (argon2id hash, issued before
  digests) is verified in one of ``argon2_concurrent_max`` slots, taken without waiting: when all
  are busy the answer is 503 ``server_busy`` at once, so waiting requests never hold the thread
  pool. Its first success replaces the hash with the digest, so each legacy key is slow once.
- Failure rate limits (``FailureLimiter``): failed authentications (``WrongCredentials``:
  well-formed credentials that do not verify) fill a token bucket for the key id they named and
  one for the client address; when either is empty the request is answered 429
  ``too_many_authentication_failures`` (with ``Retry-After``) before the key is read or any hash
  computed. A client that recently authenticated with a key id is exempt for that key id, so
  failures against a key from elsewhere (or from behind the same NAT) do not lock out its
  holder. Both tables are LRU-bounded. Malformed credentials are refused without any lookup or
  hash, so they are not counted (but they are refused 429 too from a limited address).
- Attributable failures: each failure is logged (``authentication_failed``) with the key id it
  named, the client address and the request id; never the secret or the token.

Authorization (``Principal``): a participant sees and moves only its own accounts and payments;
a currency operator (a central bank) reads everything in the currencies it settles and runs their
netting cycles; the network operator does everything; an auditor reads everything.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sco_settle.domain.account import Account
from sco_settle.server.config import ServerConfig
from sco_settle.server.errors import ApiError
from sco_settle.server.keys import (
    DIGEST_PREFIX,
    KeyRecord,
    KeyStatus,
    KeyStore,
    Role,
    is_key_id,
    is_legacy_hash,
    parse_api_key,
    secret_digest,
)

_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_SIGNING_HEADERS = ("x-scos-key-id", "x-scos-timestamp", "x-scos-nonce", "x-scos-signature")
_READ_ALL = frozenset({Role.NETWORK_OPERATOR, Role.AUDITOR})
# A token's key id, for attribution even when the rest of the token is malformed.
_CLAIMED_KEY_ID = re.compile(r"scos_([0-9a-f]{16})_")
# What an unknown, revoked or expired key is compared against, so it costs what a known one does.
_DUMMY_DIGEST = DIGEST_PREFIX + "0" * 64
_DUMMY_SIGNING_SECRET = "0" * 43
# Refusals logged as failed authentications. Only ``WrongCredentials`` (a guess) are counted.
_FAILURE_CODES = frozenset({"credentials_invalid", "signature_invalid"})
_INVALID_KEY = "unknown, revoked or expired key, or a wrong secret"
_INVALID_SIGNATURE = "unknown, revoked or expired key, or a signature that does not match"
IPV6_CLIENT_PREFIX = 64  # An IPv6 client is limited by its /64: one host usually holds one.

logger = logging.getLogger("sco_settle.server.auth")


class NeedsWorkerThread(Exception):
    """``authenticate(..., quick=True)`` met work that must not run on the event loop (an
    argon2 verification of a legacy key, and its upgrade): run it again in a worker thread.
    Raised before anything is counted."""


class WrongCredentials(ApiError):
    """Well-formed credentials that do not verify: a wrong secret or signature, or an unknown,
    revoked or expired key id. These are what a brute force sends, so they are what
    ``FailureLimiter`` counts. Not counted: malformed credentials (refused before any key is
    read or hash computed, they cannot be a guess), a replayed nonce or a stale timestamp under a
    valid signature (the caller holds the key), busy answers."""


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
    """The parts of a request that authentication reads besides its headers."""

    method: str
    target: str  # raw path, plus "?" and the raw query if there is one
    body: bytes
    client: str = ""  # the peer's address ("" if unknown): failure limits and logs
    request_id: str = ""  # for the failure log line


def canonical_request(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), target, timestamp, nonce, digest)).encode()


def sign(secret: str, method: str, target: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The ``X-SCOS-Signature`` value (also used by the tests and the benchmark)."""
    message = canonical_request(method, target, timestamp, nonce, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class NonceCache:
    """Nonces seen per key, kept until their timestamp can no longer pass the skew check.

    Partitioned by key id, so that one key holder cannot fill it for everyone (finding M6):

    - A key holds at most ``per_key_max`` live nonces. Beyond, *its* signed requests get 429
      ``nonce_quota_exceeded`` until some of its nonces expire; other keys are unaffected.
    - At most ``keys_max`` keys hold live nonces (a key takes one slot however many nonces it
      has, so exhausting this needs that many valid keys); a new key beyond gets 503
      ``nonce_cache_full``.
    - All keys together hold about ``entries_max`` nonces: once the total is reached, only keys
      holding more than an equal share (``entries_max`` / keys holding nonces) are refused (429),
      so even several colluding keys cannot lock out a key that uses its share. Admissions under
      that rule keep the total below twice ``entries_max``, which is also enforced (503).
    """

    def __init__(self, entries_max: int, *, per_key_max: int | None = None, keys_max: int = 1000):
        assert entries_max >= 1 and keys_max >= 1, (entries_max, keys_max)
        self.entries_max = entries_max
        self.per_key_max = entries_max if per_key_max is None else per_key_max
        self.keys_max = keys_max
        self._by_key: dict[str, dict[str, int]] = {}  # key id -> nonce -> expiry
        self._due: list[tuple[int, str, str]] = []  # heap of (expiry, key id, nonce)
        self._lock = threading.Lock()

    def add(self, key_id: str, nonce: str, expires_at: int, now: float) -> None:
        """Remember the nonce, or raise ``nonce_replayed`` (401), ``nonce_quota_exceeded``
        (429: this key is over its bound) or ``nonce_cache_full`` (503)."""
        with self._lock:
            self._expire(now)
            live = self._by_key.get(key_id)
            if live is not None and live.get(nonce, 0) > now:
                raise ApiError("nonce_replayed", "this nonce was already used with this key")
            held = 0 if live is None else len(live)
            keys = len(self._by_key) + (live is None)
            if keys > self.keys_max or len(self._due) >= 2 * self.entries_max:
                raise ApiError("nonce_cache_full", "too many keys signed requests recently")
            over_share = len(self._due) >= self.entries_max and held >= self.entries_max / keys
            if held >= self.per_key_max or over_share:
                raise ApiError(
                    "nonce_quota_exceeded",
                    "too many signed requests with this key in the last minutes",
                    headers={"Retry-After": "1"},
                )
            if live is None:
                live = self._by_key[key_id] = {}
            live[nonce] = expires_at
            heapq.heappush(self._due, (expires_at, key_id, nonce))

    def __len__(self) -> int:
        return len(self._due)

    def _expire(self, now: float) -> None:
        while self._due and self._due[0][0] <= now:
            expires_at, key_id, nonce = heapq.heappop(self._due)
            live = self._by_key[key_id]
            assert live[nonce] == expires_at  # A nonce is re-added only once it has expired.
            del live[nonce]
            if not live:
                del self._by_key[key_id]


class VerifiedKeys:
    """A bounded LRU of (key id, SHA-256 of secret) -> the legacy argon2 hash it verified.

    Only for keys still holding an argon2 hash (their upgrade to a digest may have failed).
    """

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


class TokenBuckets:
    """Token buckets by name: each holds up to ``capacity`` tokens and regains ``per_second``.

    A name without a bucket has a full one, so only names that spent tokens are kept; at most
    ``entries_max`` of them (least recently used dropped first: memory stays bounded whatever
    the names an attacker invents, at worst by giving an old name a full bucket again).
    Not thread-safe: ``FailureLimiter`` holds the lock.
    """

    def __init__(self, capacity: int, per_second: float, entries_max: int) -> None:
        assert capacity >= 1 and per_second > 0 and entries_max >= 1
        self.capacity = capacity
        self.per_second = per_second
        self.entries_max = entries_max
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # (tokens, at)

    def tokens(self, name: str, now: float) -> float:
        found = self._buckets.get(name)
        if found is None:
            return float(self.capacity)
        tokens, at = found
        return min(float(self.capacity), tokens + max(0.0, now - at) * self.per_second)

    def retry_after(self, name: str, now: float) -> int | None:
        """Seconds until the bucket has a token again, or None if it has one now."""
        tokens = self.tokens(name, now)
        return None if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.per_second))

    def take(self, name: str, now: float) -> bool:
        """Spend a token; whether this emptied the bucket (the name is limited from now on)."""
        tokens = self.tokens(name, now)
        self._buckets[name] = (max(0.0, tokens - 1), now)
        self._buckets.move_to_end(name)
        while len(self._buckets) > self.entries_max:
            self._buckets.popitem(last=False)
        return tokens >= 1 and tokens - 1 < 1

    def __len__(self) -> int:
        return len(self._buckets)


class FailureLimiter:
    """Failed authentications per key id and per client address (finding H2).

    ``refusal`` is asked before anything else is done for a request: while either bucket is
    empty the request is refused, without reading the key or hashing anything. A (key id,
    client) pair that authenticated recently (an LRU of ``known_max``) is not refused for that
    key id, nor for its address: a key's holder keeps working while someone elsewhere (or behind
    the same NAT) fails against its key id. Failures from it still count.
    """

    def __init__(self, config: ServerConfig) -> None:
        buckets_max = config.auth_failure_buckets_max
        self.by_key_id = TokenBuckets(
            config.auth_failures_per_key_id_max,
            config.auth_failures_per_key_id_per_second,
            buckets_max,
        )
        self.by_client = TokenBuckets(
            config.auth_failures_per_client_max,
            config.auth_failures_per_client_per_second,
            buckets_max,
        )
        self.known_max = config.auth_clients_known_max
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def refusal(self, key_ids: tuple[str, ...], client: str, now: float) -> int | None:
        """Seconds to wait (``Retry-After``) if this attempt is refused now, else None."""
        with self._lock:
            if key_ids and all((key_id, client) in self._known for key_id in key_ids):
                return None
            waits = [self.by_client.retry_after(client, now)]
            waits += [self.by_key_id.retry_after(key_id, now) for key_id in key_ids]
            found = [wait for wait in waits if wait is not None]
            return max(found) if found else None

    def failed(self, key_ids: tuple[str, ...], client: str, now: float) -> bool:
        """Count a failure; whether it emptied a bucket (requests are refused from now on)."""
        with self._lock:
            emptied = [self.by_client.take(client, now)]
            emptied += [self.by_key_id.take(key_id, now) for key_id in key_ids]
            return any(emptied)

    def succeeded(self, key_id: str, client: str) -> None:
        with self._lock:
            self._known[(key_id, client)] = None
            self._known.move_to_end((key_id, client))
            while len(self._known) > self.known_max:
                self._known.popitem(last=False)


def client_bucket(address: str) -> str:
    """The name a client's failures are counted under: its IPv4 address, its IPv6 /64."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # Not an IP (a Unix socket, a test transport): as given.
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(parsed)


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
        self.nonces = NonceCache(
            config.nonce_cache_max,
            per_key_max=config.nonce_per_key_max,
            keys_max=config.nonce_keys_max,
        )
        self.limiter = FailureLimiter(config)
        self._argon2_slots = threading.BoundedSemaphore(config.argon2_concurrent_max)

    def authenticate(
        self, headers: Mapping[str, str], request: SignedRequest, *, quick: bool = False
    ) -> Principal:
        """The caller, or raise a 401 (429, 503) ``ApiError``. Blocking (a database read).

        ``quick``: the caller is the event loop, and the key table is a local SQLite file (a
        primary-key read of ~30 us): raise ``NeedsWorkerThread`` instead of doing slow work
        (argon2 for a legacy key), which must then be done in a worker thread."""
        authorization = headers.get("authorization")
        signed = any(name in headers for name in _SIGNING_HEADERS)
        if authorization is None and not signed:
            raise ApiError(
                "credentials_missing",
                "send Authorization: Bearer <API key> or signed-request headers",
                headers={"WWW-Authenticate": 'Bearer realm="sco-settle"'},
            )
        client = client_bucket(request.client)
        key_ids = _claimed_key_ids(authorization, headers.get("x-scos-key-id"))
        now = self.clock()
        refused = self._refusal(key_ids, client, now)
        if refused is not None:  # Not logged one by one: the failures that emptied it were.
            raise refused
        try:
            record = self._verify(authorization, signed, headers, request, now, quick)
        except ApiError as error:
            limited = False
            if isinstance(error, WrongCredentials):
                limited = self.limiter.failed(key_ids, client, now)
            if error.code in _FAILURE_CODES:
                self._log("authentication_failed", key_ids, request, error, limited)
            raise
        self.limiter.succeeded(record.key_id, client)
        return Principal(
            key_id=record.key_id,
            participant=record.participant,
            role=record.role,
            currencies=self.currencies_of(record.participant)
            if record.role is Role.CURRENCY_OPERATOR
            else frozenset(),
        )

    def refusal(self, headers: Mapping[str, str], client: str) -> ApiError | None:
        """The 429 ``authenticate`` would answer at once because a key id the request names, or
        its client address, is over its failure limit; None if it would go on. Only a lock and
        some arithmetic: the admission layer asks this on the event loop, before anything else
        (``admission``)."""
        key_ids = _claimed_key_ids(headers.get("authorization"), headers.get("x-scos-key-id"))
        return self._refusal(key_ids, client_bucket(client), self.clock())

    def _refusal(self, key_ids: tuple[str, ...], client: str, now: float) -> ApiError | None:
        wait = self.limiter.refusal(key_ids, client, now)
        if wait is None:
            return None
        return ApiError(
            "too_many_authentication_failures",
            f"too many failed authentications for this key id or client; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )

    def _verify(
        self,
        authorization: str | None,
        signed: bool,
        headers: Mapping[str, str],
        request: SignedRequest,
        now: float,
        quick: bool = False,
    ) -> KeyRecord:
        record = None
        if authorization is not None:
            record = self._check_bearer(_bearer(authorization), now, quick)
        if signed:
            signed_record = self._check_signature(headers, request)
            if record is not None and record.key_id != signed_record.key_id:
                raise ApiError("signature_invalid", "the signature is not by the bearer key")
            record = signed_record
        assert record is not None
        return record

    def _usable(self, key_id: str, now: float) -> KeyRecord | None:
        """The key's row if it is active. Read for unknown ids too (same cost)."""
        record = self.keys.find_for_authentication(key_id)
        if record is None or record.status(int(now)) is not KeyStatus.ACTIVE:
            return None
        return record

    def _check_bearer(self, token: str, now: float, quick: bool = False) -> KeyRecord:
        parsed = parse_api_key(token)
        if parsed is None:
            raise ApiError("credentials_invalid", "not an SCO Settle API key")
        key_id, secret = parsed
        record = self._usable(key_id, now)
        if record is not None and is_legacy_hash(record.secret_hash):
            return self._check_legacy(record, secret, quick)
        # Unknown, revoked and expired keys do the same work as a known one: no timing oracle.
        expected = _DUMMY_DIGEST if record is None else record.secret_hash
        matches = hmac.compare_digest(expected, secret_digest(key_id, secret))
        if record is None or not matches:
            raise WrongCredentials("credentials_invalid", _INVALID_KEY)
        return record

    def _check_legacy(self, record: KeyRecord, secret: str, quick: bool = False) -> KeyRecord:
        """A key issued with an argon2 hash: verify it in a free slot or answer 503 at once."""
        digest = hashlib.sha256(secret.encode()).digest()
        if self.verified.verified(record.key_id, digest, record.secret_hash):
            return record
        if quick:
            raise NeedsWorkerThread
        if not self._argon2_slots.acquire(blocking=False):
            raise ApiError(
                "server_busy",
                "too many verifications of legacy API keys at once; retry",
                headers={"Retry-After": "1"},
            )
        try:
            ok = self.keys.verify_secret(record, secret)
        finally:
            self._argon2_slots.release()
        if not ok:
            raise WrongCredentials("credentials_invalid", _INVALID_KEY)
        self.verified.remember(record.key_id, digest, record.secret_hash)
        try:
            self.keys.upgrade_secret_hash(record, secret)
        except Exception:  # The database is busy or read-only: upgrade on a later success.
            logger.warning(
                "could not replace a legacy key hash",
                exc_info=True,
                extra={"event": "key_hash_upgrade_failed", "key_id": record.key_id},
            )
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
        now = self.clock()
        record = self._usable(key_id, now) if is_key_id(key_id) else None
        # An unknown key is checked against a dummy secret: the same work, the same answer.
        secret = _DUMMY_SIGNING_SECRET if record is None else record.signing_secret
        expected = sign(secret, request.method, request.target, timestamp, nonce, request.body)
        if not hmac.compare_digest(expected, signature) or record is None:
            raise WrongCredentials("signature_invalid", _INVALID_SIGNATURE)
        skew = self.config.signature_skew_seconds_max
        if abs(now - int(timestamp)) > skew:
            raise ApiError("signature_expired", f"timestamp is more than {skew} s from now")
        self.nonces.add(key_id, nonce, int(timestamp) + skew + 1, now)
        return record

    def _log(
        self,
        event: str,
        key_ids: tuple[str, ...],
        request: SignedRequest,
        error: ApiError,
        limited: bool,
    ) -> None:
        """One line per failed attempt, naming the key id it tried (L4); never the secret.
        ``limited``: this failure emptied a bucket, and the next attempts get 429."""
        logger.warning(
            event.replace("_", " "),
            extra={
                "event": event,
                "key_id": key_ids[0] if key_ids else None,
                "other_key_id": key_ids[1] if len(key_ids) > 1 else None,
                "client": request.client,
                "request_id": request.request_id,
                "code": error.code,
                "malformed": not isinstance(error, WrongCredentials),
                "limited": limited,
            },
        )


def _claimed_key_ids(authorization: str | None, signed_key_id: str | None) -> tuple[str, ...]:
    """The well-formed key ids a request names (bearer first), without verifying anything."""
    found: list[str] = []
    if authorization is not None:
        match = _CLAIMED_KEY_ID.search(authorization)
        if match is not None:
            found.append(match.group(1))
    if signed_key_id is not None and is_key_id(signed_key_id) and signed_key_id not in found:
        found.append(signed_key_id)
    return tuple(found)


def _bearer(value: str) -> str:
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("credentials_invalid", "use the Bearer scheme")
    return token.strip()
