"""The OpenAPI document: the copy in the repository is the one the server serves.

Regenerate it after changing a route or a schema:  python -m sco_settle.server.app > openapi.json
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sco_settle.server.app import openapi_text
from sco_settle.server.keys import Role

REPOSITORY_COPY = Path(__file__).resolve().parents[2] / "openapi.json"

# An operation id is what a generated client names its method: a verb from this list, then the
# resource in camelCase (``createPayment``, ``listNettingCycles``), never FastAPI's path-derived
# default (``create_payment_v1_payments_post``). A new verb is a deliberate addition here.
OPERATION_VERBS = ("cancel", "create", "get", "list", "revoke", "rotate", "run", "submit", "update")
CAMEL_CASE = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*|[0-9]+)+")


def test_repository_copy_is_up_to_date():
    assert REPOSITORY_COPY.read_text() == openapi_text(), (
        "openapi.json is stale: python -m sco_settle.server.app > openapi.json"
    )


def test_served_document_equals_the_repository_copy(live):
    with live.client(live.key("PBOCCNBJ", Role.AUDITOR)) as http:
        response = http.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(REPOSITORY_COPY.read_text())


def test_every_write_documents_its_idempotency_key_and_every_route_its_problems():
    document = json.loads(REPOSITORY_COPY.read_text())
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            if path != "/health":
                assert "401" in responses, (method, path)
                assert "application/problem+json" in responses["401"]["content"]
            if method == "post" and path != "/v1/route-quotes":
                names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
                assert "Idempotency-Key" in names, (method, path)
            if method == "get" and "limit" in [p["name"] for p in operation.get("parameters", [])]:
                assert "after" in [p["name"] for p in operation["parameters"]], path


def test_every_operation_id_is_a_unique_camel_case_name_that_starts_with_a_verb():
    document = json.loads(REPOSITORY_COPY.read_text())
    seen: dict[str, str] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            operation_id = operation.get("operationId")
            assert operation_id, f"{where} has no operationId"
            assert CAMEL_CASE.fullmatch(operation_id), f"{where}: {operation_id!r} is not camelCase"
            verb = re.match(r"[a-z]+", operation_id)
            assert verb is not None and verb.group() in OPERATION_VERBS, (
                f"{where}: {operation_id!r} does not start with one of {OPERATION_VERBS}"
            )
            assert operation_id not in seen, (
                f"{where} reuses {operation_id!r} of {seen[operation_id]}"
            )
            seen[operation_id] = where
    assert len(seen) >= 20  # The document was read, not an empty one.
