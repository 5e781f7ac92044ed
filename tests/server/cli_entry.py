"""``python -m tests.server.cli_entry ...``: the ``sco-settle`` CLI with ``serve`` and ``keys``
mounted, for tests run before ``cli/main.py`` registers them itself."""

from __future__ import annotations

from sco_settle.cli import main as cli_main
from sco_settle.cli.serve import register

if not any(command.name == "serve" for command in cli_main.app.registered_commands):
    register(cli_main.app)

if __name__ == "__main__":
    cli_main.main()
