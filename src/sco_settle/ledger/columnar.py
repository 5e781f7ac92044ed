"""The compiled ledger engine: batches as struct-of-arrays, state as arrays, one compiled loop.

This is the fast twin of ``sco_settle.ledger.state_machine`` (which stays the reference model):
the same batch on the same state gives the same results and the same changes, rule for rule and
in the same checking order. ``tests/ledger/test_fast_equivalence.py`` holds the two to that with
hypothesis.

Layout:
- ``Tables``: the whole ledger in numpy columns: accounts (ids, flags, limits, currency, the four
  counters), every transfer (ids, account indexes, amount, pending id, timestamp, timeout, code,
  flags, pending status), pending resolutions and history snapshots, plus open-addressing hash
  tables from 128-bit id to row (accounts and transfers). Ids are two ``uint64`` columns (low,
  high). A transfer row names its accounts by their index (creation order).
- ``TransferColumns``: one batch of transfers as columns, with the per-field validity bits that
  the reference's type and range checks need (``encode_transfers`` builds them from ``Transfer``
  tuples, ``TransferColumns.from_arrays`` from numpy arrays).
- ``_apply_batch``: the compiled (numba) loop: expiries, then every event with the reference's
  checks in the reference's order, linked chains with an undo log, history snapshots, and the
  final invariant check of every touched account.
- ``BatchRecord``: what one batch changed, as packed arrays, for a ``ColumnarStore`` to make
  durable (``sco_settle.storage.log`` appends it to a checksummed log) and to replay at recovery
  (``Tables.apply_record``).

Why numba: the loop is sequential by nature (each transfer sees the balances the ones before it
left, chains roll back), so it cannot be expressed as whole-array numpy operations; numba
compiles it from Python source, ships as binary wheels on PyPI (plain ``pip install``, no
compiler on the machine), and caches the machine code next to this file (``cache=True``), so only
the first start after an install pays the compilation.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from numba import njit

from sco_settle.domain.account import Account, AccountFlags
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import PendingStatus, Transfer, TransferFlags
from sco_settle.ledger.state_machine import (
    CODE_MAX,
    NS_PER_SECOND,
    REF_LENGTH_MAX,
    TIMEOUT_SECONDS_MAX,
    InvariantViolation,
)
from sco_settle.ledger.store import Store

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]

# Result codes by position in ``CreateTransferResult`` (the kernel returns these numbers).
RESULTS: tuple[TR, ...] = tuple(TR)
_R = {result: number for number, result in enumerate(RESULTS)}
OK = _R[TR.OK]
_LINKED_EVENT_FAILED = _R[TR.LINKED_EVENT_FAILED]
_LINKED_EVENT_CHAIN_OPEN = _R[TR.LINKED_EVENT_CHAIN_OPEN]
_ID_INVALID = _R[TR.ID_INVALID]
_FLAGS_UNKNOWN = _R[TR.FLAGS_UNKNOWN]
_FLAGS_ARE_MUTUALLY_EXCLUSIVE = _R[TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE]
_DEBIT_ACCOUNT_INVALID = _R[TR.DEBIT_ACCOUNT_INVALID]
_CREDIT_ACCOUNT_INVALID = _R[TR.CREDIT_ACCOUNT_INVALID]
_ACCOUNTS_MUST_BE_DIFFERENT = _R[TR.ACCOUNTS_MUST_BE_DIFFERENT]
_PENDING_ID_MUST_BE_ZERO = _R[TR.PENDING_ID_MUST_BE_ZERO]
_PENDING_ID_REQUIRED = _R[TR.PENDING_ID_REQUIRED]
_PENDING_ID_MUST_BE_DIFFERENT = _R[TR.PENDING_ID_MUST_BE_DIFFERENT]
_TIMEOUT_RESERVED = _R[TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER]
_TIMEOUT_INVALID = _R[TR.TIMEOUT_INVALID]
_AMOUNT_INVALID = _R[TR.AMOUNT_INVALID]
_CODE_INVALID = _R[TR.CODE_INVALID]
_REF_TOO_LONG = _R[TR.REF_TOO_LONG]
_DEBIT_ACCOUNT_NOT_FOUND = _R[TR.DEBIT_ACCOUNT_NOT_FOUND]
_CREDIT_ACCOUNT_NOT_FOUND = _R[TR.CREDIT_ACCOUNT_NOT_FOUND]
_CURRENCY_MISMATCH = _R[TR.CURRENCY_MISMATCH]
EXISTS_WITH_DIFFERENT_FIELDS = _R[TR.EXISTS_WITH_DIFFERENT_FIELDS]
EXISTS = _R[TR.EXISTS]
_PENDING_TRANSFER_NOT_FOUND = _R[TR.PENDING_TRANSFER_NOT_FOUND]
_PENDING_TRANSFER_NOT_PENDING = _R[TR.PENDING_TRANSFER_NOT_PENDING]
_PENDING_DIFFERENT_DEBIT = _R[TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT]
_PENDING_DIFFERENT_CREDIT = _R[TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT]
_EXCEEDS_PENDING_AMOUNT = _R[TR.EXCEEDS_PENDING_TRANSFER_AMOUNT]
_PENDING_DIFFERENT_AMOUNT = _R[TR.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT]
_PENDING_ALREADY_POSTED = _R[TR.PENDING_TRANSFER_ALREADY_POSTED]
_PENDING_ALREADY_VOIDED = _R[TR.PENDING_TRANSFER_ALREADY_VOIDED]
_PENDING_EXPIRED = _R[TR.PENDING_TRANSFER_EXPIRED]
_OVERFLOWS_DEBITS = _R[TR.OVERFLOWS_DEBITS]
_OVERFLOWS_CREDITS = _R[TR.OVERFLOWS_CREDITS]
_EXCEEDS_CREDITS = _R[TR.EXCEEDS_CREDITS]
_EXCEEDS_DEBITS = _R[TR.EXCEEDS_DEBITS]

_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING)
_VOID = int(TransferFlags.VOID_PENDING)
_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_HISTORY = int(AccountFlags.HISTORY)

# Encoded event flags: the four transfer flags, and two bits the reference derives from the
# Python value: ``linked`` (``isinstance(flags, int) and flags & LINKED``) and "unknown".
F_UNKNOWN = 1 << 8
F_LINKED = 1 << 9
# Per-event validity bits (the reference's ``type(x) is int`` and range checks, and its ``!= 0``
# comparisons, which a number column cannot express for non-integers).
B_DEBIT = 1 << 0  # debit_account is not an int in 0 .. ID_MAX - 1
B_CREDIT = 1 << 1
B_AMOUNT = 1 << 2  # amount is not an int in 0 .. AMOUNT_MAX
B_PENDING_NONZERO = 1 << 3  # pending_id != 0 (Python equality)
B_PENDING_NOT_INT = 1 << 4  # type(pending_id) is not int
B_TIMEOUT_NONZERO = 1 << 5  # timeout != 0 (Python equality)
B_TIMEOUT = 1 << 6  # timeout is not an int in 0 .. TIMEOUT_SECONDS_MAX
B_CODE = 1 << 7  # code is not an int in 0 .. CODE_MAX
B_REF = 1 << 8  # ref is not a str of at most REF_LENGTH_MAX characters

_MASK64 = (1 << 64) - 1
_ALL_ONES = np.uint64(_MASK64)
STATUS_NONE, STATUS_OPEN = 0, 1  # Then PendingStatus values: 2 posted, 3 voided, 4 expired.
_EMPTY, _TOMBSTONE = -1, -2

# Packed rows of a batch record (the log's on-disk layout; little-endian, no padding).
TRANSFER_DTYPE = np.dtype(
    [
        ("id_lo", "<u8"),
        ("id_hi", "<u8"),
        ("debit", "<u4"),
        ("credit", "<u4"),
        ("amount", "<i8"),
        ("pending_lo", "<u8"),
        ("pending_hi", "<u8"),
        ("timestamp", "<i8"),
        ("timeout", "<u4"),
        ("code", "<u2"),
        ("flags", "u1"),
        ("reserved", "u1"),
    ]
)
BALANCE_DTYPE = np.dtype(
    [("account", "<u4"), ("dp", "<i8"), ("dpo", "<i8"), ("cp", "<i8"), ("cpo", "<i8")]
)
RESOLUTION_DTYPE = np.dtype([("row", "<i8"), ("timestamp", "<i8"), ("status", "u1")])
HISTORY_DTYPE = np.dtype(
    [
        ("account", "<u4"),
        ("timestamp", "<i8"),
        ("dp", "<i8"),
        ("dpo", "<i8"),
        ("cp", "<i8"),
        ("cpo", "<i8"),
    ]
)
assert TRANSFER_DTYPE.itemsize == 64


def result_of(code: int) -> TR:
    return RESULTS[code]


# -- hash tables: 128-bit id -> row, open addressing, linear probing --------------------------


@njit(cache=True, nogil=True)
def _slot(lo: Any, hi: Any, mask: Any) -> Any:  # pragma: no cover - compiled
    h = lo * np.uint64(0x9E3779B97F4A7C15) ^ (hi + np.uint64(0x632BE59BD9B4E019)) * np.uint64(
        0xBF58476D1CE4E5B9
    )
    h ^= h >> np.uint64(31)
    return np.int64(h & mask)


@njit(cache=True, nogil=True)
def _find(keys_lo: Any, keys_hi: Any, vals: Any, lo: Any, hi: Any) -> Any:  # pragma: no cover
    size = vals.shape[0]
    i = _slot(lo, hi, np.uint64(size - 1))
    while True:
        v = vals[i]
        if v == -1:
            return -1
        if v >= 0 and keys_lo[i] == lo and keys_hi[i] == hi:
            return v
        i = (i + 1) & (size - 1)


@njit(cache=True, nogil=True)
def _insert(
    keys_lo: Any, keys_hi: Any, vals: Any, lo: Any, hi: Any, value: Any
) -> None:  # pragma: no cover
    size = vals.shape[0]
    i = _slot(lo, hi, np.uint64(size - 1))
    while vals[i] != -1:
        i = (i + 1) & (size - 1)
    keys_lo[i] = lo
    keys_hi[i] = hi
    vals[i] = value


@njit(cache=True, nogil=True)
def _delete(keys_lo: Any, keys_hi: Any, vals: Any, lo: Any, hi: Any) -> None:  # pragma: no cover
    size = vals.shape[0]
    i = _slot(lo, hi, np.uint64(size - 1))
    while True:
        v = vals[i]
        if v == -1:
            return
        if v >= 0 and keys_lo[i] == lo and keys_hi[i] == hi:
            vals[i] = -2
            return
        i = (i + 1) & (size - 1)


@njit(cache=True, nogil=True)
def _insert_rows(
    keys_lo: Any, keys_hi: Any, vals: Any, ids_lo: Any, ids_hi: Any, first: Any
) -> None:  # pragma: no cover
    for k in range(ids_lo.shape[0]):
        _insert(keys_lo, keys_hi, vals, ids_lo[k], ids_hi[k], first + k)


@njit(cache=True, nogil=True)
def _find_many(
    keys_lo: Any, keys_hi: Any, vals: Any, ids_lo: Any, ids_hi: Any, out: Any
) -> None:  # pragma: no cover
    for k in range(ids_lo.shape[0]):
        out[k] = _find(keys_lo, keys_hi, vals, ids_lo[k], ids_hi[k])


# -- the kernel --------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _exceeds(a: Any, b: Any, amount: Any, c: Any, d: Any) -> Any:  # pragma: no cover
    """a + b + amount > c + d, exactly, for values in 0 .. 2**63 - 1 (no 64-bit overflow)."""
    x = np.uint64(a) + np.uint64(b)
    y = np.uint64(c) + np.uint64(d)
    u = np.uint64(amount)
    if u > y:
        return True
    return x > y - u


@njit(cache=True, nogil=True)
def _apply_batch(  # pragma: no cover - compiled
    e_lo: Any,
    e_hi: Any,
    e_flags: Any,
    e_bad: Any,
    e_dlo: Any,
    e_dhi: Any,
    e_clo: Any,
    e_chi: Any,
    e_amount: Any,
    e_plo: Any,
    e_phi: Any,
    e_timeout: Any,
    e_code: Any,
    ts_events: Any,
    expiring: Any,
    ts_expiry: Any,
    a_lo: Any,
    a_hi: Any,
    a_flags: Any,
    a_limit: Any,
    a_currency: Any,
    bal: Any,
    ah_lo: Any,
    ah_hi: Any,
    ah_val: Any,
    t_lo: Any,
    t_hi: Any,
    t_debit: Any,
    t_credit: Any,
    t_amount: Any,
    t_plo: Any,
    t_phi: Any,
    t_ts: Any,
    t_timeout: Any,
    t_code: Any,
    t_flags: Any,
    t_status: Any,
    n_tr: Any,
    th_lo: Any,
    th_hi: Any,
    th_val: Any,
    r_row: Any,
    r_status: Any,
    r_ts: Any,
    n_res: Any,
    h_acc: Any,
    h_ts: Any,
    h_bal: Any,
    n_hist: Any,
    touch_mark: Any,
    undo_mark: Any,
    batch_no: Any,
    res: Any,
    exist_src: Any,
    touched: Any,
    row_event: Any,
    undo_acc: Any,
    undo_bal: Any,
    undo_pending: Any,
) -> Any:
    amount_max = np.int64(9223372036854775807)
    ns = np.int64(1_000_000_000)
    n0 = n_tr
    n_touched = 0
    n_inserts = 0
    # Expiries first, each with its own timestamp.
    for k in range(expiring.shape[0]):
        p = expiring[k]
        ts = ts_expiry + k
        d = t_debit[p]
        c = t_credit[p]
        for acc in (d, c):
            if touch_mark[acc] != batch_no:
                touch_mark[acc] = batch_no
                touched[n_touched] = acc
                n_touched += 1
        bal[d, 0] -= t_amount[p]
        bal[c, 2] -= t_amount[p]
        t_status[p] = 4
        r_row[n_res] = p
        r_status[n_res] = 4
        r_ts[n_res] = ts
        n_res += 1
        for acc in (d, c):
            if (a_flags[acc] & 8) != 0:
                h_acc[n_hist] = acc
                h_ts[n_hist] = ts
                for j in range(4):
                    h_bal[n_hist, j] = bal[acc, j]
                n_hist += 1

    n = e_lo.shape[0]
    chain_start = -1
    chain_failed = False
    in_chain = False
    chain_stamp = batch_no * 16384
    n_undo = 0
    n_undo_pending = 0
    mark_tr = n_tr
    mark_res = n_res
    mark_hist = n_hist
    for i in range(n):
        exist_src[i] = -1
        fl = e_flags[i]
        linked = (fl & 512) != 0
        if chain_start < 0 and linked:
            chain_start = i
            chain_failed = False
            in_chain = True
            chain_stamp += 1
            n_undo = 0
            n_undo_pending = 0
            mark_tr = n_tr
            mark_res = n_res
            mark_hist = n_hist
        if chain_failed:
            res[i] = 1
        else:
            ts = ts_events + i
            r = 0
            lo = e_lo[i]
            hi = e_hi[i]
            bad = e_bad[i]
            kind = fl & 14
            if (lo == 0 and hi == 0) or (lo == _ALL_ONES and hi == _ALL_ONES):
                r = 3
            elif (fl & 256) != 0:
                r = 4
            elif (kind & (kind - 1)) != 0:
                r = 5
            elif (kind & 12) != 0:
                # -- post or void a pending transfer ------------------------------------------
                plo = e_plo[i]
                phi = e_phi[i]
                d_zero = e_dlo[i] == 0 and e_dhi[i] == 0
                if (bad & 16) != 0 or (bad & 8) == 0:
                    r = 10
                elif plo == lo and phi == hi:
                    r = 11
                elif (bad & 32) != 0:
                    r = 12
                elif (bad & 1) != 0:
                    r = 6
                elif (bad & 2) != 0:
                    r = 7
                elif not d_zero and e_dlo[i] == e_clo[i] and e_dhi[i] == e_chi[i]:
                    r = 8
                elif (bad & 4) != 0:
                    r = 14
                elif (bad & 128) != 0:
                    r = 15
                elif (bad & 256) != 0:
                    r = 16
                else:
                    p = _find(th_lo, th_hi, th_val, plo, phi)
                    if p < 0:
                        r = 22
                    elif (t_flags[p] & 2) == 0:
                        r = 23
                    elif not d_zero and (
                        a_lo[t_debit[p]] != e_dlo[i] or a_hi[t_debit[p]] != e_dhi[i]
                    ):
                        r = 24
                    elif not (e_clo[i] == 0 and e_chi[i] == 0) and (
                        a_lo[t_credit[p]] != e_clo[i] or a_hi[t_credit[p]] != e_chi[i]
                    ):
                        r = 25
                    else:
                        pending_amount = t_amount[p]
                        amount = e_amount[i]
                        if (fl & 4) != 0:
                            if amount == 0:
                                amount = pending_amount
                            if amount > pending_amount:
                                r = 26
                        else:
                            if amount != 0 and amount != pending_amount:
                                r = 27
                            amount = pending_amount
                        if r == 0:
                            d = t_debit[p]
                            c = t_credit[p]
                            ex = _find(th_lo, th_hi, th_val, lo, hi)
                            if ex >= 0:
                                same = (
                                    t_debit[ex] == d
                                    and t_credit[ex] == c
                                    and t_amount[ex] == amount
                                    and t_flags[ex] == (fl & 15)
                                    and t_plo[ex] == plo
                                    and t_phi[ex] == phi
                                    and t_timeout[ex] == 0
                                    and t_code[ex] == e_code[i]
                                )
                                r = 21 if same else 20
                                exist_src[i] = row_event[ex - n0] if ex >= n0 else -ex - 2
                            else:
                                status = t_status[p]
                                if status == 2:
                                    r = 28
                                elif status == 3:
                                    r = 29
                                elif status == 4:
                                    r = 30
                                elif t_timeout[p] != 0 and t_ts[p] <= ts - t_timeout[p] * ns:
                                    r = 30  # the reference checks the status, then the time
                                elif (fl & 4) != 0 and amount > amount_max - bal[d, 1]:
                                    r = 31
                                elif (fl & 4) != 0 and amount > amount_max - bal[c, 3]:
                                    r = 32
                                else:
                                    for acc in (d, c):
                                        if touch_mark[acc] != batch_no:
                                            touch_mark[acc] = batch_no
                                            touched[n_touched] = acc
                                            n_touched += 1
                                        if in_chain and undo_mark[acc] != chain_stamp:
                                            undo_mark[acc] = chain_stamp
                                            undo_acc[n_undo] = acc
                                            for j in range(4):
                                                undo_bal[n_undo, j] = bal[acc, j]
                                            n_undo += 1
                                    bal[d, 0] -= pending_amount
                                    bal[c, 2] -= pending_amount
                                    if (fl & 4) != 0:
                                        bal[d, 1] += amount
                                        bal[c, 3] += amount
                                    row = n_tr
                                    t_lo[row] = lo
                                    t_hi[row] = hi
                                    t_debit[row] = d
                                    t_credit[row] = c
                                    t_amount[row] = amount
                                    t_plo[row] = plo
                                    t_phi[row] = phi
                                    t_ts[row] = ts
                                    t_timeout[row] = 0
                                    t_code[row] = e_code[i]
                                    t_flags[row] = fl & 15
                                    t_status[row] = 0
                                    row_event[row - n0] = i
                                    _insert(th_lo, th_hi, th_val, lo, hi, row)
                                    n_inserts += 1
                                    n_tr += 1
                                    new_status = 2 if (fl & 4) != 0 else 3
                                    t_status[p] = new_status
                                    r_row[n_res] = p
                                    r_status[n_res] = new_status
                                    r_ts[n_res] = ts
                                    n_res += 1
                                    if in_chain:
                                        undo_pending[n_undo_pending] = p
                                        n_undo_pending += 1
                                    for acc in (d, c):
                                        if (a_flags[acc] & 8) != 0:
                                            h_acc[n_hist] = acc
                                            h_ts[n_hist] = ts
                                            for j in range(4):
                                                h_bal[n_hist, j] = bal[acc, j]
                                            n_hist += 1
            else:
                # -- a plain or pending transfer ------------------------------------------------
                dlo = e_dlo[i]
                dhi = e_dhi[i]
                clo = e_clo[i]
                chi = e_chi[i]
                amount = e_amount[i]
                if (bad & 1) != 0 or (dlo == 0 and dhi == 0):
                    r = 6
                elif (bad & 2) != 0 or (clo == 0 and chi == 0):
                    r = 7
                elif dlo == clo and dhi == chi:
                    r = 8
                elif (bad & 8) != 0:
                    r = 9
                elif (bad & 32) != 0 and kind == 0:
                    r = 12
                elif (bad & 64) != 0:
                    r = 13
                elif (bad & 4) != 0 or amount == 0:
                    r = 14
                elif (bad & 128) != 0:
                    r = 15
                elif (bad & 256) != 0:
                    r = 16
                else:
                    d = _find(ah_lo, ah_hi, ah_val, dlo, dhi)
                    c = _find(ah_lo, ah_hi, ah_val, clo, chi) if d >= 0 else -1
                    if d < 0:
                        r = 17
                    elif c < 0:
                        r = 18
                    elif a_currency[d] != a_currency[c]:
                        r = 19
                    else:
                        ex = _find(th_lo, th_hi, th_val, lo, hi)
                        if ex >= 0:
                            same = (
                                t_debit[ex] == d
                                and t_credit[ex] == c
                                and t_amount[ex] == amount
                                and t_flags[ex] == (fl & 15)
                                and t_plo[ex] == 0
                                and t_phi[ex] == 0
                                and t_timeout[ex] == e_timeout[i]
                                and t_code[ex] == e_code[i]
                            )
                            r = 21 if same else 20
                            exist_src[i] = row_event[ex - n0] if ex >= n0 else -ex - 2
                        elif kind != 0 and amount > amount_max - bal[d, 0]:
                            r = 31
                        elif kind != 0 and amount > amount_max - bal[c, 2]:
                            r = 32
                        elif kind == 0 and amount > amount_max - bal[d, 1]:
                            r = 31
                        elif kind == 0 and amount > amount_max - bal[c, 3]:
                            r = 32
                        elif (a_flags[d] & 2) != 0 and _exceeds(
                            bal[d, 0], bal[d, 1], amount, bal[d, 3], a_limit[d]
                        ):
                            r = 33
                        elif (a_flags[c] & 4) != 0 and _exceeds(
                            bal[c, 2], bal[c, 3], amount, bal[c, 1], a_limit[c]
                        ):
                            r = 34
                        else:
                            for acc in (d, c):
                                if touch_mark[acc] != batch_no:
                                    touch_mark[acc] = batch_no
                                    touched[n_touched] = acc
                                    n_touched += 1
                                if in_chain and undo_mark[acc] != chain_stamp:
                                    undo_mark[acc] = chain_stamp
                                    undo_acc[n_undo] = acc
                                    for j in range(4):
                                        undo_bal[n_undo, j] = bal[acc, j]
                                    n_undo += 1
                            if kind != 0:
                                bal[d, 0] += amount
                                bal[c, 2] += amount
                            else:
                                bal[d, 1] += amount
                                bal[c, 3] += amount
                            row = n_tr
                            t_lo[row] = lo
                            t_hi[row] = hi
                            t_debit[row] = d
                            t_credit[row] = c
                            t_amount[row] = amount
                            t_plo[row] = 0
                            t_phi[row] = 0
                            t_ts[row] = ts
                            t_timeout[row] = e_timeout[i]
                            t_code[row] = e_code[i]
                            t_flags[row] = fl & 15
                            t_status[row] = 1 if kind != 0 else 0
                            row_event[row - n0] = i
                            _insert(th_lo, th_hi, th_val, lo, hi, row)
                            n_inserts += 1
                            n_tr += 1
                            if ((a_flags[d] | a_flags[c]) & 8) != 0:
                                for acc in (d, c):
                                    if (a_flags[acc] & 8) != 0:
                                        h_acc[n_hist] = acc
                                        h_ts[n_hist] = ts
                                        for j in range(4):
                                            h_bal[n_hist, j] = bal[acc, j]
                                        n_hist += 1
            res[i] = r
            if r != 0 and chain_start >= 0:
                chain_failed = True
                # Roll the chain back: balances, reopened pending transfers, created rows.
                for k in range(n_undo):
                    acc = undo_acc[k]
                    for j in range(4):
                        bal[acc, j] = undo_bal[k, j]
                for k in range(n_undo_pending):
                    t_status[undo_pending[k]] = 1
                for row in range(mark_tr, n_tr):
                    _delete(th_lo, th_hi, th_val, t_lo[row], t_hi[row])
                n_tr = mark_tr
                n_res = mark_res
                n_hist = mark_hist
                n_undo = 0
                n_undo_pending = 0
                chain_stamp += 1
                for k in range(chain_start, i):
                    res[k] = 1
        if chain_start >= 0 and not linked:
            chain_start = -1
            chain_failed = False
            in_chain = False
    if chain_start >= 0:
        if not chain_failed:
            for k in range(n_undo):
                acc = undo_acc[k]
                for j in range(4):
                    bal[acc, j] = undo_bal[k, j]
            for k in range(n_undo_pending):
                t_status[undo_pending[k]] = 1
            for row in range(mark_tr, n_tr):
                _delete(th_lo, th_hi, th_val, t_lo[row], t_hi[row])
            n_tr = mark_tr
            n_res = mark_res
            n_hist = mark_hist
        for k in range(chain_start, n):
            res[k] = 1
        res[n - 1] = 2
    # Every touched account must still keep its counters and its limit.
    broken = -1
    for k in range(n_touched):
        acc = touched[k]
        dp = bal[acc, 0]
        dpo = bal[acc, 1]
        cp = bal[acc, 2]
        cpo = bal[acc, 3]
        over_dr = (a_flags[acc] & 2) != 0 and _exceeds(dp, dpo, 0, cpo, a_limit[acc])
        over_cr = (a_flags[acc] & 4) != 0 and _exceeds(cp, cpo, 0, dpo, a_limit[acc])
        if dp < 0 or dpo < 0 or cp < 0 or cpo < 0 or over_dr or over_cr:
            broken = acc
    return n_tr, n_res, n_hist, n_touched, n_inserts, broken


@njit(cache=True, nogil=True)
def _apply_record_rows(  # pragma: no cover - compiled
    t_status: Any, flags: Any, first: Any, r_rows: Any, r_status: Any
) -> None:
    for k in range(flags.shape[0]):
        t_status[first + k] = 1 if (flags[k] & 2) != 0 else 0
    for k in range(r_rows.shape[0]):
        t_status[r_rows[k]] = r_status[k]


# -- batches as columns -----------------------------------------------------------------------


@dataclass
class TransferColumns:
    """A batch of transfers as struct-of-arrays, validity bits included (see ``B_*``)."""

    id_lo: U64
    id_hi: U64
    flags: I64  # the four flags, plus F_UNKNOWN and F_LINKED
    bad: I64
    debit_lo: U64
    debit_hi: U64
    credit_lo: U64
    credit_hi: U64
    amount: I64
    pending_lo: U64
    pending_hi: U64
    timeout: I64
    code: I64
    refs: Sequence[str] | None = None  # None: every ref is empty

    def __len__(self) -> int:
        return int(self.id_lo.shape[0])

    @classmethod
    def from_arrays(
        cls,
        ids: npt.ArrayLike,
        debit_accounts: npt.ArrayLike,
        credit_accounts: npt.ArrayLike,
        amounts: npt.ArrayLike,
        *,
        flags: npt.ArrayLike | None = None,
        pending_ids: npt.ArrayLike | None = None,
        timeouts: npt.ArrayLike | None = None,
        codes: npt.ArrayLike | None = None,
        refs: Sequence[str] | None = None,
        ids_hi: npt.ArrayLike | None = None,
    ) -> TransferColumns:
        """Columns from numpy arrays of 64-bit values (ids below 2**64 unless ``ids_hi``), as a
        client would send packed structs; ranges are checked here, vectorised."""
        id_lo = np.ascontiguousarray(ids, dtype=np.uint64)
        n = id_lo.shape[0]
        zeros_u = np.zeros(n, np.uint64)
        zeros_i = np.zeros(n, np.int64)
        amount = np.ascontiguousarray(amounts, dtype=np.int64)
        timeout = zeros_i if timeouts is None else np.ascontiguousarray(timeouts, dtype=np.int64)
        code = zeros_i if codes is None else np.ascontiguousarray(codes, dtype=np.int64)
        raw_flags = zeros_i if flags is None else np.ascontiguousarray(flags, dtype=np.int64)
        pending = zeros_u if pending_ids is None else np.ascontiguousarray(pending_ids, np.uint64)
        bad = np.where(amount < 0, B_AMOUNT, 0)
        bad |= np.where(pending != 0, B_PENDING_NONZERO, 0)
        bad |= np.where(timeout != 0, B_TIMEOUT_NONZERO, 0)
        bad |= np.where((timeout < 0) | (timeout > TIMEOUT_SECONDS_MAX), B_TIMEOUT, 0)
        bad |= np.where((code < 0) | (code > CODE_MAX), B_CODE, 0)
        if refs is not None:
            bad |= np.fromiter(
                (0 if type(r) is str and len(r) <= REF_LENGTH_MAX else B_REF for r in refs),
                np.int64,
                n,
            )
        encoded = (
            (raw_flags & 15)
            | np.where(raw_flags & ~15, F_UNKNOWN, 0)
            | np.where(raw_flags & 1, F_LINKED, 0)
        )
        return cls(
            id_lo,
            zeros_u if ids_hi is None else np.ascontiguousarray(ids_hi, np.uint64),
            encoded.astype(np.int64),
            bad.astype(np.int64),
            np.ascontiguousarray(debit_accounts, dtype=np.uint64),
            zeros_u,
            np.ascontiguousarray(credit_accounts, dtype=np.uint64),
            zeros_u,
            amount,
            pending,
            zeros_u,
            timeout,
            code,
            refs,
        )


def _all_ints(column: tuple[object, ...]) -> bool:
    return set(map(type, column)) <= {int}


def _ids_column(column: tuple[object, ...]) -> tuple[U64, U64, list[bool]] | None:
    """Fast path: every value an int in 0 .. 2**64 - 1 (hi = 0, none bad)."""
    if not _all_ints(column):
        return None
    try:
        return np.array(column, dtype=np.uint64), np.zeros(len(column), np.uint64), []
    except OverflowError:
        return None


def _split(value: int) -> tuple[int, int]:
    return value & _MASK64, value >> 64


def encode_transfers(batch: Sequence[Transfer]) -> TransferColumns:
    """``Transfer`` tuples to columns, keeping every distinction the reference's checks make."""
    n = len(batch)
    if n == 0:
        u, i = np.zeros(0, np.uint64), np.zeros(0, np.int64)
        return TransferColumns(u, u, i, i, u, u, u, u, i, u, u, i, i, None)
    cols: list[tuple[Any, ...]] = list(zip(*batch, strict=False))
    ids, debits, credits, amounts, flags, pendings, timeouts, codes, refs = cols[:9]
    bad = np.zeros(n, np.int64)

    # id: an int in 1 .. ID_MAX - 1, else (0, 0) (the kernel answers id_invalid).
    fast = _ids_column(ids)
    if fast is not None:
        id_lo, id_hi = fast[0], fast[1]
    else:
        id_lo, id_hi = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
        for k, value in enumerate(ids):
            if type(value) is int and 0 < value < ID_MAX:
                id_lo[k], id_hi[k] = _split(value)

    def accounts(column: tuple[Any, ...], bit: int) -> tuple[U64, U64]:
        fast = _ids_column(column)
        if fast is not None:
            return fast[0], fast[1]
        lo, hi = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
        for k, value in enumerate(column):
            if type(value) is int and 0 <= value < ID_MAX:
                lo[k], hi[k] = _split(value)
            else:
                bad[k] |= bit
        return lo, hi

    debit_lo, debit_hi = accounts(debits, B_DEBIT)
    credit_lo, credit_hi = accounts(credits, B_CREDIT)

    def ranged(column: tuple[Any, ...], low: int, high: int, bit: int) -> I64:
        if _all_ints(column):
            try:
                values = np.array(column, dtype=np.int64)
            except OverflowError:
                pass
            else:
                bad[(values < low) | (values > high)] |= bit
                return values
        values = np.zeros(n, np.int64)
        for k, value in enumerate(column):
            if type(value) is int and low <= value <= high:
                values[k] = value
            else:
                bad[k] |= bit
        return values

    amount = ranged(amounts, 0, AMOUNT_MAX, B_AMOUNT)
    code = ranged(codes, 0, CODE_MAX, B_CODE)
    if _all_ints(timeouts):
        timeout = ranged(timeouts, 0, TIMEOUT_SECONDS_MAX, B_TIMEOUT)
        bad[timeout != 0] |= B_TIMEOUT_NONZERO
        # An int out of range was zeroed above but is still != 0.
        bad[(bad & B_TIMEOUT) != 0] |= B_TIMEOUT_NONZERO
    else:
        timeout = ranged(timeouts, 0, TIMEOUT_SECONDS_MAX, B_TIMEOUT)
        for k, value in enumerate(timeouts):
            if value != 0:
                bad[k] |= B_TIMEOUT_NONZERO

    # flags
    if _all_ints(flags):
        try:
            raw = np.array(flags, dtype=np.int64)
        except OverflowError:
            raw = None
        if raw is not None:
            encoded = (
                (raw & 15) | np.where(raw & ~15, F_UNKNOWN, 0) | np.where(raw & 1, F_LINKED, 0)
            )
        else:
            encoded = np.array([_flag(value) for value in flags], dtype=np.int64)
    else:
        encoded = np.array([_flag(value) for value in flags], dtype=np.int64)

    # pending_id
    fast = _ids_column(pendings)
    if fast is not None:
        pending_lo, pending_hi = fast[0], fast[1]
        bad[pending_lo != 0] |= B_PENDING_NONZERO
    else:
        pending_lo = np.full(n, _MASK64, np.uint64)
        pending_hi = np.full(n, _MASK64, np.uint64)
        for k, value in enumerate(pendings):
            if value != 0:
                bad[k] |= B_PENDING_NONZERO
            if type(value) is not int:
                bad[k] |= B_PENDING_NOT_INT
                if value == 0:
                    pending_lo[k] = pending_hi[k] = 0
            elif 0 <= value < ID_MAX:
                pending_lo[k], pending_hi[k] = _split(value)

    # ref
    ref_list: Sequence[str] | None = None
    if refs.count("") != n:
        ref_list = refs
        for k, ref in enumerate(refs):
            if type(ref) is not str or len(ref) > REF_LENGTH_MAX:
                bad[k] |= B_REF
    return TransferColumns(
        id_lo,
        id_hi,
        encoded.astype(np.int64),
        bad,
        debit_lo,
        debit_hi,
        credit_lo,
        credit_hi,
        amount,
        pending_lo,
        pending_hi,
        timeout,
        code,
        ref_list,
    )


