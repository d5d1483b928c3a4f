"""Every rule that decides whether a record is accepted lives in this module.

A record is accepted, from a peer or from storage alike, only when all of these hold, checked
cheapest first:

1. sizes: the record is at most ``MAX_RECORD_BYTES`` (before it is parsed);
2. structure: a canonical, tagged COSE_Sign1 with the whnode header (``decode_record``);
3. time: ``fetched_at`` is not later than ``now + MAX_FUTURE_SKEW_SECONDS``;
4. key binding: the record's dispensary is the one asked for;
5. trust policy: ``open`` (any publisher) or ``allowlist`` (listed publishers only);
6. signature: a valid Ed25519 signature by the publisher named in the header.

``open_record`` then decompresses and decodes the payload under the codec's caps and checks
that the menu inside matches the signed header (dispensary, fetch time, content hash).
Each rejection raises its own error type (whnode.record.exceptions).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from whnode import limits
from whnode.record.codec import content_hash, decode_menu
from whnode.record.exceptions import (
    BadSignature,
    DecodeError,
    FutureTimestamp,
    KeyBindingMismatch,
    LimitExceeded,
    UntrustedPublisher,
)
from whnode.record.keys import PublicKey, verify_signature
from whnode.record.model import Menu
from whnode.record.signed import SignedRecord, decode_record, sig_structure

__all__ = ["TrustMode", "TrustPolicy", "accept_record", "open_record", "verify_record"]


class TrustMode(enum.StrEnum):
    OPEN = "open"
    ALLOWLIST = "allowlist"


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Which publishers' records are accepted."""

    mode: TrustMode = TrustMode.OPEN
    allowed: frozenset[PublicKey] = field(default_factory=frozenset)

    @classmethod
    def open(cls) -> TrustPolicy:
        """Any publisher with a valid signature."""
        return cls(TrustMode.OPEN)

    @classmethod
    def allowlist(cls, keys: frozenset[PublicKey] | set[PublicKey]) -> TrustPolicy:
        """Only the listed publishers (a private federation)."""
        return cls(TrustMode.ALLOWLIST, frozenset(PublicKey(bytes(key)) for key in keys))

    def trusts(self, publisher: bytes) -> bool:
        return self.mode is TrustMode.OPEN or bytes(publisher) in self.allowed


def verify_record(
    record: SignedRecord,
    *,
    now_ms: int,
    policy: TrustPolicy,
    expected_dispensary: str | None = None,
) -> SignedRecord:
    """Apply rules 3-6 to a decoded record; return it or raise the rule's error."""
    if record.fetched_at_ms > now_ms + limits.MAX_FUTURE_SKEW_SECONDS * 1000:
        raise FutureTimestamp(
            f"record fetched at {record.fetched_at_ms} is in the future (now {now_ms})"
        )
    if expected_dispensary is not None and record.dispensary_id != expected_dispensary:
        raise KeyBindingMismatch(
            f"record is for {record.dispensary_id!r}, not {expected_dispensary!r}"
        )
    if not policy.trusts(record.publisher):
        raise UntrustedPublisher(f"publisher {bytes(record.publisher).hex()[:16]} not trusted")
    if not verify_signature(
        record.publisher, record.signature, sig_structure(record.protected, record.payload)
    ):
        raise BadSignature("signature does not verify")
    return record


def accept_record(
    data: bytes,
    *,
    now_ms: int,
    policy: TrustPolicy,
    expected_dispensary: str | None = None,
) -> SignedRecord:
    """Decode and verify a record under every rule above; raise the first rule broken."""
    if len(data) > limits.MAX_RECORD_BYTES:
        raise LimitExceeded("record larger than MAX_RECORD_BYTES")
    record = decode_record(data)
    return verify_record(
        record, now_ms=now_ms, policy=policy, expected_dispensary=expected_dispensary
    )


def open_record(record: SignedRecord) -> Menu:
    """The menu inside an accepted record, checked against its signed header."""
    menu = decode_menu(record.payload)
    if menu.dispensary_id != record.dispensary_id or menu.fetched_at_ms != record.fetched_at_ms:
        raise DecodeError("the menu inside does not match the signed header")
    if content_hash(menu) != record.content_hash:
        raise DecodeError("the menu inside does not match the signed content hash")
    return menu
