"""SCO Settle: a settlement network for the banks of SCO states, in their own national currencies."""

__version__ = "0.1.0"
