"""Public keys of small order are refused: with them, anyone can forge a signature.

OpenSSL's Ed25519 check is cofactorless and does not refuse small-order keys: with the
neutral point as R and S = 0, ``[S]B == R + [k]A`` holds whenever ``[k]A`` is neutral, that is
for every message under the neutral key and for one message in two, four or eight under the
others. Each test first shows the forgery passing the raw library check, then refused by
whnode.
"""

from __future__ import annotations

import cbor2
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from whnode.record.acceptance import TrustPolicy, accept_record
from whnode.record.cbor import encode_canonical
from whnode.record.codec import content_hash, encode_menu
from whnode.record.exceptions import BadSignature
from whnode.record.keys import SigningKey, has_small_order, verify_signature
from whnode.record.signed import (
    ALG_EDDSA,
    CONTENT_TYPE,
    COSE_SIGN1_TAG,
    FORMAT_VERSION,
    LABEL_ALG,
    LABEL_CONTENT_HASH,
    LABEL_CONTENT_TYPE,
    LABEL_DISPENSARY,
    LABEL_FETCHED_AT,
    LABEL_KID,
    LABEL_VERSION,
    sig_structure,
)
from whnode.testing.factories import make_menu

FIELD_PRIME = 2**255 - 19
ORDER_8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022
NEUTRAL = (1).to_bytes(32, "little")
TRIVIAL_SIGNATURE = NEUTRAL + bytes(32)
"""R = the neutral point, S = 0."""

SMALL_ORDER_KEYS = [
    (y | sign << 255).to_bytes(32, "little")
    for y in (
        0,
        1,
        FIELD_PRIME - 1,
        ORDER_8_Y,
        FIELD_PRIME - ORDER_8_Y,
        FIELD_PRIME,  # 0, not reduced
        FIELD_PRIME + 1,  # 1, not reduced
    )
    for sign in (0, 1)
]


def library_accepts(public_key: bytes, signature: bytes, data: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@pytest.mark.parametrize("public_key", SMALL_ORDER_KEYS, ids=lambda key: key.hex()[-8:])
def test_a_trivial_signature_under_a_small_order_key_is_refused(public_key: bytes) -> None:
    assert has_small_order(public_key)
    forged = next(
        message
        for message in (b"menu %d" % index for index in range(1000))
        if library_accepts(public_key, TRIVIAL_SIGNATURE, message)
    )
    assert not verify_signature(public_key, TRIVIAL_SIGNATURE, forged)


def test_a_record_forged_under_a_small_order_key_is_refused() -> None:
    public_key = ORDER_8_Y.to_bytes(32, "little")
    menu = make_menu("jane:1547", 2)
    payload = encode_menu(menu)
    for fetched_at_ms in range(menu.fetched_at_ms, menu.fetched_at_ms + 1000):
        protected = encode_canonical(
            {
                LABEL_ALG: ALG_EDDSA,
                LABEL_CONTENT_TYPE: CONTENT_TYPE,
                LABEL_KID: public_key,
                LABEL_VERSION: FORMAT_VERSION,
                LABEL_DISPENSARY: menu.dispensary_id,
                LABEL_FETCHED_AT: fetched_at_ms,
                LABEL_CONTENT_HASH: bytes(content_hash(menu)),
            }
        )
        if library_accepts(public_key, TRIVIAL_SIGNATURE, sig_structure(protected, payload)):
            break
    else:
        pytest.fail("no forgeable fetch time found")
    forged = encode_canonical(
        cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, TRIVIAL_SIGNATURE])
    )
    with pytest.raises(BadSignature):
        accept_record(forged, now_ms=fetched_at_ms, policy=TrustPolicy.open())
    with pytest.raises(BadSignature):
        accept_record(forged, now_ms=fetched_at_ms, policy=TrustPolicy.allowlist({public_key}))


def test_generated_keys_are_not_of_small_order() -> None:
    for index in range(64):
        key = SigningKey.from_private_bytes(index.to_bytes(32, "big"))
        assert not has_small_order(key.public_key)
        assert verify_signature(key.public_key, key.sign(b"x"), b"x")
