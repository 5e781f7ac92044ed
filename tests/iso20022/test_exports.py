"""The public surface of ``sco_settle.messaging.iso20022`` is curated and sorted."""

from __future__ import annotations

import ast
from pathlib import Path

import sco_settle.messaging.iso20022 as iso


def test_all_is_sorted_and_complete() -> None:
    # Ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    assert iso.__all__ == sorted(iso.__all__, key=lambda n: (not n.isupper(), n[0].islower(), n))
    for name in iso.__all__:
        assert hasattr(iso, name), name


def test_messaging_depends_only_on_the_domain() -> None:
    package = Path(iso.__file__).resolve().parent.parent
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("sco_settle")
            ):
                assert node.module.startswith(("sco_settle.domain", "sco_settle.messaging")), path
