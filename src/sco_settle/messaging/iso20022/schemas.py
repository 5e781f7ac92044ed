"""The official ISO 20022 XSDs shipped with SCO Settle, compiled once and cached.

Invariants:
- Schemas are the unchanged ISO files in ``schemas/`` (provenance in ``schemas/SOURCES.md``).
- A schema is compiled at most once per thread (lxml validators keep an error log, so they are not
  shared between threads) and lives for the process.
- Validation uses ``lxml.etree.XMLSchema`` (libxml2), several times faster than ``xmlschema``.
"""

from __future__ import annotations

import re
import threading
from importlib import resources

from lxml import etree

from sco_settle.messaging.iso20022.errors import SchemaValidationError

ISO_NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"

_DEFINITION_PATTERN = re.compile(r"^[a-z]{4}\.\d{3}\.\d{3}\.\d{2}$")

_local = threading.local()


def _schema_dir() -> resources.abc.Traversable:
    return resources.files("sco_settle.messaging.iso20022").joinpath("schemas")


def _available() -> frozenset[str]:
    names = set()
    for entry in _schema_dir().iterdir():
        if entry.name.endswith(".xsd"):
            names.add(entry.name.removesuffix(".xsd"))
    return frozenset(names)


SCHEMA_DEFINITIONS: frozenset[str] = _available()


def namespace_of(definition: str) -> str:
    """``pacs.008.001.08`` -> ``urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08``."""
    return ISO_NAMESPACE_PREFIX + definition


def definition_of(namespace: str | None) -> str | None:
    """The message definition named by an ISO namespace, or None if it is not one."""
    if not namespace or not namespace.startswith(ISO_NAMESPACE_PREFIX):
        return None
    definition = namespace[len(ISO_NAMESPACE_PREFIX) :]
    return definition if _DEFINITION_PATTERN.match(definition) else None


def schema(definition: str) -> etree.XMLSchema:
    """The compiled XSD of a message definition shipped in ``schemas/`` (KeyError if none)."""
    cache: dict[str, etree.XMLSchema] | None = getattr(_local, "schemas", None)
    if cache is None:
        cache = {}
        _local.schemas = cache
    compiled = cache.get(definition)
    if compiled is None:
        if definition not in SCHEMA_DEFINITIONS:
            raise KeyError(definition)
        source = _schema_dir().joinpath(f"{definition}.xsd").read_bytes()
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        compiled = etree.XMLSchema(etree.fromstring(source, parser))
        cache[definition] = compiled
    return compiled


def validate(element: etree._Element, definition: str) -> None:
    """Validate an element (a Document or AppHdr, possibly inside an envelope) against its XSD.

    Raises ``SchemaValidationError`` with the first error and its line number.
    """
    compiled = schema(definition)
    if compiled.validate(element):
        return
    first = compiled.error_log[0]
    message = first.message.replace("{" + namespace_of(definition) + "}", "")
    raise SchemaValidationError(f"{definition}: {message}", line=first.line or None)
