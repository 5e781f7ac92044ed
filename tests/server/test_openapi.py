"""The OpenAPI document: the copy in the repository is the one the server serves.

Regenerate it after changing a route or a schema:  python -m sco_settle.server.app > openapi.json
"""

from __future__ import annotations

import json
from pathlib import Path

from sco_settle.server.app import openapi_text
from sco_settle.server.keys import Role

REPOSITORY_COPY = Path(__file__).resolve().parents[2] / "openapi.json"


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