def _flag(value: object) -> int:
    if isinstance(value, int):
        linked = F_LINKED if value & _LINKED else 0
        unknown = F_UNKNOWN if isinstance(value, bool) or value & ~15 else 0
        return int(value) & 15 | linked | unknown
    return F_UNKNOWN


# -- what one batch changed -------------------------------------------------------------------


@dataclass
class BatchRecord:
    """One batch's changes as packed arrays: what a columnar store makes durable and replays."""

    first_row: int  # the global row of the first transfer
    accounts: list[Account] = field(default_factory=list)  # created, with their timestamps
    transfers: npt.NDArray[np.void] = field(default_factory=lambda: np.zeros(0, TRANSFER_DTYPE))
    refs: list[tuple[int, str]] = field(default_factory=list)  # (offset in the batch, ref)
    balances: npt.NDArray[np.void] = field(default_factory=lambda: np.zeros(0, BALANCE_DTYPE))
    resolutions: npt.NDArray[np.void] = field(default_factory=lambda: np.zeros(0, RESOLUTION_DTYPE))
    history: npt.NDArray[np.void] = field(default_factory=lambda: np.zeros(0, HISTORY_DTYPE))
    last_timestamp: int = 0

    def is_empty(self) -> bool:
        """No durable change (as the reference: a batch whose every event failed stores nothing)."""
        return not (len(self.accounts) or len(self.transfers) or len(self.resolutions))


