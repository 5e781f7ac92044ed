"""Messaging: translation between wire formats and plain values.

Invariants:
- This layer depends only on ``sco_settle.domain``; it never calls the ledger, storage or network.
  A message is turned into values (or rejections) here, and the payment pipeline decides what to do.
"""
