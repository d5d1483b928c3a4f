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
from whnode.record.cbor import CborCaps, decode_bounded, encode_canonical
from whnode.record.codec import encode_menu_with_hash
from whnode.record.exceptions import DecodeError, LimitExceeded, ModelError, UnsupportedVersion
from whnode.record.keys import (
    CONTENT_HASH_BYTES,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    ContentHash,
    PublicKey,
    SigningKey,
)
from whnode.record.model import Menu, parse_dispensary_id

__all__ = [
    "ALG_EDDSA",
    "CONTENT_TYPE",
    "COSE_SIGN1_TAG",
    "FORMAT_VERSION",
    "LABEL_ALG",
    "LABEL_CONTENT_HASH",
    "LABEL_CONTENT_TYPE",
    "LABEL_DISPENSARY",
    "LABEL_FETCHED_AT",
    "LABEL_KID",
    "LABEL_VERSION",
    "MAX_PROTECTED_BYTES",
    "SignedRecord",
    "decode_record",
    "sig_structure",
    "sign_menu",
    "sign_record",
]

COSE_SIGN1_TAG: Final = 18
"""CBOR tag of COSE_Sign1_Tagged (RFC 9052 section 2)."""
ALG_EDDSA: Final = -8
"""COSE algorithm EdDSA (RFC 9053 section 2.2); whnode signs with Ed25519."""
FORMAT_VERSION: Final = 1
CONTENT_TYPE: Final = "application/vnd.whnode.menu+cbor;lz4"

LABEL_ALG: Final = 1
LABEL_CONTENT_TYPE: Final = 3
LABEL_KID: Final = 4
LABEL_VERSION: Final = -65537
"""Private-use label (below -65536, RFC 9052 section 16.2): the record format version."""
LABEL_DISPENSARY: Final = -65538
"""Private-use label: the dispensary id, text."""
LABEL_FETCHED_AT: Final = -65539
"""Private-use label: the fetch time, unsigned integer milliseconds since the Unix epoch."""
LABEL_CONTENT_HASH: Final = -65540
"""Private-use label: the 32-byte content hash of the menu (``codec.content_hash``)."""
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
MAX_PROTECTED_BYTES: Final = limits.MAX_PROTECTED_BYTES
"""See whnode.limits."""
MAX_FETCHED_AT_MS: Final = 2**53
"""Latest fetch time representable (the model's bound; exact in every JSON number)."""

