"""SCO Settle: national-currency settlement for banks of SCO states."""

__version__ = "0.1.0"
