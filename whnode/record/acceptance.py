"""Every rule that decides whether a record is accepted lives in this module, and only here.

A record is accepted, from a peer, a client or storage alike, only when all of these hold,
checked cheapest first; the first rule broken raises its own error:

1. size: the record is at most ``MAX_RECORD_BYTES``, checked before it is parsed
   (``LimitExceeded``);
2. structure: a canonical, tagged COSE_Sign1 with exactly the version 1 protected header
   (``decode_record``: ``DecodeError``; another format version: ``UnsupportedVersion``);
3. declared size: the payload is an lz4 frame that declares a content size of at most
   ``MAX_DECOMPRESSED_BYTES`` and at most ``MAX_COMPRESSION_RATIO`` times the frame, read from
   the frame header without decompressing (``LimitExceeded``);
4. time: ``fetched_at`` is at most ``MAX_FUTURE_SKEW_SECONDS`` after ``now_ms``
   (``FutureTimestamp``);
5. key binding: the record is for the dispensary that was asked for (``KeyBindingMismatch``);
6. trust policy: ``open`` admits any publisher, ``allowlist`` only the listed public keys
   (``UntrustedPublisher``);
7. signature: a valid Ed25519 signature, by the key named in the header, over the
   COSE Sig_structure of the protected header and the payload; a key of small order, under
   which anyone can forge, never verifies (``keys.verify_signature``; ``BadSignature``).

``open_record`` then decompresses and decodes the payload under the codec's caps and checks
that the menu inside is the one the header describes: same dispensary, same fetch time, same
content hash (``DecodeError`` otherwise).

A node *keeps* a record (stores it, caches it, replicates it, republishes it, hands it off)
only through ``admit_record``, which adds two rules to the seven above, so that one bad PUT
cannot break a dispensary for the network:

8. open before keep: the payload is decompressed and decoded, and the menu inside must be the
   one the header describes (``open_record``); any failure is ``PayloadMismatch``, never the
   plain ``DecodeError`` of a malformed envelope;
9. rank: ``fetched_at`` is at most ``MAX_KEEP_SKEW_SECONDS`` after ``now_ms``
   (``AheadOfClock``). "Newest" is the largest fetch time among kept records, so a record
   dated up to ``MAX_FUTURE_SKEW_SECONDS`` ahead would outrank every fetch made in the next
   five minutes; kept records are never more than ``MAX_KEEP_SKEW_SECONDS`` ahead.

Who may publish a dispensary's records (entitlement) depends on the DHT's view, not on the
record alone: it is checked by ``whnode.service.entitlement`` after ``admit_record``.

Nothing here reads a clock: the caller passes ``now_ms``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from whnode import limits
from whnode.errors import UsageError
from whnode.record.codec import declared_size, decode_menu_with_hash
from whnode.record.exceptions import (
    AheadOfClock,
    BadSignature,
    DecodeError,
    FutureTimestamp,
    KeyBindingMismatch,
    LimitExceeded,
    ModelError,
    PayloadMismatch,
    UntrustedPublisher,
)
from whnode.record.keys import PUBLIC_KEY_BYTES, PublicKey, verify_signature
from whnode.record.model import Menu
from whnode.record.signed import SignedRecord, decode_record, sig_structure

__all__ = [
    "TrustMode",
    "TrustPolicy",
    "accept_record",
    "admit_record",
    "open_record",
    "verify_record",
]


class TrustMode(enum.StrEnum):
    """Which publishers a node accepts records from."""

    OPEN = "open"
    """Any publisher with a valid signature (node ids are bound to keys)."""
    ALLOWLIST = "allowlist"
    """Only the publishers whose keys the operator lists: a private federation."""


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """The trust rule of ``accept_record``."""

    mode: TrustMode = TrustMode.OPEN
    """``open`` or ``allowlist``."""
    allowed: frozenset[PublicKey] = field(default_factory=frozenset)
    """Raw 32-byte Ed25519 public keys admitted in ``allowlist`` mode (ignored when open)."""

    def __post_init__(self) -> None:
        if not isinstance(self.mode, TrustMode):
            raise UsageError(f"trust mode must be a TrustMode, not {self.mode!r}")
        if not isinstance(self.allowed, frozenset) or not all(
            isinstance(key, bytes) and len(key) == PUBLIC_KEY_BYTES for key in self.allowed
        ):
            raise UsageError(f"allowed keys must be a frozenset of {PUBLIC_KEY_BYTES}-byte keys")

    @classmethod
    def open(cls) -> TrustPolicy:
        """Any publisher with a valid signature."""
        return cls(TrustMode.OPEN)

    @classmethod
    def allowlist(cls, keys: Iterable[bytes]) -> TrustPolicy:
        """Only the listed publishers (a private federation)."""
        return cls(TrustMode.ALLOWLIST, frozenset(PublicKey(bytes(key)) for key in keys))

    def trusts(self, publisher: bytes) -> bool:
        """Whether records signed by ``publisher`` are admitted."""
        return self.mode is TrustMode.OPEN or bytes(publisher) in self.allowed


def verify_record(
    record: SignedRecord,
    *,
    now_ms: int,
    policy: TrustPolicy,
    expected_dispensary: str | None = None,
) -> SignedRecord:
    """Apply rules 3-7 to a decoded record; return it, or raise the first rule's error."""
    declared_size(record.payload)
    if record.fetched_at_ms > now_ms + limits.MAX_FUTURE_SKEW_SECONDS * 1000:
        raise FutureTimestamp(
            f"record fetched at {record.fetched_at_ms} ms is more than "
            f"{limits.MAX_FUTURE_SKEW_SECONDS} s after now ({now_ms} ms)"
        )
    if expected_dispensary is not None and record.dispensary_id != expected_dispensary:
        raise KeyBindingMismatch(
            f"record is for {record.dispensary_id!r}, not {expected_dispensary!r}"
        )
    if not policy.trusts(record.publisher):
        raise UntrustedPublisher(
            f"publisher {bytes(record.publisher).hex()[:16]}... is not in the allowlist"
        )
    if not verify_signature(
        record.publisher, record.signature, sig_structure(record.protected, record.payload)
    ):
        raise BadSignature("the signature does not verify with the publisher's key")
    return record


