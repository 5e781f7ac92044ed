"""What the ledger says happened to a payment: find its chain, check it is the payment's, and
reconcile the payment records with the ledger.

The ledger is the truth about money; the payment records are the truth about instructions. The
engine writes a payment's *intent* durably before its chain goes to the ledger and clears it in
the same transaction that records the outcome (``payments.records``), so after a crash at any point
each payment is in one of these states, and each has exactly one repair:

| payment records            | ledger                | repair at start                       |
|----------------------------|-----------------------|---------------------------------------|
| intent to settle           | its chain, matching   | record it settled (the ledger's chain) |
| intent to settle           | no chain              | drop the intent: nothing happened and |
|                            |                       | nothing was acknowledged              |
| queued                     | its chain (LSM)       | record it settled                     |
| intent to return (settled) | its return chain      | record it returned                    |
| intent to return (settled) | no return chain       | drop the intent                       |
| anything                   | a chain that does not | report it, never guess (the id was    |
|                            | carry the payment     | used for other content: DUPL)         |

Chains live in the engine's reserved id range (``domain.ids.ENGINE_ID_MIN``), which no client can
write, so a chain found under a payment's ids was written by the engine for that payment id.
``audit`` checks the other direction too: every settled record's legs exist, are posted, and carry
its amounts; every payment chain in the ledger has its record.

Pure: reads go through the ``TransferLookup`` callable; no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.domain.ids import is_engine_id
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.payments.model import AmountType, Payment, PaymentOutcome, PaymentStatus
from sco_settle.payments.plan import (
    CODE_FX,
    CODE_LSM,
    CODE_NETTING,
    CODE_PAYMENT,
    CODE_RETURN,
    CODE_SWAP_DRAW,
    leg_id,
    lsm_ids,
)
from sco_settle.payments.routing import Route

TransferLookup = Callable[[Collection[int]], Mapping[int, Transfer]]
CHAIN_LEGS_MAX = 32  # far above the longest route's bookings (hops x 2 + a swap draw)
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING | TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)
PAYMENT_CODES = frozenset({CODE_PAYMENT, CODE_SWAP_DRAW, CODE_LSM, CODE_RETURN, CODE_FX})


@dataclass(frozen=True)
class FoundChain:
    """A payment's settlement as the ledger holds it."""

    transfers: tuple[Transfer, ...]
    lsm: bool  # settled by the liquidity-saving mechanism (debit, credit through clearing)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(transfer.id for transfer in self.transfers)

    @property
    def amount_delivered_minor(self) -> int:
        return self.transfers[-1].amount


class ForeignChain(Exception):
    """The ledger holds a chain under this payment id that does not carry this payment."""


def _prefix_chain(found: Mapping[int, Transfer], ids: list[int]) -> tuple[Transfer, ...] | None:
    """The payment's legs: the longest run of ``ids`` present from ``ids[0]`` (a chain is
    applied whole or not at all). Every leg but the last is linked to the next; the last may be
    linked too, into the chain of the payer's next payment of the same batch (FIFO linking)."""
    chain = []
    for transfer_id in ids:
        transfer = found.get(transfer_id)
        if transfer is None:
            break
        chain.append(transfer)
    if not chain or any(not transfer.flags & _LINKED for transfer in chain[:-1]):
        return None
    return tuple(chain)


def find_chain(payment_id: str, lookup: TransferLookup) -> FoundChain | None:
    """The chain the engine applied to settle ``payment_id`` (gross or by the LSM), or None."""
    gross = [leg_id(payment_id, position) for position in range(CHAIN_LEGS_MAX)]
    pairs = [lsm_ids(payment_id, position) for position in range(CHAIN_LEGS_MAX)]
    found = lookup([*gross, *(i for pair in pairs for i in pair)])
    if gross[0] in found:
        chain = _prefix_chain(found, gross)
        if chain is None:
            raise ForeignChain(f"payment {payment_id!r}: its ledger chain is broken")
        return FoundChain(chain, lsm=False)
    if pairs[0][0] in found or pairs[0][1] in found:
        lsm_chain: list[Transfer] = []
        for debit, credit in pairs:  # Each leg's pair, (debit, credit), up to the first absent.
            if debit not in found and credit not in found:
                break
            if debit not in found or credit not in found:
                raise ForeignChain(f"payment {payment_id!r}: half of an LSM leg is missing")
            lsm_chain += (found[debit], found[credit])
        return FoundChain(tuple(lsm_chain), lsm=True)
    return None


@dataclass(frozen=True)
class PartyAccounts:
    """Which ledger accounts can carry a payment's first debit and last credit."""

    debtor: frozenset[int]
    creditor: frozenset[int]


HolderIndex = Mapping[str, frozenset[int]]


