from __future__ import annotations

import pytest

from sco_settle.cli.dst import server_idempotency
from sco_settle.dst import IdempotencyWiring


@pytest.fixture(scope="session")
def wiring() -> IdempotencyWiring:
    """The server's real idempotency records, as ``sco-settle dst`` wires them."""
    return server_idempotency()
