"""The record layer: menu model, codec, signed records, acceptance rules and keys.

Pure: no I/O, no clock (time is a parameter), no asyncio. Modules:

- ``model``: the normalized menu (frozen dataclasses that validate themselves);
- ``codec``: canonical CBOR of a menu inside an lz4 frame, decoded under named caps;
- ``cbor``: canonical encoding and the bounded CBOR reader the codec and records share;
- ``signed``: COSE_Sign1 records (EdDSA over Ed25519);
- ``acceptance``: every rule that decides whether a record is accepted;
- ``keys``: signing keys, node ids, routing keys, content hashes;
- ``exceptions``: the RecordError tree;
- ``docs``: the generated parts of docs/record-format.md (example record, limits tables).

The byte-level format is specified in docs/record-format.md.
"""

from __future__ import annotations

from whnode.record.acceptance import (
    TrustMode,
    TrustPolicy,
    accept_record,
    open_record,
    verify_record,
)
from whnode.record.codec import content_hash, decode_menu, decompress_payload, encode_menu
from whnode.record.exceptions import (
    BadSignature,
    DecodeError,
    FutureTimestamp,
    KeyBindingMismatch,
    LimitExceeded,
    ModelError,
    RecordError,
    RejectedRecord,
    UnsupportedVersion,
    UntrustedPublisher,
)
from whnode.record.keys import (
    ContentHash,
    NodeId,
    PublicKey,
    RoutingKey,
    SigningKey,
    node_id_for,
    routing_key,
    verify_signature,
)
from whnode.record.model import (
    Category,
    CategoryStatistics,
    DispensaryId,
    Lineage,
    Menu,
    MenuStatistics,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
    parse_dispensary_id,
)
from whnode.record.signed import (
    CONTENT_TYPE,
    FORMAT_VERSION,
    SignedRecord,
    decode_record,
    sign_menu,
    sign_record,
)

__all__ = [
    "CONTENT_TYPE",
    "FORMAT_VERSION",
    "BadSignature",
    "Category",
    "CategoryStatistics",
    "ContentHash",
    "DecodeError",
    "DispensaryId",
    "FutureTimestamp",
    "KeyBindingMismatch",
    "LimitExceeded",
    "Lineage",
    "Menu",
    "MenuStatistics",
    "ModelError",
    "NodeId",
    "Potency",
    "PotencyUnit",
    "PriceOption",
    "Product",
    "PublicKey",
    "Quantity",
    "QuantityUnit",
    "RecordError",
    "RejectedRecord",
    "RoutingKey",
    "SignedRecord",
    "SigningKey",
    "TrustMode",
    "TrustPolicy",
    "UnsupportedVersion",
    "UntrustedPublisher",
    "Vendor",
    "accept_record",
    "content_hash",
    "decode_menu",
    "decode_record",
    "decompress_payload",
    "encode_menu",
    "node_id_for",
    "open_record",
    "parse_dispensary_id",
    "routing_key",
    "sign_menu",
    "sign_record",
    "verify_record",
    "verify_signature",
]