def holder_index(accounts: Iterable[tuple[AccountKey, int]]) -> HolderIndex:
    """Participant BIC -> the accounts a payment can debit or credit for it, in any currency:
    its settlement accounts and its nostros (``vostro:<servicer>:<holder>:<currency>``), from
    (account key, account id) pairs. (A debtor that converts the payment itself pays its first
    leg in the converted currency, from a nostro.)"""
    found: dict[str, set[int]] = {}
    for key, account_id in accounts:
        if key.kind in (AccountKeyKind.SETTLEMENT, AccountKeyKind.VOSTRO):
            found.setdefault(key.owner, set()).add(account_id)
    return {holder: frozenset(ids) for holder, ids in found.items()}


def parties(index: HolderIndex, payment: Payment) -> PartyAccounts:
    return PartyAccounts(
        index.get(payment.debtor_agent, frozenset()),
        index.get(payment.creditor_agent, frozenset()),
    )


def check_chain(payment: Payment, chain: FoundChain, parties: PartyAccounts) -> None:
    """Raise ``ForeignChain`` unless ``chain`` settles exactly ``payment``: posted payment
    bookings; the first debits the debtor agent; the fixed amount is the first leg's (SEND) or
    the last leg's (RECEIVE) when that leg is booked in its currency; the last credits the
    creditor agent in the creditor currency."""
    first, last = chain.transfers[0], chain.transfers[-1]
    problems = []
    if any(transfer.flags & _PENDING for transfer in chain.transfers):
        problems.append("a leg is a pending transfer, not a posted one")
    if any(transfer.code not in PAYMENT_CODES for transfer in chain.transfers):
        problems.append("a leg is not a payment booking")
    fixed = last if payment.amount_type is AmountType.RECEIVE else first
    if fixed.currency in ("", payment.fixed_currency) and fixed.amount != payment.amount_minor:
        side = "last" if fixed is last else "first"
        problems.append(f"{side} leg moves {fixed.amount}, the payment {payment.amount_minor}")
    if first.debit_account not in parties.debtor:
        problems.append("first leg does not debit the debtor agent")
    if last.credit_account not in parties.creditor:
        problems.append("last leg does not credit the creditor agent")
    # The last leg may be in another currency than the creditor's: the creditor agent then
    # converts in its own books (a route's last FX leg at the creditor moves nothing here).
    if problems:
        raise ForeignChain(f"payment {payment.payment_id!r}: " + "; ".join(problems))


def converted_by_creditor(payment: Payment, chain: FoundChain) -> bool:
    """The chain ends in another currency: the creditor agent converts in its own books, so
    the amount delivered in the creditor currency is not a ledger amount."""
    return chain.transfers[-1].currency not in ("", payment.creditor_currency)


def settled_outcome(payment: Payment, chain: FoundChain, route: tuple[str, ...]) -> PaymentOutcome:
    """The outcome the ledger's chain shows. When the creditor agent converted in its own
    books the delivered amount is not in the ledger: it is reported as 0, and says so."""
    own_book = converted_by_creditor(payment, chain)
    first = chain.transfers[0]
    return PaymentOutcome(
        payment.payment_id,
        PaymentStatus.SETTLED,
        reason_text="delivered after the creditor agent's own-book conversion (amount not in"
        " the ledger)"
        if own_book
        else "",
        amount_delivered_minor=0 if own_book else chain.amount_delivered_minor,
        amount_sent_minor=first.amount if first.currency in ("", payment.currency) else 0,
        route=route,
        transfer_ids=chain.ids,
        settled_at=max(transfer.timestamp for transfer in chain.transfers),
    )


def chains_among(payment_ids: list[str], lookup: TransferLookup, chunk: int = 5_000) -> list[str]:
    """The payment ids among ``payment_ids`` that have a chain in the ledger (gross or LSM),
    probing only each chain's first transfer."""
    found_ids: list[str] = []
    for start in range(0, len(payment_ids), chunk):
        probes: dict[int, str] = {}
        for payment_id in payment_ids[start : start + chunk]:
            probes[leg_id(payment_id, 0)] = payment_id
            probes[lsm_ids(payment_id)[0]] = payment_id
        found_ids.extend(dict.fromkeys(probes[i] for i in lookup(list(probes))))
    return found_ids


@dataclass
class RecoveryReport:
    """What ``PaymentEngine.recover`` did at start."""

    settled: int = 0  # recorded settled from the chain the ledger holds
    returned: int = 0  # returns (payments back) among those settled from the ledger
    dropped: int = 0  # intents whose chain never reached the ledger (nothing happened)
    foreign: list[str] = field(default_factory=list)  # chains that do not carry their payment

    def summary(self) -> str:
        return (
            f"{self.settled} settled and {self.returned} returned from the ledger,"
            f" {self.dropped} unapplied intents dropped, {len(self.foreign)} inconsistent"
        )


NET_CYCLE_TEXT = "settled in net cycle"
_CYCLE = "cycle"


def cycle_intent(first_id: int, last_id: int, route: Route) -> str:
    """The intent of a payment about to settle in the net chain ``first_id`` .. ``last_id``."""
    nodes = " ".join(str(node) for node in route.nodes)
    amounts = f"{route.amount_delivered_minor}/{route.legs[0].amount_minor if route.legs else 0}"
    return f"{_CYCLE}:{first_id}:{last_id}:{amounts}:{nodes}"


