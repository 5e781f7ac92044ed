"""``sco-settle iso ...``: ISO 20022 message tools (argument parsing and output only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sco_settle.messaging.iso20022 import MESSAGE_BYTES_MAX, MessageRejectedError, open_message

iso_app = typer.Typer(
    help="ISO 20022 messages: validate against the official XSDs.", no_args_is_help=True
)


@iso_app.callback()
def _iso() -> None:
    """ISO 20022 messages (pacs, camt, head) with the official XSDs."""


@iso_app.command("validate")
def validate(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="XML file")
    ],
) -> None:
    """Check FILE safely and against its ISO 20022 XSD (and its application header's).

    Prints "valid: <message definition>" and exits 0, or "invalid: <file>:<line>: <first error>"
    and exits 1.
    """
    with file.open("rb") as stream:
        # Read one byte past the limit so that an oversize file is refused, not truncated.
        data = stream.read(MESSAGE_BYTES_MAX + 1)
    try:
        opened = open_message(data)
    except MessageRejectedError as error:
        line = error.line if error.line is not None else 0
        typer.echo(f"invalid: {file}:{line}: {error.text}")
        raise typer.Exit(code=1) from None
    typer.echo(f"valid: {opened.definition}")
