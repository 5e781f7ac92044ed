"""Finding the ISO Document (and application header) in a message, and validating both.

Accepted shapes:
- a bare ``<Document xmlns="urn:iso:std:iso:20022:tech:xsd:...">``;
- any non-ISO wrapper elements (``<Envelope>``, ``<Request>``/``<Message>`` of the SWIFTNet business
  envelope, ``<DataPDU>``/``<Body>``, ``<RequestPayload>``...) holding exactly one ``Document`` and
  at most one ``AppHdr`` (head.001.001.02 or .04), at any depth up to ``ENVELOPE_DEPTH_MAX``.

The message type and version come from the Document namespace, never from the header.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sco_settle.messaging.iso20022.errors import EnvelopeError, UnsupportedMessageError
from sco_settle.messaging.iso20022.model import APP_HEADER_DEFINITIONS
from sco_settle.messaging.iso20022.safe_xml import parse_untrusted
from sco_settle.messaging.iso20022.schemas import (
    ISO_NAMESPACE_PREFIX,
    SCHEMA_DEFINITIONS,
    definition_of,
    validate,
)

# Wrappers seen in practice are one or two levels deep (Envelope/AppHdr, DataPDU/Body/AppHdr).
ENVELOPE_DEPTH_MAX = 8


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    """A parsed, located and schema-valid message, before mapping."""

    definition: str
    document: etree._Element
    header_definition: str | None = None
    header: etree._Element | None = None


def _split(element: etree._Element) -> tuple[str | None, str]:
    """(namespace, local name) of ``element``'s tag; a parsed tree's tags are strings (comments
    and processing instructions are dropped at parse, see ``safe_xml``)."""
    tag = element.tag
    assert isinstance(tag, str), tag
    if tag[0] == "{":
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


def _locate(root: etree._Element) -> tuple[etree._Element, etree._Element | None]:
    namespace, local = _split(root)
    if namespace is not None and namespace.startswith(ISO_NAMESPACE_PREFIX):
        if local == "Document":
            return root, None
        raise EnvelopeError(f"root element {local!r} is not an ISO 20022 Document or a wrapper")
    if local == "Document":
        raise UnsupportedMessageError(f"unknown message namespace {namespace!r}")
    documents: list[etree._Element] = []
    headers: list[etree._Element] = []
    stack = [(root, 0)]
    while stack:
        element, depth = stack.pop()
        for child in element:
            namespace, local = _split(child)
            if namespace is not None and namespace.startswith(ISO_NAMESPACE_PREFIX):
                if local == "Document":
                    documents.append(child)
                elif local == "AppHdr":
                    headers.append(child)
                else:
                    raise EnvelopeError(f"unexpected ISO 20022 element {local!r} in the envelope")
            elif depth + 1 < ENVELOPE_DEPTH_MAX:
                stack.append((child, depth + 1))
    if len(documents) != 1:
        raise EnvelopeError(f"the envelope holds {len(documents)} ISO 20022 Documents, not one")
    if len(headers) > 1:
        raise EnvelopeError(f"the envelope holds {len(headers)} application headers, not one")
    return documents[0], headers[0] if headers else None


def open_message(data: bytes) -> OpenedMessage:
    """Parse untrusted bytes, find the Document and header, and validate both against their XSDs.

    Works for every message definition with a shipped schema (including versions SCO Settle does
    not map, such as camt.053.001.02). Raises a ``MessageRejectedError`` subclass.
    """
    root = parse_untrusted(data)
    document, header = _locate(root)
    definition = definition_of(_split(document)[0])
    if definition is None or definition not in SCHEMA_DEFINITIONS:
        namespace = _split(document)[0]
        raise UnsupportedMessageError(f"unknown or unsupported message namespace {namespace!r}")
    header_definition = None
    if header is not None:
        header_definition = definition_of(_split(header)[0])
        if header_definition not in APP_HEADER_DEFINITIONS:
            raise UnsupportedMessageError(
                f"application header {_split(header)[0]!r} is not head.001.001.02 or .04"
            )
        validate(header, header_definition)
    validate(document, definition)
    return OpenedMessage(definition, document, header_definition, header)