@dataclass(frozen=True)
class CycleIntent:
    first_id: int
    last_id: int
    delivered_minor: int
    route: tuple[str, ...]
    sent_minor: int = 0


def parse_cycle_intent(kind: str) -> CycleIntent | None:
    if not kind.startswith(f"{_CYCLE}:"):
        return None
    _, first, last, amounts, nodes = kind.split(":", 4)
    delivered, _, sent = amounts.partition("/")  # Intents from before hold no sent amount.
    return CycleIntent(int(first), int(last), int(delivered), tuple(nodes.split()), int(sent or 0))


def net_settled(
    payment: Payment, intent: CycleIntent, lookup: TransferLookup
) -> PaymentOutcome | None:
    """The outcome of a payment whose net cycle's chain the ledger holds (None: it does not)."""
    found = lookup([intent.first_id, intent.last_id])
    if intent.first_id not in found:
        return None
    return PaymentOutcome(
        payment.payment_id,
        PaymentStatus.SETTLED,
        reason_text=f"{NET_CYCLE_TEXT} (found in the ledger at restart)",
        amount_delivered_minor=intent.delivered_minor,
        amount_sent_minor=intent.sent_minor,
        route=intent.route,
        transfer_ids=(intent.first_id, intent.last_id),
        settled_at=max(t.timestamp for t in found.values()),
    )


# -- the audit: payment records against the ledger ---------------------------------------------


@dataclass(frozen=True)
class Finding:
    payment_id: str  # "" for a ledger chain with no record
    problem: str


@dataclass
class AuditReport:
    payments: int = 0
    settled: int = 0
    returned: int = 0
    intents: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def audit(
    records: Iterable[tuple[Payment, PaymentOutcome]],
    intents: int,
    lookup: TransferLookup,
    ledger_transfers: Iterable[Transfer],
    parties_of: Callable[[Payment], PartyAccounts],
) -> AuditReport:
    """Reconcile every payment record with the ledger, and every payment chain in the ledger
    with a record. ``intents``: outstanding intents (repaired at the next start, not findings)."""
    report = AuditReport(intents=intents)
    referenced: set[int] = set()
    for payment, outcome in records:
        report.payments += 1
        referenced.update(outcome.transfer_ids)
        if outcome.status not in (PaymentStatus.SETTLED, PaymentStatus.RETURNED):
            continue
        if outcome.status is PaymentStatus.SETTLED:
            report.settled += 1
        else:
            report.returned += 1
        problem = _record_problem(payment, outcome, lookup, parties_of)
        if problem:
            report.findings.append(Finding(payment.payment_id, problem))
    for transfer in ledger_transfers:
        if (
            is_engine_id(transfer.id)
            and transfer.code in PAYMENT_CODES
            and transfer.id not in referenced
        ):
            report.findings.append(
                Finding("", f"ledger transfer {transfer.id} (code {transfer.code}) has no record")
            )
    return report


def _record_problem(
    payment: Payment,
    outcome: PaymentOutcome,
    lookup: TransferLookup,
    parties_of: Callable[[Payment], PartyAccounts],
) -> str:
    found = lookup(outcome.transfer_ids)
    missing = [i for i in outcome.transfer_ids if i not in found]
    if missing:
        return f"{len(missing)} of its {len(outcome.transfer_ids)} ledger transfers are missing"
    if outcome.reason_text.startswith(NET_CYCLE_TEXT):
        # Netted: its legs were never booked; the net chain that settled it must be there.
        if any(found[i].code != CODE_NETTING or found[i].flags & _PENDING for i in found):
            return "its net cycle's transfers are not posted netting transfers"
        return ""
    if not outcome.transfer_ids:
        return "settled with no ledger transfers"
    if not all(is_engine_id(i) for i in outcome.transfer_ids):
        return "a leg lies outside the engine's reserved id range"
    legs = tuple(i for i in outcome.transfer_ids if found[i].code != CODE_RETURN)  # no return
    if not legs:
        return "no settlement leg"
    lsm = legs[0] == lsm_ids(payment.payment_id)[0]  # one pair per leg (``payments.lsm_fx``)
    if not lsm and legs[0] != leg_id(payment.payment_id, 0):
        return "its first leg is not the payment's own"
    chain = FoundChain(tuple(found[i] for i in legs), lsm=lsm)
    try:
        check_chain(payment, chain, parties_of(payment))
    except ForeignChain as error:
        return str(error)
    if (
        outcome.status is PaymentStatus.SETTLED
        and not converted_by_creditor(payment, chain)
        and outcome.amount_delivered_minor != chain.amount_delivered_minor
    ):
        return (
            f"record says {outcome.amount_delivered_minor} delivered, ledger"
            f" {chain.amount_delivered_minor}"
        )
    return ""
