"""Pure domain types: money, identifiers, participants, accounts, transfers, result codes.

Nothing here performs I/O or reads the clock; every other layer depends on this one.
"""