_RECORD_CAPS: Final = CborCaps(
    max_depth=3,  # tag 18, the array, the unprotected map
    max_items=4,
    max_string_bytes=limits.MAX_RECORD_BYTES,
    max_total_items=16,
    top_level_tags=frozenset({COSE_SIGN1_TAG}),
)
_HEADER_CAPS: Final = CborCaps(max_depth=1, max_items=16, max_string_bytes=256, max_total_items=64)


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A record decoded from its bytes: structure checked, not yet necessarily accepted.

    Only ``whnode.record.acceptance.accept_record`` says whether a record is to be trusted.
    """

    dispensary_id: str
    fetched_at_ms: int
    publisher: PublicKey
    """The raw Ed25519 public key of the node that signed (the header's ``kid``)."""
    content_hash: ContentHash
    content_type: str
    payload: bytes = field(repr=False)
    """The lz4 frame of the menu's canonical CBOR (``whnode.record.codec``)."""
    signature: bytes = field(repr=False)
    protected: bytes = field(repr=False)
    """The serialized protected header, exactly as signed."""
    encoded: bytes = field(repr=False)
    """The full COSE_Sign1 bytes: what is stored and sent."""
    version: int = FORMAT_VERSION

    @property
    def nbytes(self) -> int:
        """Size of the encoded record."""
        return len(self.encoded)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The bytes signed (RFC 9052 section 4.4): ``["Signature1", protected, h'', payload]``."""
    return encode_canonical(["Signature1", protected, b"", payload])


def _check_fetched_at(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError("fetched_at_ms must be an integer")
    if not 0 <= value <= MAX_FETCHED_AT_MS:
        raise ModelError(f"fetched_at_ms must be between 0 and {MAX_FETCHED_AT_MS}")
    return value


def sign_record(
    *,
    payload: bytes,
    dispensary_id: str,
    fetched_at_ms: int,
    content_hash: bytes,
    signing_key: SigningKey,
) -> SignedRecord:
    """Sign ``payload`` (``codec.encode_menu`` of the menu) as a COSE_Sign1 record.

    Raises ModelError for an invalid dispensary id, fetch time or content hash, and
    LimitExceeded when the record would be larger than ``MAX_RECORD_BYTES``.
    """
    parse_dispensary_id(dispensary_id)
    _check_fetched_at(fetched_at_ms)
    if not isinstance(content_hash, bytes) or len(content_hash) != CONTENT_HASH_BYTES:
        raise ModelError(f"a content hash is {CONTENT_HASH_BYTES} bytes")
    if not isinstance(payload, bytes):
        raise ModelError("a payload is bytes")
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
        raise LimitExceeded(f"signed record of {len(encoded)} bytes, over MAX_RECORD_BYTES")
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


def sign_menu(menu: Menu, signing_key: SigningKey) -> SignedRecord:
    """Encode, hash and sign ``menu``: ``sign_record`` with the payload and hash it needs."""
    payload, menu_hash = encode_menu_with_hash(menu)
    return sign_record(
        payload=payload,
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=menu_hash,
        signing_key=signing_key,
    )


def _header(protected: bytes) -> dict[Any, Any]:
    """The protected header map: canonical, version 1, exactly the known labels."""
    if len(protected) > MAX_PROTECTED_BYTES:
        raise LimitExceeded("protected header larger than MAX_PROTECTED_BYTES")
    header = decode_bounded(protected, _HEADER_CAPS)
    if not isinstance(header, dict):
        raise DecodeError("protected header is not a map")
    version = header.get(LABEL_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise DecodeError("protected header has no format version")
    if version != FORMAT_VERSION:
        raise UnsupportedVersion(f"record format version {version} is not supported")
    if encode_canonical(header) != protected:
        raise DecodeError("protected header is not canonical CBOR")
    if set(header) != HEADER_LABELS:
        raise DecodeError("protected header labels are not exactly the version 1 labels")
    return header


def decode_record(data: bytes | bytearray | memoryview) -> SignedRecord:
    """Parse COSE_Sign1 bytes into a SignedRecord: sizes and structure only, no signature.

    Raises LimitExceeded (before parsing) for oversize input, DecodeError for anything not a
    canonical whnode record, UnsupportedVersion for another format version.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("a record is bytes")
    data = bytes(data)
    if len(data) > limits.MAX_RECORD_BYTES:
        raise LimitExceeded(f"record of {len(data)} bytes, over MAX_RECORD_BYTES")
    item = decode_bounded(data, _RECORD_CAPS)
    if not isinstance(item, cbor2.CBORTag) or item.tag != COSE_SIGN1_TAG:
        raise DecodeError("record is not a tagged COSE_Sign1")
    body = item.value
    if not isinstance(body, list | tuple) or len(body) != 4:
        raise DecodeError("COSE_Sign1 is not an array of four items")
    protected, unprotected, payload, signature = body
    if not isinstance(protected, bytes) or not isinstance(payload, bytes):
        raise DecodeError("protected header and payload must be byte strings")
    if not isinstance(unprotected, Mapping) or len(unprotected) != 0:
        raise DecodeError("unprotected header must be the empty map")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise DecodeError(f"signature must be {SIGNATURE_BYTES} bytes")
    if encode_canonical(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature])) != data:
        raise DecodeError("record is not canonical CBOR")
    header = _header(protected)
    if header[LABEL_ALG] != ALG_EDDSA:
        raise DecodeError("algorithm must be EdDSA (-8)")
    content_type = header[LABEL_CONTENT_TYPE]
    if content_type != CONTENT_TYPE:
        raise DecodeError(f"content type must be {CONTENT_TYPE!r}")
    publisher = header[LABEL_KID]
    if not isinstance(publisher, bytes) or len(publisher) != PUBLIC_KEY_BYTES:
        raise DecodeError(f"kid must be a {PUBLIC_KEY_BYTES}-byte Ed25519 public key")
    dispensary_id = header[LABEL_DISPENSARY]
    fetched_at_ms = header[LABEL_FETCHED_AT]
    try:
        parse_dispensary_id(dispensary_id)
        _check_fetched_at(fetched_at_ms)
    except ModelError as exc:
        raise DecodeError(f"protected header: {exc}") from None
    hash_value = header[LABEL_CONTENT_HASH]
    if not isinstance(hash_value, bytes) or len(hash_value) != CONTENT_HASH_BYTES:
        raise DecodeError(f"content hash must be {CONTENT_HASH_BYTES} bytes")
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
        version=FORMAT_VERSION,
    )
