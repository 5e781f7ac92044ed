"""Rejections of a whole ISO 20022 message.

A reader either returns a model (possibly holding per-transaction rejections) or raises one of the
exceptions below; it raises nothing else for any input bytes (the fuzz tests hold it to that).
Each carries the ISO 20022 ``ExternalStatusReason1Code`` a status report would use::

    MessageRejectedError                  any whole-message rejection (.reason, .text, .line)
    ├── MessageTooLargeError     FF01     more than MESSAGE_BYTES_MAX bytes
    ├── UnsafeXmlError           FF01     a DOCTYPE / entity declaration (XXE, billion laughs)
    ├── MalformedXmlError        FF01     not well-formed XML
    ├── EnvelopeError            FF01     no ISO Document, several, or a header that contradicts it
    ├── UnsupportedMessageError  FF01     not a message (version) this system reads
    ├── SchemaValidationError    FF02     violates the official XSD (first error, with its line)
    └── InvalidContentError      varies   XSD-valid but unusable as a whole (e.g. a bad statement
                                          amount, an impossible creation time)

Writers raise ``MessageBuildError`` (a ``ValueError``) when their input cannot make a valid message.
"""

from __future__ import annotations

from sco_settle.messaging.iso20022.reasons import StatusReason


class MessageRejectedError(Exception):
    """The message as a whole cannot be accepted."""

    reason: StatusReason = StatusReason.FF01

    def __init__(self, text: str, *, line: int | None = None, reason: StatusReason | None = None):
        if reason is not None:
            self.reason = reason
        self.text = text
        self.line = line
        super().__init__(
            f"{self.reason}: {text}" if line is None else f"{self.reason}: line {line}: {text}"
        )


class MessageTooLargeError(MessageRejectedError):
    """The input is larger than ``MESSAGE_BYTES_MAX``; it is refused before parsing."""


class UnsafeXmlError(MessageRejectedError):
    """The input has a document type declaration, the carrier of XXE and entity expansion."""


class MalformedXmlError(MessageRejectedError):
    """The input is not well-formed XML."""


class EnvelopeError(MessageRejectedError):
    """The wrapper around the ISO Document is not usable (no Document, two, mismatching header)."""


class UnsupportedMessageError(MessageRejectedError):
    """The Document is not a message definition (or version) that SCO Settle reads."""


class SchemaValidationError(MessageRejectedError):
    """The Document or application header violates its official XSD."""

    reason = StatusReason.FF02


class InvalidContentError(MessageRejectedError):
    """Schema-valid, but a message-level value makes the whole message unusable."""


class MessageBuildError(ValueError):
    """A writer's input cannot produce a schema-valid message (e.g. a name longer than allowed)."""
