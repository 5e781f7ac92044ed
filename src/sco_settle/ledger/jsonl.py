"""The JSON-lines scripting format of ``sco-settle apply`` and ``sco-settle export``.

A line is one batch: ``{"accounts": [...]}`` or ``{"transfers": [...]}``. The same field names are
used in and out; export adds the ledger's own fields (timestamp, currency of a transfer, balances of
an account). Ids are decimal strings (128 bits do not fit a JSON number portably) or integers.

Malformed input (not JSON, wrong shape, unknown field or flag, a value of the wrong type) raises
``BatchFormatError`` naming the item and field; nothing of that line is applied. Values of the right
type but outside the rules (amount 0, id 0, unknown account) are left to the ledger, which answers
with a result code per item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sco_settle.domain.account import ACCOUNT_FLAG_NAMES, Account, flag_names
from sco_settle.domain.transfer import TRANSFER_FLAG_NAMES, Transfer
from sco_settle.ledger.state_machine import BATCH_EVENTS_MAX, AccountState

LINE_BYTES_MAX = 16 * 1024 * 1024  # A full batch of 8,190 transfers is ~2.5 MB of JSON.

_TRANSFER_FIELDS = {
    "id",
    "debit_account",
    "credit_account",
    "amount",
    "flags",
    "pending_id",
    "timeout",
    "code",
    "ref",
}
_ACCOUNT_FIELDS = {"id", "participant", "currency", "kind", "flags", "credit_limit", "code", "ref"}


class BatchFormatError(ValueError):
    """A line is not a well-formed batch; the message says where."""


def parse_batch(line: str | bytes) -> tuple[str, list[Account] | list[Transfer]]:
    """Parse one line into ("accounts", [...]) or ("transfers", [...])."""
    if len(line) > LINE_BYTES_MAX:
        raise BatchFormatError(f"line longer than {LINE_BYTES_MAX} bytes")
    try:
        document = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BatchFormatError(f"not JSON: {error}") from error
    if not isinstance(document, dict) or len(document) != 1:
        raise BatchFormatError('expected an object with one key, "accounts" or "transfers"')
    ((kind, items),) = document.items()
    if kind not in ("accounts", "transfers"):
        raise BatchFormatError(f'unknown batch kind {kind!r}; expected "accounts" or "transfers"')
    if not isinstance(items, list):
        raise BatchFormatError(f'"{kind}" must be a list')
    if len(items) > BATCH_EVENTS_MAX:
        raise BatchFormatError(f"batch has {len(items)} items; at most {BATCH_EVENTS_MAX} allowed")
    if kind == "accounts":
        return kind, [_parse_account(index, item) for index, item in enumerate(items)]
    return kind, [_parse_transfer(index, item) for index, item in enumerate(items)]


def _parse_transfer(index: int, item: object) -> Transfer:
    fields = _fields(index, item, _TRANSFER_FIELDS, required={"id"})
    return Transfer(
        id=_integer(index, fields, "id", id_like=True),
        debit_account=_integer(index, fields, "debit_account", id_like=True),
        credit_account=_integer(index, fields, "credit_account", id_like=True),
        amount=_integer(index, fields, "amount"),
        flags=_flags(index, fields, TRANSFER_FLAG_NAMES),
        pending_id=_integer(index, fields, "pending_id", id_like=True),
        timeout=_integer(index, fields, "timeout"),
        code=_integer(index, fields, "code"),
        ref=_string(index, fields, "ref"),
    )


def _parse_account(index: int, item: object) -> Account:
    fields = _fields(
        index, item, _ACCOUNT_FIELDS, required={"id", "participant", "currency", "kind"}
    )
    return Account(
        id=_integer(index, fields, "id", id_like=True),
        participant=_string(index, fields, "participant"),
        currency=_string(index, fields, "currency"),
        kind=_string(index, fields, "kind"),
        flags=_flags(index, fields, ACCOUNT_FLAG_NAMES),
        credit_limit=_integer(index, fields, "credit_limit"),
        code=_integer(index, fields, "code"),
        ref=_string(index, fields, "ref"),
    )


def _fields(index: int, item: object, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(item, dict):
        raise BatchFormatError(f"item {index}: expected an object")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise BatchFormatError(f"item {index}: unknown field {unknown[0]!r}")
    missing = sorted(required - set(item))
    if missing:
        raise BatchFormatError(f"item {index}: missing field {missing[0]!r}")
    return item


def _integer(index: int, fields: Mapping[str, Any], name: str, *, id_like: bool = False) -> int:
    value = fields.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BatchFormatError(f"item {index}: {name} must be an integer or a decimal string")
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] == "-" else text
        if not digits.isascii() or not digits.isdigit() or len(digits) > 40:
            raise BatchFormatError(f"item {index}: {name} {value!r} is not a decimal integer")
        value = int(text)
    if id_like and value.bit_length() > 129:
        raise BatchFormatError(f"item {index}: {name} is far outside 128 bits")
    if not id_like and value.bit_length() > 128:
        raise BatchFormatError(f"item {index}: {name} is far outside 64 bits")
    return value


def _string(index: int, fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name, "")
    if not isinstance(value, str):
        raise BatchFormatError(f"item {index}: {name} must be a string")
    return value


def _flags(index: int, fields: Mapping[str, Any], names: Mapping[str, int]) -> int:
    value = fields.get("flags", [])
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise BatchFormatError(f"item {index}: flags must be a list of names")
    flags = 0
    for name in value:
        if name not in names:
            raise BatchFormatError(
                f"item {index}: unknown flag {name!r}; known: {', '.join(sorted(names))}"
            )
        flags |= int(names[name])
    return flags


def results_line(results: list[Any]) -> str:
    """The acknowledgement line: one result per item, in order."""
    return json.dumps(
        {"results": [{"index": i, "result": str(result)} for i, result in enumerate(results)]}
    )


def error_line(line_number: int, message: str) -> str:
    return json.dumps({"error": message, "line": line_number})


def transfer_to_json(t: Transfer) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "debit_account": str(t.debit_account),
        "credit_account": str(t.credit_account),
        "amount": t.amount,
        "flags": flag_names(t.flags, TRANSFER_FLAG_NAMES),
        "pending_id": str(t.pending_id),
        "timeout": t.timeout,
        "code": t.code,
        "ref": t.ref,
        "timestamp": t.timestamp,
        "currency": t.currency,
    }


def account_to_json(account: Account, balance: tuple[int, int, int, int]) -> dict[str, Any]:
    return {
        "id": str(account.id),
        "participant": account.participant,
        "currency": account.currency,
        "kind": account.kind,
        "flags": flag_names(account.flags, ACCOUNT_FLAG_NAMES),
        "credit_limit": account.credit_limit,
        "code": account.code,
        "ref": account.ref,
        "timestamp": account.timestamp,
        "debits_pending": balance[0],
        "debits_posted": balance[1],
        "credits_pending": balance[2],
        "credits_posted": balance[3],
    }


def account_state_to_json(state: AccountState) -> dict[str, Any]:
    return account_to_json(state.account, state.balance_tuple())