def accept_record(
    data: bytes | bytearray | memoryview,
    *,
    now_ms: int,
    policy: TrustPolicy,
    expected_dispensary: str | None = None,
) -> SignedRecord:
    """Decode ``data`` and apply every rule above; return the record or raise.

    Any input, however malformed, raises only DecodeError (LimitExceeded included) or a
    RejectedRecord subclass.
    """
    if isinstance(data, bytes | bytearray | memoryview) and len(data) > limits.MAX_RECORD_BYTES:
        raise LimitExceeded(f"record of {len(data)} bytes, over MAX_RECORD_BYTES")
    record = decode_record(data)
    return verify_record(
        record, now_ms=now_ms, policy=policy, expected_dispensary=expected_dispensary
    )


def open_record(record: SignedRecord) -> Menu:
    """The menu inside an accepted record, checked against its signed header.

    Raises DecodeError (LimitExceeded included) or ModelError.
    """
    menu, menu_hash = decode_menu_with_hash(record.payload)
    if menu.dispensary_id != record.dispensary_id:
        raise DecodeError("the menu inside is not for the dispensary in the signed header")
    if menu.fetched_at_ms != record.fetched_at_ms:
        raise DecodeError("the menu inside does not have the fetch time in the signed header")
    if menu_hash != record.content_hash:
        raise DecodeError("the menu inside does not match the signed content hash")
    return menu


def admit_record(
    data: bytes | bytearray | memoryview,
    *,
    now_ms: int,
    policy: TrustPolicy,
    expected_dispensary: str | None = None,
) -> tuple[SignedRecord, Menu]:
    """``accept_record``, then rules 8 and 9: the record and its opened menu, or raise.

    For every record a node keeps. Opening costs about as much as decoding the menu (tens of
    ms for a large one): callers run it off the event loop for large records.
    """
    record = accept_record(
        data, now_ms=now_ms, policy=policy, expected_dispensary=expected_dispensary
    )
    try:
        menu = open_record(record)
    except (DecodeError, ModelError) as exc:
        raise PayloadMismatch(f"the payload does not open as its header says: {exc}") from exc
    if record.fetched_at_ms > now_ms + limits.MAX_KEEP_SKEW_SECONDS * 1000:
        raise AheadOfClock(
            f"record fetched at {record.fetched_at_ms} ms is more than "
            f"{limits.MAX_KEEP_SKEW_SECONDS} s after now ({now_ms} ms): not kept"
        )
    return record, menu