class ColumnarStore(Store, Protocol):
    """A store that keeps the ledger as ``Tables`` and commits ``BatchRecord``s."""

    columnar: bool
    tables: Tables

    def commit_batch(self, record: BatchRecord) -> None:
        """Make ``record`` durable (atomically); the tables already hold it."""
        ...


# -- the tables -------------------------------------------------------------------------------


def _grow(array: Any, capacity: int) -> Any:
    grown = np.zeros((capacity, *array.shape[1:]), array.dtype)
    grown[: array.shape[0]] = array
    return grown


class Tables:
    """The ledger's whole state as columns (see the module docstring)."""

    def __init__(self) -> None:
        self.accounts: list[Account] = []
        self.account_index: dict[int, int] = {}
        self.currencies: dict[str, int] = {}
        self.n_acc = 0
        self.a_lo = np.zeros(1024, np.uint64)
        self.a_hi = np.zeros(1024, np.uint64)
        self.a_flags = np.zeros(1024, np.int64)
        self.a_limit = np.zeros(1024, np.int64)
        self.a_currency = np.zeros(1024, np.int64)
        self.bal = np.zeros((1024, 4), np.int64)
        self.touch_mark = np.zeros(1024, np.int64)
        self.undo_mark = np.zeros(1024, np.int64)
        self.ah_lo = np.zeros(2048, np.uint64)
        self.ah_hi = np.zeros(2048, np.uint64)
        self.ah_val = np.full(2048, _EMPTY, np.int64)
        self.n_tr = 0
        self._transfer_columns(16384)
        self.th_lo = np.zeros(32768, np.uint64)
        self.th_hi = np.zeros(32768, np.uint64)
        self.th_val = np.full(32768, _EMPTY, np.int64)
        self.th_used = 0
        self.refs: dict[int, str] = {}
        self.n_res = 0
        self.r_row = np.zeros(1024, np.int64)
        self.r_status = np.zeros(1024, np.int64)
        self.r_ts = np.zeros(1024, np.int64)
        self.n_hist = 0
        self.h_acc = np.zeros(1024, np.int64)
        self.h_ts = np.zeros(1024, np.int64)
        self.h_bal = np.zeros((1024, 4), np.int64)
        self.last_timestamp = 0
        self.batch_no = 0
        # Scratch arrays of the kernel, sized for the largest batch.
        self._scratch(1024)

    def _transfer_columns(self, capacity: int) -> None:
        self.t_lo = np.zeros(capacity, np.uint64)
        self.t_hi = np.zeros(capacity, np.uint64)
        self.t_debit = np.zeros(capacity, np.int64)
        self.t_credit = np.zeros(capacity, np.int64)
        self.t_amount = np.zeros(capacity, np.int64)
        self.t_plo = np.zeros(capacity, np.uint64)
        self.t_phi = np.zeros(capacity, np.uint64)
        self.t_ts = np.zeros(capacity, np.int64)
        self.t_timeout = np.zeros(capacity, np.int64)
        self.t_code = np.zeros(capacity, np.int64)
        self.t_flags = np.zeros(capacity, np.int64)
        self.t_status = np.zeros(capacity, np.int64)

    _TRANSFER_ARRAYS = (
        "t_lo",
        "t_hi",
        "t_debit",
        "t_credit",
        "t_amount",
        "t_plo",
        "t_phi",
        "t_ts",
        "t_timeout",
        "t_code",
        "t_flags",
        "t_status",
    )

    def _scratch(self, events: int) -> None:
        self.s_res = np.zeros(events, np.uint8)
        self.s_exist = np.zeros(events, np.int64)
        self.s_row_event = np.zeros(events, np.int64)
        self.s_undo_pending = np.zeros(events, np.int64)

    # -- capacity ---------------------------------------------------------------------------

    def reserve(self, transfers: int, accounts: int = 0, events: int = 0) -> None:
        """Room for ``transfers`` more rows (and resolutions, history), ``accounts`` more accounts
        and a batch of ``events`` events, with the hash tables at most half full."""
        need = self.n_tr + transfers
        if need > self.t_lo.shape[0]:
            capacity = max(need, 2 * self.t_lo.shape[0])
            for name in self._TRANSFER_ARRAYS:
                setattr(self, name, _grow(getattr(self, name), capacity))
        if 2 * (self.th_used + transfers) > self.th_val.shape[0]:
            size = self.th_val.shape[0]
            while 2 * (self.n_tr + transfers) > size // 2:
                size *= 2
            self.th_lo = np.zeros(size, np.uint64)
            self.th_hi = np.zeros(size, np.uint64)
            self.th_val = np.full(size, _EMPTY, np.int64)
            _insert_rows(
                self.th_lo,
                self.th_hi,
                self.th_val,
                self.t_lo[: self.n_tr],
                self.t_hi[: self.n_tr],
                0,
            )
            self.th_used = self.n_tr
        need = self.n_res + transfers
        if need > self.r_row.shape[0]:
            capacity = max(need, 2 * self.r_row.shape[0])
            self.r_row = _grow(self.r_row, capacity)
            self.r_status = _grow(self.r_status, capacity)
            self.r_ts = _grow(self.r_ts, capacity)
        need = self.n_hist + 2 * transfers
        if need > self.h_acc.shape[0]:
            capacity = max(need, 2 * self.h_acc.shape[0])
            self.h_acc = _grow(self.h_acc, capacity)
            self.h_ts = _grow(self.h_ts, capacity)
            self.h_bal = _grow(self.h_bal, capacity)
        need = self.n_acc + accounts
        if need > self.a_lo.shape[0]:
            capacity = max(need, 2 * self.a_lo.shape[0])
            for name in ("a_lo", "a_hi", "a_flags", "a_limit", "a_currency", "bal"):
                setattr(self, name, _grow(getattr(self, name), capacity))
            self.touch_mark = _grow(self.touch_mark, capacity)
            self.undo_mark = _grow(self.undo_mark, capacity)
        if 2 * (self.n_acc + accounts) > self.ah_val.shape[0]:
            size = self.ah_val.shape[0]
            while 2 * (self.n_acc + accounts) > size:
                size *= 2
            self.ah_lo = np.zeros(size, np.uint64)
            self.ah_hi = np.zeros(size, np.uint64)
            self.ah_val = np.full(size, _EMPTY, np.int64)
            _insert_rows(
                self.ah_lo,
                self.ah_hi,
                self.ah_val,
                self.a_lo[: self.n_acc],
                self.a_hi[: self.n_acc],
                0,
            )
        if events > self.s_res.shape[0]:
            self._scratch(max(events, 2 * self.s_res.shape[0]))

    # -- accounts ---------------------------------------------------------------------------

    def add_account(
        self, account: Account, balance: tuple[int, int, int, int] = (0, 0, 0, 0)
    ) -> int:
        self.reserve(0, accounts=1)
        index = self.n_acc
        lo, hi = _split(account.id)
        self.a_lo[index] = lo
        self.a_hi[index] = hi
        self.a_flags[index] = int(account.flags)
        self.a_limit[index] = account.credit_limit
        self.a_currency[index] = self.currencies.setdefault(account.currency, len(self.currencies))
        self.bal[index] = balance
        _insert(self.ah_lo, self.ah_hi, self.ah_val, np.uint64(lo), np.uint64(hi), index)
        self.accounts.append(account)
        self.account_index[account.id] = index
        self.n_acc += 1
        return index

    def balance(self, index: int) -> tuple[int, int, int, int]:
        dp, dpo, cp, cpo = self.bal[index].tolist()
        return dp, dpo, cp, cpo

    # -- transfers --------------------------------------------------------------------------

    def find_rows(self, ids: Sequence[int]) -> list[int]:
        """The row of each id (-1 where absent)."""
        out: list[int] = []
        for transfer_id in ids:
            if type(transfer_id) is int and 0 < transfer_id < ID_MAX:
                lo, hi = _split(transfer_id)
                out.append(
                    int(_find(self.th_lo, self.th_hi, self.th_val, np.uint64(lo), np.uint64(hi)))
                )
            else:
                out.append(-1)
        return out

    def transfer(self, row: int) -> Transfer:
        debit = self.t_debit[row]
        pending = int(self.t_plo[row]) | int(self.t_phi[row]) << 64
        account = self.accounts[debit]
        return Transfer(
            int(self.t_lo[row]) | int(self.t_hi[row]) << 64,
            account.id,
            self.accounts[self.t_credit[row]].id,
            int(self.t_amount[row]),
            int(self.t_flags[row]),
            pending,
            int(self.t_timeout[row]),
            int(self.t_code[row]),
            self.refs.get(row, ""),
            int(self.t_ts[row]),
            account.currency,
        )

    def transfers(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> list[Transfer]:
        """Rows as ``Transfer`` tuples, in bulk."""
        rows = np.asarray(rows, dtype=np.int64)
        ids = _join(self.t_lo[rows], self.t_hi[rows])
        pendings = _join(self.t_plo[rows], self.t_phi[rows])
        accounts = self.accounts
        refs = self.refs
        return [
            Transfer(
                transfer_id,
                accounts[debit].id,
                accounts[credit].id,
                amount,
                flags,
                pending,
                timeout,
                code,
                refs.get(row, ""),
                timestamp,
                accounts[debit].currency,
            )
            for (
                transfer_id,
                debit,
                credit,
                amount,
                flags,
                pending,
                timeout,
                code,
                row,
                timestamp,
            ) in zip(
                ids,
                self.t_debit[rows].tolist(),
                self.t_credit[rows].tolist(),
                self.t_amount[rows].tolist(),
                self.t_flags[rows].tolist(),
                pendings,
                self.t_timeout[rows].tolist(),
                self.t_code[rows].tolist(),
                rows.tolist(),
                self.t_ts[rows].tolist(),
                strict=True,
            )
        ]

    def open_pending_rows(self) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self.t_status[: self.n_tr] == STATUS_OPEN).astype(np.int64)

    # -- checks -----------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``InvariantViolation`` unless every counter is in range, every limit kept and
        debits equal credits per currency (what the reference checks at load)."""
        n = self.n_acc
        bal = self.bal[:n]
        if n and (bal.min() < 0):
            raise InvariantViolation("a counter is out of range")
        flags = self.a_flags[:n]
        limit = self.a_limit[:n].astype(object)
        wide = bal.astype(object)
        over_dr = ((flags & _DMNEC) != 0) & (wide[:, 0] + wide[:, 1] > wide[:, 3] + limit)
        over_cr = ((flags & _CMNED) != 0) & (wide[:, 2] + wide[:, 3] > wide[:, 1] + limit)
        broken = np.flatnonzero(over_dr.astype(bool) | over_cr.astype(bool))
        if broken.size:
            raise InvariantViolation(f"account {self.accounts[int(broken[0])].id}: limit passed")
        currency = self.a_currency[:n]
        for number, name in enumerate(self.currencies):
            rows = wide[currency == number]
            dp, dpo, cp, cpo = (sum(rows[:, k]) for k in range(4))
            if dp != cp or dpo != cpo:
                raise InvariantViolation(
                    f"{name}: debits {dp}/{dpo} != credits {cp}/{cpo} (pending/posted)"
                )

    # -- records ----------------------------------------------------------------------------

    def apply_record(self, record: BatchRecord) -> None:
        """Replay a committed record (recovery): the inverse of what the kernel wrote."""
        for account in record.accounts:
            self.add_account(account)
        rows = record.transfers
        count = len(rows)
        if record.first_row != self.n_tr:
            raise InvariantViolation(
                f"record starts at row {record.first_row}, the tables hold {self.n_tr}"
            )
        self.reserve(count)
        first = self.n_tr
        end = first + count
        self.t_lo[first:end] = rows["id_lo"]
        self.t_hi[first:end] = rows["id_hi"]
        self.t_debit[first:end] = rows["debit"]
        self.t_credit[first:end] = rows["credit"]
        self.t_amount[first:end] = rows["amount"]
        self.t_plo[first:end] = rows["pending_lo"]
        self.t_phi[first:end] = rows["pending_hi"]
        self.t_ts[first:end] = rows["timestamp"]
        self.t_timeout[first:end] = rows["timeout"]
        self.t_code[first:end] = rows["code"]
        self.t_flags[first:end] = rows["flags"]
        _insert_rows(
            self.th_lo, self.th_hi, self.th_val, self.t_lo[first:end], self.t_hi[first:end], first
        )
        self.th_used += count
        self.n_tr = end
        for offset, ref in record.refs:
            self.refs[first + offset] = ref
        resolutions = record.resolutions
        r_rows = resolutions["row"].astype(np.int64)
        r_status = resolutions["status"].astype(np.int64)
        _apply_record_rows(self.t_status, self.t_flags[first:end], first, r_rows, r_status)
        k = len(resolutions)
        self.r_row[self.n_res : self.n_res + k] = r_rows
        self.r_status[self.n_res : self.n_res + k] = r_status
        self.r_ts[self.n_res : self.n_res + k] = resolutions["timestamp"]
        self.n_res += k
        balances = record.balances
        if len(balances):
            index = balances["account"].astype(np.int64)
            self.bal[index, 0] = balances["dp"]
            self.bal[index, 1] = balances["dpo"]
            self.bal[index, 2] = balances["cp"]
            self.bal[index, 3] = balances["cpo"]
        history = record.history
        k = len(history)
        if k:
            self.h_acc[self.n_hist : self.n_hist + k] = history["account"]
            self.h_ts[self.n_hist : self.n_hist + k] = history["timestamp"]
            for j, name in enumerate(("dp", "dpo", "cp", "cpo")):
                self.h_bal[self.n_hist : self.n_hist + k, j] = history[name]
            self.n_hist += k
        self.last_timestamp = max(self.last_timestamp, record.last_timestamp)

    def record_rows(self, first: int, end: int) -> npt.NDArray[np.void]:
        rows = np.zeros(end - first, TRANSFER_DTYPE)
        rows["id_lo"] = self.t_lo[first:end]
        rows["id_hi"] = self.t_hi[first:end]
        rows["debit"] = self.t_debit[first:end]
        rows["credit"] = self.t_credit[first:end]
        rows["amount"] = self.t_amount[first:end]
        rows["pending_lo"] = self.t_plo[first:end]
        rows["pending_hi"] = self.t_phi[first:end]
        rows["timestamp"] = self.t_ts[first:end]
        rows["timeout"] = self.t_timeout[first:end]
        rows["code"] = self.t_code[first:end]
        rows["flags"] = self.t_flags[first:end]
        return rows


def _join(lo: U64, hi: U64) -> list[int]:
    if not hi.any():
        return [int(x) for x in lo.tolist()]
    return [a | b << 64 for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]


# -- one batch through the kernel ---------------------------------------------------------------


class Engine:
    """The compiled state machine over ``Tables``: expiries, the batch, its record."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        # Expiry heap of open pending transfers with a timeout: (expires_at, id, row).
        self.expiries: list[tuple[int, int, int]] = []
        t = tables
        for row in t.open_pending_rows().tolist():
            if t.t_timeout[row]:
                self._push(row)
        heapq.heapify(self.expiries)

    def _push(self, row: int) -> None:
        t = self.tables
        expires_at = int(t.t_ts[row]) + int(t.t_timeout[row]) * NS_PER_SECOND
        transfer_id = int(t.t_lo[row]) | int(t.t_hi[row]) << 64
        heapq.heappush(self.expiries, (expires_at, transfer_id, row))

    def _due(self, timestamp: int) -> npt.NDArray[np.int64]:
        t = self.tables
        due: list[int] = []
        heap = self.expiries
        while heap and heap[0][0] <= timestamp:
            _, _, row = heapq.heappop(heap)
            if t.t_status[row] == STATUS_OPEN:
                due.append(row)
        return np.array(due, dtype=np.int64)

    def apply(self, events: TransferColumns, timestamp_base: int) -> tuple[U8, BatchRecord]:
        """Apply a batch at ``timestamp_base`` (after the ledger's last timestamp)."""
        t = self.tables
        assert timestamp_base > t.last_timestamp
        n = len(events)
        expiring = self._due(timestamp_base)
        ts_events = timestamp_base + len(expiring)
        t.reserve(n + len(expiring), events=n + 1)
        t.batch_no += 1
        first = t.n_tr
        first_res = t.n_res
        first_hist = t.n_hist
        touched = np.zeros(2 * (n + len(expiring)), np.int64)
        undo_acc = np.zeros(2 * n, np.int64)
        undo_bal = np.zeros((2 * n, 4), np.int64)
        res = t.s_res[:n]
        exist = t.s_exist[:n]
        n_tr, n_res, n_hist, n_touched, n_inserts, broken = _apply_batch(
            events.id_lo,
            events.id_hi,
            events.flags,
            events.bad,
            events.debit_lo,
            events.debit_hi,
            events.credit_lo,
            events.credit_hi,
            events.amount,
            events.pending_lo,
            events.pending_hi,
            events.timeout,
            events.code,
            ts_events,
            expiring,
            timestamp_base,
            t.a_lo,
            t.a_hi,
            t.a_flags,
            t.a_limit,
            t.a_currency,
            t.bal,
            t.ah_lo,
            t.ah_hi,
            t.ah_val,
            t.t_lo,
            t.t_hi,
            t.t_debit,
            t.t_credit,
            t.t_amount,
            t.t_plo,
            t.t_phi,
            t.t_ts,
            t.t_timeout,
            t.t_code,
            t.t_flags,
            t.t_status,
            first,
            t.th_lo,
            t.th_hi,
            t.th_val,
            t.r_row,
            t.r_status,
            t.r_ts,
            first_res,
            t.h_acc,
            t.h_ts,
            t.h_bal,
            first_hist,
            t.touch_mark,
            t.undo_mark,
            t.batch_no,
            res,
            exist,
            touched,
            t.s_row_event,
            undo_acc,
            undo_bal,
            t.s_undo_pending,
        )
        t.n_tr = int(n_tr)
        t.n_res = int(n_res)
        t.n_hist = int(n_hist)
        t.th_used += int(n_inserts)
        last = ts_events + n - 1
        t.last_timestamp = max(t.last_timestamp, last)
        if broken >= 0:
            raise InvariantViolation(f"account {t.accounts[int(broken)].id}: counters or limit")
        results = res.copy()
        refs = events.refs
        record_refs: list[tuple[int, str]] = []
        if refs is not None:
            self._fix_exists(results, exist, refs)
            ok = np.flatnonzero(results == OK).tolist()
            for offset, event in enumerate(ok):
                ref = refs[event]
                if ref:
                    t.refs[first + offset] = ref
                    record_refs.append((offset, ref))
        elif (results == EXISTS).any():
            self._fix_exists(results, exist, None)
        # New pending transfers with a timeout join the expiry heap.
        if t.n_tr > first:
            new = np.arange(first, t.n_tr)
            timed = new[
                (t.t_status[first : t.n_tr] == STATUS_OPEN) & (t.t_timeout[first : t.n_tr] != 0)
            ]
            for row in timed.tolist():
                self._push(row)
        touched_rows = touched[:n_touched]
        balances = np.zeros(n_touched, BALANCE_DTYPE)
        if n_touched:
            balances["account"] = touched_rows
            values = t.bal[touched_rows]
            balances["dp"] = values[:, 0]
            balances["dpo"] = values[:, 1]
            balances["cp"] = values[:, 2]
            balances["cpo"] = values[:, 3]
        resolutions = np.zeros(t.n_res - first_res, RESOLUTION_DTYPE)
        resolutions["row"] = t.r_row[first_res : t.n_res]
        resolutions["status"] = t.r_status[first_res : t.n_res]
        resolutions["timestamp"] = t.r_ts[first_res : t.n_res]
        history = np.zeros(t.n_hist - first_hist, HISTORY_DTYPE)
        if len(history):
            history["account"] = t.h_acc[first_hist : t.n_hist]
            history["timestamp"] = t.h_ts[first_hist : t.n_hist]
            for j, name in enumerate(("dp", "dpo", "cp", "cpo")):
                history[name] = t.h_bal[first_hist : t.n_hist, j]
        record = BatchRecord(
            first_row=first,
            transfers=t.record_rows(first, t.n_tr),
            refs=record_refs,
            balances=balances,
            resolutions=resolutions,
            history=history,
            last_timestamp=t.last_timestamp,
        )
        return results, record

    def _fix_exists(self, results: U8, exist: I64, refs: Sequence[str] | None) -> None:
        """``exists`` needs the refs equal too, which the kernel cannot compare: where they differ
        the answer is ``exists_with_different_fields`` (both fail the event alike)."""
        t = self.tables
        for event in np.flatnonzero(results == EXISTS).tolist():
            source = int(exist[event])
            mine = refs[event] if refs is not None else ""
            if source >= 0:
                theirs = refs[source] if refs is not None else ""
            else:
                theirs = t.refs.get(-source - 2, "")
            if mine != theirs:
                results[event] = EXISTS_WITH_DIFFERENT_FIELDS


def pending_status(status: int) -> PendingStatus:
    return PendingStatus(status)
