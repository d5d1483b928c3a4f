"""Exceptions of the record layer.

::

    RemoteError
    └── RecordError                 a record or model value was refused
        ├── ModelError              a value breaks the menu model's rules
        ├── DecodeError             bytes are not a well-formed record/payload
        │   └── LimitExceeded       a named cap (whnode.limits) was exceeded before work
        └── RejectedRecord          well-formed, but refused by an acceptance rule
            ├── BadSignature
            ├── FutureTimestamp
            │   └── AheadOfClock    too far ahead of the receiver's clock to be kept
            ├── KeyBindingMismatch  the record's dispensary is not the one asked for
            ├── UntrustedPublisher  the trust policy refuses the publisher
            ├── PayloadMismatch     the payload does not open, or not as its header says
            ├── NotEntitled         the publisher may not publish this dispensary
            │   └── SenderNotOwner  the sender is neither an owner nor the publisher
            └── UnsupportedVersion
"""

from __future__ import annotations

from whnode.errors import RemoteError

__all__ = [
    "AheadOfClock",
    "BadSignature",
    "DecodeError",
    "FutureTimestamp",
    "KeyBindingMismatch",
    "LimitExceeded",
    "ModelError",
    "NotEntitled",
    "PayloadMismatch",
    "RecordError",
    "RejectedRecord",
    "SenderNotOwner",
    "UnsupportedVersion",
    "UntrustedPublisher",
]


class RecordError(RemoteError):
    """A record, or a model value, was refused."""

    reason = "record_error"


class ModelError(RecordError, ValueError):
    """A value breaks the menu model's rules."""

    reason = "invalid_model"


class DecodeError(RecordError):
    """Bytes are not a well-formed record or payload."""

    reason = "malformed"


class LimitExceeded(DecodeError):
    """A named limit was exceeded; raised before the protected work is done."""

    reason = "too_large"


class RejectedRecord(RecordError):
    """A well-formed record refused by an acceptance rule."""

    reason = "rejected"


class BadSignature(RejectedRecord):
    reason = "bad_signature"


class FutureTimestamp(RejectedRecord):
    reason = "future_timestamp"


class KeyBindingMismatch(RejectedRecord):
    reason = "key_binding"


class UntrustedPublisher(RejectedRecord):
    reason = "untrusted_publisher"


class UnsupportedVersion(RejectedRecord):
    reason = "unsupported_version"


class AheadOfClock(FutureTimestamp):
    """Within the verification skew, but too far ahead of the receiver's clock to be kept:
    kept, it would outrank the records fetched after it (see acceptance.admit_record)."""

    reason = "ahead_of_clock"


class PayloadMismatch(RejectedRecord):
    """A well-signed envelope whose payload does not open, or holds another menu than the
    header describes (content hash, dispensary, fetch time, declared sizes)."""

    reason = "payload_mismatch"


class NotEntitled(RejectedRecord):
    """The publisher is not among the dispensary's owners as the receiver sees them, or the
    sender is neither an owner nor the publisher (whnode.service.entitlement)."""

    reason = "publisher_not_entitled"


class SenderNotOwner(NotEntitled):
    """The peer that sent the record is neither an owner of its dispensary nor its publisher."""

    reason = "sender_not_owner"
