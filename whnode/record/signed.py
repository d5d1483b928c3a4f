"""Signed records: COSE_Sign1 (RFC 9052) with EdDSA over Ed25519.

::

    COSE_Sign1 = #6.18([ protected: bstr .cbor header_map, unprotected: {}, payload: bstr,
                         signature: bstr .size 64 ])

The protected header map (labels in docs/record-format.md) carries the algorithm (-8, EdDSA),
the content type, the publisher's raw public key as ``kid`` and, under private-use labels, the
format version, the dispensary id, the fetch time (ms) and the content hash. The whole record
must be in canonical CBOR: any other encoding of the same values is refused, so one record
has exactly one byte string.

``decode_record`` checks structure and sizes only; ``whnode.record.acceptance`` owns the
rules (signature, time, binding, trust).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import cbor2

from whnode import limits
from whnode.record.codec import decode_cbor, encode_canonical
from whnode.record.exceptions import DecodeError, LimitExceeded, ModelError, UnsupportedVersion
from whnode.record.keys import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    ContentHash,
    PublicKey,
    SigningKey,
)
from whnode.record.model import parse_dispensary_id

__all__ = [
    "CONTENT_TYPE",
    "FORMAT_VERSION",
    "SignedRecord",
    "decode_record",
    "sig_structure",
    "sign_record",
]

COSE_SIGN1_TAG: Final = 18
ALG_EDDSA: Final = -8
FORMAT_VERSION: Final = 1
CONTENT_TYPE: Final = "application/vnd.whnode.menu+cbor;lz4"

LABEL_ALG: Final = 1
LABEL_CONTENT_TYPE: Final = 3
LABEL_KID: Final = 4
LABEL_VERSION: Final = -65537
LABEL_DISPENSARY: Final = -65538
LABEL_FETCHED_AT: Final = -65539
LABEL_CONTENT_HASH: Final = -65540
HEADER_LABELS: Final = frozenset(
    {
        LABEL_ALG,
        LABEL_CONTENT_TYPE,
        LABEL_KID,
        LABEL_VERSION,
        LABEL_DISPENSARY,
        LABEL_FETCHED_AT,
        LABEL_CONTENT_HASH,
    }
)
MAX_PROTECTED_BYTES: Final = 1024
"""Largest protected header accepted."""


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A decoded (not yet necessarily verified) signed record."""

    dispensary_id: str
    fetched_at_ms: int
    publisher: PublicKey
    content_hash: ContentHash
    content_type: str
    payload: bytes = field(repr=False)
    """The lz4 frame of the canonical CBOR menu."""
    signature: bytes = field(repr=False)
    protected: bytes = field(repr=False)
    """The serialized protected header, as signed."""
    encoded: bytes = field(repr=False)
    """The full COSE_Sign1 bytes."""
    version: int = FORMAT_VERSION

    @property
    def nbytes(self) -> int:
        return len(self.encoded)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The bytes signed: Sig_structure for COSE_Sign1 with empty external AAD."""
    return encode_canonical(["Signature1", protected, b"", payload])


def sign_record(
    *,
    payload: bytes,
    dispensary_id: str,
    fetched_at_ms: int,
    content_hash: bytes,
    signing_key: SigningKey,
) -> SignedRecord:
    """Sign ``payload`` (an lz4-framed canonical CBOR menu) as a COSE_Sign1 record."""
    parse_dispensary_id(dispensary_id)
    if len(content_hash) != 32:
        raise ModelError("a content hash is 32 bytes")
    if isinstance(fetched_at_ms, bool) or not 0 <= fetched_at_ms < 2**53:
        raise ModelError("fetched_at_ms out of range")
    protected = encode_canonical(
        {
            LABEL_ALG: ALG_EDDSA,
            LABEL_CONTENT_TYPE: CONTENT_TYPE,
            LABEL_KID: bytes(signing_key.public_key),
            LABEL_VERSION: FORMAT_VERSION,
            LABEL_DISPENSARY: dispensary_id,
            LABEL_FETCHED_AT: fetched_at_ms,
            LABEL_CONTENT_HASH: bytes(content_hash),
        }
    )
    signature = signing_key.sign(sig_structure(protected, payload))
    encoded = encode_canonical(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    if len(encoded) > limits.MAX_RECORD_BYTES:
        raise LimitExceeded("signed record larger than MAX_RECORD_BYTES")
    return SignedRecord(
        dispensary_id=dispensary_id,
        fetched_at_ms=fetched_at_ms,
        publisher=signing_key.public_key,
        content_hash=ContentHash(bytes(content_hash)),
        content_type=CONTENT_TYPE,
        payload=payload,
        signature=signature,
        protected=protected,
        encoded=encoded,
    )


def _header(protected: bytes) -> dict[Any, Any]:
    if len(protected) > MAX_PROTECTED_BYTES:
        raise LimitExceeded("protected header larger than MAX_PROTECTED_BYTES")
    header = decode_cbor(protected)
    if not isinstance(header, dict):
        raise DecodeError("protected header is not a map")
    if encode_canonical(header) != protected:
        raise DecodeError("protected header is not canonical CBOR")
    unknown = set(header) - HEADER_LABELS
    if unknown:
        raise DecodeError(f"protected header has unknown labels {sorted(map(str, unknown))}")
    return header


def decode_record(data: bytes) -> SignedRecord:
    """Parse COSE_Sign1 bytes into a SignedRecord (structure and sizes only)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("a record is bytes")
    data = bytes(data)
    if len(data) > limits.MAX_RECORD_BYTES:
        raise LimitExceeded("record larger than MAX_RECORD_BYTES")
    try:
        item = cbor2.loads(data)
    except RecursionError:
        raise LimitExceeded("record nested too deep") from None
    except MemoryError:
        raise LimitExceeded("record item too large") from None
    except Exception as exc:  # cbor2 raises several types on malformed input
        raise DecodeError(f"record is not CBOR: {type(exc).__name__}") from None
    if not isinstance(item, cbor2.CBORTag) or item.tag != COSE_SIGN1_TAG:
        raise DecodeError("record is not a tagged COSE_Sign1")
    body = item.value
    if not isinstance(body, list | tuple) or len(body) != 4:
        raise DecodeError("COSE_Sign1 is not an array of four items")
    protected, unprotected, payload, signature = body
    if not isinstance(protected, bytes) or not isinstance(payload, bytes):
        raise DecodeError("protected header and payload must be byte strings")
    if not isinstance(unprotected, Mapping) or len(unprotected) != 0:
        raise DecodeError("unprotected header must be an empty map")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise DecodeError("signature must be 64 bytes")
    try:
        canonical = encode_canonical(item) == data
    except Exception:
        canonical = False
    if not canonical:
        raise DecodeError("record is not canonical CBOR")
    header = _header(protected)
    version = header.get(LABEL_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise DecodeError("missing format version")
    if version != FORMAT_VERSION:
        raise UnsupportedVersion(f"record format version {version} is not supported")
    if header.get(LABEL_ALG) != ALG_EDDSA:
        raise DecodeError("algorithm must be EdDSA (-8)")
    content_type = header.get(LABEL_CONTENT_TYPE)
    if content_type != CONTENT_TYPE:
        raise DecodeError("unexpected content type")
    publisher = header.get(LABEL_KID)
    if not isinstance(publisher, bytes) or len(publisher) != PUBLIC_KEY_BYTES:
        raise DecodeError("kid must be a 32-byte Ed25519 public key")
    dispensary_id = header.get(LABEL_DISPENSARY)
    if not isinstance(dispensary_id, str):
        raise DecodeError("missing dispensary id")
    try:
        parse_dispensary_id(dispensary_id)
    except ModelError as exc:
        raise DecodeError(str(exc)) from None
    fetched_at_ms = header.get(LABEL_FETCHED_AT)
    if (
        not isinstance(fetched_at_ms, int)
        or isinstance(fetched_at_ms, bool)
        or not 0 <= fetched_at_ms < 2**53
    ):
        raise DecodeError("fetched_at must be an integer of milliseconds")
    hash_value = header.get(LABEL_CONTENT_HASH)
    if not isinstance(hash_value, bytes) or len(hash_value) != 32:
        raise DecodeError("content hash must be 32 bytes")
    return SignedRecord(
        dispensary_id=dispensary_id,
        fetched_at_ms=fetched_at_ms,
        publisher=PublicKey(publisher),
        content_hash=ContentHash(hash_value),
        content_type=content_type,
        payload=payload,
        signature=signature,
        protected=protected,
        encoded=data,
        version=version,
    )
