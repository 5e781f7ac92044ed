"""The JSON-lines scripting format of ``sco-settle apply`` and ``sco-settle export``, and the body
of ``POST /v1/transfer-batches``.

A line is one batch: ``{"accounts": [...]}`` or ``{"transfers": [...]}``. The same field names are
used in and out; export adds the ledger's own fields (timestamp, currency of a transfer, balances of
an account). Ids are decimal strings (128 bits do not fit a JSON number portably) or integers.

Malformed input raises ``BatchFormatError`` naming the item and field; nothing of that line is
applied. Every field is checked against its type here, at the edge, so that nothing reaching the
ledger can fail its commit (which would stop the ledger):

- the line is UTF-8 JSON (no byte-order mark, no UTF-16/32), objects have no duplicate keys, no
  number has a fraction, an exponent or more than 40 digits, NaN and Infinity are refused, and
  nesting deeper than the interpreter allows is refused rather than crashing;
- ids (``id``, ``debit_account``, ``credit_account``, ``pending_id``) are unsigned 128-bit:
  0 .. 2**128-1; ``amount`` and ``credit_limit`` 0 .. 2**63-1, ``timeout`` 0 .. 2**31-1 (seconds),
  ``code`` 0 .. 65535: integers (never booleans or floats) or strings of 1-40 ASCII digits;
- text is at most 140 characters (``ref``: the ledger's ``REF_LENGTH_MAX``) that every store can
  keep: no lone UTF-16 surrogate (``"\\ud800"``), no NUL (``domain.transfer.check_text``).

Values of the right type but outside the ledger's rules (amount 0, id 0 or 2**128-1, equal accounts,
an unknown account) are left to the ledger, which answers with a result code per item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sco_settle.domain.account import ACCOUNT_FLAG_NAMES, Account, flag_names
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.domain.transfer import TRANSFER_FLAG_NAMES, TextError, Transfer, check_text
from sco_settle.ledger.state_machine import (
    BATCH_EVENTS_MAX,
    CODE_MAX,
    REF_LENGTH_MAX,
    TIMEOUT_SECONDS_MAX,
    AccountState,
)

LINE_BYTES_MAX = 16 * 1024 * 1024  # A full batch of 8,190 transfers is ~2.5 MB of JSON.
DIGITS_MAX = 40  # 2**128-1 has 39 digits; one more for a leading zero. Enough for every field.
TEXT_LENGTH_MAX = REF_LENGTH_MAX  # Characters, for every text field.
ECHO_MAX = 50  # Characters of a refused value echoed in an error message.

# The largest value of each integer field (all are >= 0), and how the message names it.
ID_FIELD = (ID_MAX, "2**128-1")
AMOUNT_FIELD = (AMOUNT_MAX, "2**63-1")
TIMEOUT_FIELD = (TIMEOUT_SECONDS_MAX, "2**31-1")
CODE_FIELD = (CODE_MAX, str(CODE_MAX))

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
    document = loads(line)
    if not isinstance(document, dict) or len(document) != 1:
        raise BatchFormatError('expected an object with one key, "accounts" or "transfers"')
    ((kind, items),) = document.items()
    if kind not in ("accounts", "transfers"):
        raise BatchFormatError(
            f'unknown batch kind {_echo(kind)}; expected "accounts" or "transfers"'
        )
    if not isinstance(items, list):
        raise BatchFormatError(f'"{kind}" must be a list')
    if len(items) > BATCH_EVENTS_MAX:
        raise BatchFormatError(f"batch has {len(items)} items; at most {BATCH_EVENTS_MAX} allowed")
    if kind == "accounts":
        return kind, [_parse_account(index, item) for index, item in enumerate(items)]
    return kind, [_parse_transfer(index, item) for index, item in enumerate(items)]


def loads(line: str | bytes) -> Any:
    """Strict JSON: UTF-8 only, no duplicate keys, integers only, bounded size and nesting."""
    if isinstance(line, bytes | bytearray):
        try:
            # Strict: refuses UTF-16/32 (which ``json.loads`` would guess) and encoded surrogates.
            text = bytes(line).decode("utf-8")
        except UnicodeDecodeError as error:
            raise BatchFormatError(f"not UTF-8: {error.reason} at byte {error.start}") from None
    else:
        text = line
    try:
        return json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=_integer_literal,
            parse_float=_float_literal,
            parse_constant=_constant_literal,
        )
    except json.JSONDecodeError as error:
        raise BatchFormatError(f"not JSON: {error}") from None
    except RecursionError:
        raise BatchFormatError("not JSON: nested too deeply") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BatchFormatError(f"duplicate key {_echo(key)}")
            seen.add(key)
    return found


def _integer_literal(text: str) -> int:
    if len(text.lstrip("-")) > DIGITS_MAX:
        raise BatchFormatError(f"integer {_echo(text)} has more than {DIGITS_MAX} digits")
    return int(text)


def _float_literal(text: str) -> float:
    raise BatchFormatError(f"number {_echo(text)} is not an integer")


def _constant_literal(text: str) -> float:
    raise BatchFormatError(f"{text} is not a number")


def _echo(value: object) -> str:
    """A refused value, for a message: quoted, escaped, and cut short."""
    text = repr(value)
    return text if len(text) <= ECHO_MAX else text[: ECHO_MAX - 1] + "…"


def _parse_transfer(index: int, item: object) -> Transfer:
    fields = _fields(index, item, _TRANSFER_FIELDS, required={"id"})
    return Transfer(
        id=_integer(index, fields, "id", ID_FIELD),
        debit_account=_integer(index, fields, "debit_account", ID_FIELD),
        credit_account=_integer(index, fields, "credit_account", ID_FIELD),
        amount=_integer(index, fields, "amount", AMOUNT_FIELD),
        flags=_flags(index, fields, TRANSFER_FLAG_NAMES),
        pending_id=_integer(index, fields, "pending_id", ID_FIELD),
        timeout=_integer(index, fields, "timeout", TIMEOUT_FIELD),
        code=_integer(index, fields, "code", CODE_FIELD),
        ref=_string(index, fields, "ref"),
    )


def _parse_account(index: int, item: object) -> Account:
    fields = _fields(
        index, item, _ACCOUNT_FIELDS, required={"id", "participant", "currency", "kind"}
    )
    return Account(
        id=_integer(index, fields, "id", ID_FIELD),
        participant=_string(index, fields, "participant"),
        currency=_string(index, fields, "currency"),
        kind=_string(index, fields, "kind"),
        flags=_flags(index, fields, ACCOUNT_FLAG_NAMES),
        credit_limit=_integer(index, fields, "credit_limit", AMOUNT_FIELD),
        code=_integer(index, fields, "code", CODE_FIELD),
        ref=_string(index, fields, "ref"),
    )


def _fields(index: int, item: object, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(item, dict):
        raise BatchFormatError(f"item {index}: expected an object")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise BatchFormatError(f"item {index}: unknown field {_echo(unknown[0])}")
    missing = sorted(required - set(item))
    if missing:
        raise BatchFormatError(f"item {index}: missing field {missing[0]!r}")
    return item


def _integer(index: int, fields: Mapping[str, Any], name: str, limit: tuple[int, str]) -> int:
    value = fields.get(name, 0)
    if type(value) is int:  # Not a bool (a subclass of int), not a float.
        number = value
    elif type(value) is str:
        if not (0 < len(value) <= DIGITS_MAX and value.isascii() and value.isdigit()):
            raise BatchFormatError(f"item {index}: {name} {_echo(value)} is not a decimal integer")
        number = int(value)
    else:
        raise BatchFormatError(f"item {index}: {name} must be an integer or a decimal string")
    maximum, maximum_text = limit
    if not 0 <= number <= maximum:
        raise BatchFormatError(f"item {index}: {name} {number} is outside 0 .. {maximum_text}")
    return number


def _string(index: int, fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name, "")
    if type(value) is not str:
        raise BatchFormatError(f"item {index}: {name} must be a string")
    if len(value) > TEXT_LENGTH_MAX:
        raise BatchFormatError(f"item {index}: {name} is longer than {TEXT_LENGTH_MAX} characters")
    try:
        return check_text(value, field=name)
    except TextError as error:
        raise BatchFormatError(f"item {index}: {error}") from None


def _flags(index: int, fields: Mapping[str, Any], names: Mapping[str, int]) -> int:
    value = fields.get("flags", [])
    if not isinstance(value, list) or not all(type(name) is str for name in value):
        raise BatchFormatError(f"item {index}: flags must be a list of names")
    flags = 0
    for name in value:
        if name not in names:
            raise BatchFormatError(
                f"item {index}: unknown flag {_echo(name)}; known: {', '.join(sorted(names))}"
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
