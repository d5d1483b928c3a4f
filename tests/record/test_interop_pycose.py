"""Interoperability with pycose, an independent COSE implementation (tests only)."""

from __future__ import annotations

from collections.abc import Mapping

import cbor2
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm, ContentType
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.codec import content_hash, encode_menu
from whnode.record.keys import SigningKey
from whnode.record.signed import (
    CONTENT_TYPE,
    FORMAT_VERSION,
    LABEL_CONTENT_HASH,
    LABEL_DISPENSARY,
    LABEL_FETCHED_AT,
    LABEL_VERSION,
    sign_record,
)
from whnode.testing.factories import make_menu

NOW_MS = 1_760_000_000_000


def test_whnode_record_verifies_with_pycose() -> None:
    key = SigningKey.generate()
    menu = make_menu(n_products=5)
    record = sign_record(
        payload=encode_menu(menu),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=key,
    )
    # cbor2 >= 6 decodes items inside tags as tuples and frozen maps, which
    # Sign1Message.decode rejects;
    # pycose's own from_cose_obj does the rest of the decoding and all of the verifying.
    tagged = cbor2.loads(record.encoded)
    assert tagged.tag == 18
    items = [dict(item) if isinstance(item, Mapping) else item for item in tagged.value]
    message = Sign1Message.from_cose_obj(items, True)
    message.key = OKPKey(crv=Ed25519, x=bytes(key.public_key))
    assert message.verify_signature()
    assert message.phdr[KID] == bytes(key.public_key)
    assert message.payload == record.payload
    # a tampered payload does not verify with pycose either
    message.payload = record.payload[:-1] + bytes([record.payload[-1] ^ 1])
    assert not message.verify_signature()


def test_pycose_record_verifies_with_whnode() -> None:
    key = SigningKey.generate()
    menu = make_menu("jane:1547", n_products=4)
    cose_key = OKPKey(crv=Ed25519, d=key.private_bytes(), x=bytes(key.public_key))
    message = Sign1Message(
        phdr={
            Algorithm: EdDSA,
            ContentType: CONTENT_TYPE,
            KID: bytes(key.public_key),
            LABEL_VERSION: FORMAT_VERSION,
            LABEL_DISPENSARY: menu.dispensary_id,
            LABEL_FETCHED_AT: menu.fetched_at_ms,
            LABEL_CONTENT_HASH: bytes(content_hash(menu)),
        },
        payload=encode_menu(menu),
        key=cose_key,
    )
    encoded = message.encode(tag=True)
    record = accept_record(
        encoded, now_ms=NOW_MS, policy=TrustPolicy.open(), expected_dispensary="jane:1547"
    )
    assert record.publisher == key.public_key
    assert open_record(record) == menu
