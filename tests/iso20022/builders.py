"""Helpers for the ISO 20022 tests: sample paths and small valid message builders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sco_settle.messaging.iso20022 import (
    Account,
    Agent,
    AppHeader,
    CreditTransfer,
    CreditTransferMessage,
    Party,
    PostalAddress,
)

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "samples"
NOW = dt.datetime(2026, 1, 5, 10, 30, 15, 250000, tzinfo=dt.timezone(dt.timedelta(hours=5)))


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*/*.xml"))


def sample_id(path: Path) -> str:
    return str(path.relative_to(SAMPLES))


def transfer(index: int, **changes: object) -> CreditTransfer:
    """A valid pacs.008 transfer between a Kazakh and an Uzbek bank, in KZT."""
    values: dict[str, object] = {
        "end_to_end_id": f"E2E-{index}",
        "settlement_amount_minor": 1_000_000 + index,
        "settlement_currency": "KZT",
        "debtor": Party(name="Aigerim Bekova", postal_address=PostalAddress(country="KZ")),
        "creditor": Party(name="Timur Karimov", postal_address=PostalAddress(town_name="Tashkent")),
        "instruction_id": f"INSTR-{index}",
        "transaction_id": f"TX-{index}",
        "uetr": f"8a562c67-ca16-48ba-b074-65581be6f{index:03d}",
        "settlement_date": dt.date(2026, 1, 5),
        "charge_bearer": "SHAR",
        "instructing_agent": Agent(bicfi="HSBKKZKX"),
        "instructed_agent": Agent(bicfi="NBFAUZ2X"),
        "debtor_account": Account(iban="KZ86125KZT5004100100"),
        "debtor_agent": Agent(bicfi="HSBKKZKX"),
        "creditor_agent": Agent(bicfi="NBFAUZ2X"),
        "creditor_account": Account(other_id="20208000900123456001"),
        "remittance_lines": ("Invoice 42",),
    }
    values.update(changes)
    return CreditTransfer(**values)  # type: ignore[arg-type]


def credit_message(
    items: tuple[CreditTransfer, ...], definition: str = "pacs.008.001.08", header: bool = True
) -> CreditTransferMessage:
    app_header = (
        AppHeader(
            version="head.001.001.02" if definition.endswith(".08") else "head.001.001.04",
            business_message_id="MSG-1",
            message_definition_id=definition,
            created_at=NOW,
            from_bic="HSBKKZKX",
            to_bic="NBFAUZ2X",
            business_service="swift.cbprplus.02",
        )
        if header
        else None
    )
    return CreditTransferMessage(
        definition=definition,
        message_id="MSG-1",
        created_at=NOW,
        number_of_transactions=len(items),
        settlement_method="INDA",
        items=items,
        app_header=app_header,
    )
