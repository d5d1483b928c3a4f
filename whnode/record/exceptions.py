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
            ├── KeyBindingMismatch  the record's dispensary is not the one asked for
            ├── UntrustedPublisher  the trust policy refuses the publisher
            └── UnsupportedVersion
"""

from __future__ import annotations

from whnode.errors import RemoteError

__all__ = [
    "BadSignature",
    "DecodeError",
    "FutureTimestamp",
    "KeyBindingMismatch",
    "LimitExceeded",
    "ModelError",
    "RecordError",
    "RejectedRecord",
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
