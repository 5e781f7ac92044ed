"""Adapters that join the message formats to the payment pipeline (ISO 20022 today)."""
