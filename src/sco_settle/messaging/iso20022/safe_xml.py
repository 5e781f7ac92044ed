"""Hardened XML parsing for untrusted messages.

Invariants:
- No input larger than ``MESSAGE_BYTES_MAX`` reaches the parser.
- No document type declaration is accepted, so no entity can be declared: external entities (XXE
  file or network reads) and entity expansion (billion laughs) are impossible. The parser is also
  configured never to resolve entities, load a DTD or touch the network, as a second line.
- libxml2's default limits stay on (``huge_tree=False``): depth 256, text node 10 MB.
- Every failure is a ``MessageRejectedError`` subclass; nothing else escapes for any ``bytes``.
"""

from __future__ import annotations

import threading

from lxml import etree

from sco_settle.messaging.iso20022.errors import (
    MalformedXmlError,
    MessageTooLargeError,
    UnsafeXmlError,
)

# A CBPR+ message is capped at 100 kB of payload by SWIFT; HVPS+ batches are larger but one
# settlement instruction stays far below 1 MiB. The cap bounds parse time and memory per message.
MESSAGE_BYTES_MAX = 1024 * 1024

_DOCTYPE_MARKER = b"<!DOCTYPE"
_ENTITY_MARKER = b"<!ENTITY"

_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers keep state between parses; one per thread keeps parsing thread-safe.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse_untrusted(data: bytes) -> etree._Element:
    """Parse untrusted bytes into an element tree root, or raise a ``MessageRejectedError``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"message must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MESSAGE_BYTES_MAX:
        raise MessageTooLargeError(
            f"message is {len(data)} bytes, more than the limit of {MESSAGE_BYTES_MAX} bytes"
        )
    # Refuse before parsing when the markers are visible as ASCII (UTF-8, the ISO 20022 encoding):
    # the cheapest defence, and a billion-laughs payload never reaches libxml2.
    if _DOCTYPE_MARKER in data or _ENTITY_MARKER in data:
        raise UnsafeXmlError("document type declarations (DOCTYPE/ENTITY) are not allowed")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as error:
        line = error.lineno if isinstance(error.lineno, int) and error.lineno > 0 else None
        if "amplification" in str(error.msg):
            # libxml2's own entity-expansion guard tripped (a DOCTYPE in a non-ASCII encoding).
            raise UnsafeXmlError(f"entity expansion refused: {error.msg}", line=line) from None
        raise MalformedXmlError(f"not well-formed XML: {error.msg}", line=line) from None
    except (etree.LxmlError, ValueError) as error:
        raise MalformedXmlError(f"not well-formed XML: {error}") from None
    if root is None:
        raise MalformedXmlError("not well-formed XML: no root element")
    # Other encodings (UTF-16, UTF-32, EBCDIC) hide the markers from the byte scan; check the tree.
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXmlError("document type declarations (DOCTYPE/ENTITY) are not allowed")
    return root
