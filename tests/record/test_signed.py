"""Signed records: COSE_Sign1 layout, header labels, Sig_structure, strict decoding."""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings

from whnode import limits
from whnode.record import signed
from whnode.record.codec import content_hash, encode_menu
from whnode.record.exceptions import DecodeError, LimitExceeded, ModelError, UnsupportedVersion
from whnode.record.keys import (
    ROUTING_PREFIX,
    SigningKey,
    node_id_for,
    routing_key,
    verify_signature,
)
from whnode.record.model import Menu
from whnode.record.signed import (
    CONTENT_TYPE,
    decode_record,
    sig_structure,
    sign_menu,
    sign_record,
)
from whnode.testing.factories import make_menu, menus

KEY = SigningKey.from_private_bytes(bytes(range(32)))
MENU = make_menu("jane:1547", n_products=2)
RECORD = sign_menu(MENU, KEY)


def envelope(
    protected: object = None, unprotected: object = None, payload: object = None, sig: object = None
) -> bytes:
    """A COSE_Sign1 with the example's items, some replaced."""
    items = [
        RECORD.protected if protected is None else protected,
        {} if unprotected is None else unprotected,
        RECORD.payload if payload is None else payload,
        RECORD.signature if sig is None else sig,
    ]
    return cbor2.dumps(cbor2.CBORTag(18, items), canonical=True)


def header(**changes: Any) -> dict[int, Any]:
    base: dict[int, Any] = cbor2.loads(RECORD.protected)
    names = {
        "alg": 1,
        "content_type": 3,
        "kid": 4,
        "version": -65537,
        "dispensary": -65538,
        "fetched_at": -65539,
        "hash": -65540,
    }
    for name, value in changes.items():
        if value is ...:
            del base[names[name]]
        else:
            base[names[name]] = value
    return base


def protected_of(value: object) -> bytes:
    return cbor2.dumps(value, canonical=True)


# ---------------------------------------------------------------- layout
def test_record_is_a_tagged_cose_sign1_with_the_documented_header() -> None:
    item = cbor2.loads(RECORD.encoded)
    assert isinstance(item, cbor2.CBORTag)
    assert item.tag == 18
    protected, unprotected, payload, signature = item.value
    assert dict(unprotected) == {}
    assert payload == encode_menu(MENU)
    assert len(signature) == 64
    assert cbor2.loads(protected) == {
        1: -8,
        3: "application/vnd.whnode.menu+cbor;lz4",
        4: bytes(KEY.public_key),
        -65537: 1,
        -65538: "jane:1547",
        -65539: MENU.fetched_at_ms,
        -65540: bytes(content_hash(MENU)),
    }
    assert protected == cbor2.dumps(cbor2.loads(protected), canonical=True)
    assert RECORD.encoded[:1] == b"\xd2"
    assert RECORD.encoded[1:2] == b"\x84"


def test_sig_structure_is_rfc_9052_signature1_with_empty_aad() -> None:
    data = sig_structure(b"\xa0", b"payload")
    assert data == b"\x84\x6aSignature1\x41\xa0\x40\x47payload"
    assert cbor2.loads(data) == ["Signature1", b"\xa0", b"", b"payload"]


def test_the_signature_is_plain_ed25519_over_the_sig_structure() -> None:
    public = Ed25519PublicKey.from_public_bytes(bytes(RECORD.publisher))
    public.verify(RECORD.signature, sig_structure(RECORD.protected, RECORD.payload))
    assert KEY.sign(sig_structure(RECORD.protected, RECORD.payload)) == RECORD.signature


def test_sign_menu_is_sign_record_with_the_menu_payload_and_hash() -> None:
    manual = sign_record(
        payload=encode_menu(MENU),
        dispensary_id=MENU.dispensary_id,
        fetched_at_ms=MENU.fetched_at_ms,
        content_hash=content_hash(MENU),
        signing_key=KEY,
    )
    assert manual == RECORD
    assert RECORD.nbytes == len(RECORD.encoded)
    assert RECORD.content_type == CONTENT_TYPE


@given(menus(max_products=3))
@settings(max_examples=60)
def test_decode_of_a_signed_record_is_the_record(menu: Menu) -> None:
    record = sign_menu(menu, KEY)
    assert decode_record(record.encoded) == record
    assert decode_record(bytearray(record.encoded)) == record


# ---------------------------------------------------------------- sign_record refuses
@pytest.mark.parametrize(
    "changes",
    [
        {"dispensary_id": "not an id"},
        {"fetched_at_ms": -1},
        {"fetched_at_ms": 2**53 + 1},
        {"fetched_at_ms": True},
        {"content_hash": b"\x00" * 31},
        {"payload": "text"},
    ],
)
def test_sign_record_refuses_invalid_fields(changes: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "payload": RECORD.payload,
        "dispensary_id": RECORD.dispensary_id,
        "fetched_at_ms": RECORD.fetched_at_ms,
        "content_hash": RECORD.content_hash,
        "signing_key": KEY,
        **changes,
    }
    with pytest.raises(ModelError):
        sign_record(**arguments)


def test_the_latest_fetch_time_the_model_allows_can_be_signed() -> None:
    record = sign_record(
        payload=RECORD.payload,
        dispensary_id=RECORD.dispensary_id,
        fetched_at_ms=2**53,
        content_hash=RECORD.content_hash,
        signing_key=KEY,
    )
    assert decode_record(record.encoded).fetched_at_ms == 2**53


def test_a_record_over_the_size_cap_is_not_produced() -> None:
    with pytest.raises(LimitExceeded):
        sign_record(
            payload=bytes(limits.MAX_RECORD_BYTES),
            dispensary_id=RECORD.dispensary_id,
            fetched_at_ms=RECORD.fetched_at_ms,
            content_hash=RECORD.content_hash,
            signing_key=KEY,
        )


# ---------------------------------------------------------------- decode_record refuses
BAD_RECORDS: dict[str, bytes] = {
    "untagged": cbor2.dumps([RECORD.protected, {}, RECORD.payload, RECORD.signature]),
    "wrong tag": cbor2.dumps(
        cbor2.CBORTag(98, [RECORD.protected, {}, RECORD.payload, RECORD.signature])
    ),
    "three items": cbor2.dumps(cbor2.CBORTag(18, [RECORD.protected, {}, RECORD.payload])),
    "five items": cbor2.dumps(
        cbor2.CBORTag(18, [RECORD.protected, {}, RECORD.payload, RECORD.signature, b""])
    ),
    "unprotected not empty": envelope(unprotected={4: b"kid"}),
    "unprotected not a map": envelope(unprotected=[]),
    "protected not bytes": envelope(protected={1: -8}),
    "payload not bytes": envelope(payload="payload"),
    "detached payload": cbor2.dumps(
        cbor2.CBORTag(18, [RECORD.protected, {}, None, RECORD.signature]), canonical=True
    ),
    "short signature": envelope(sig=RECORD.signature[:63]),
    "signature not bytes": envelope(sig=1),
    "trailing bytes": RECORD.encoded + b"\x00",
    "two-byte array head": RECORD.encoded[:1] + b"\x98\x04" + RECORD.encoded[2:],
    "indefinite array": RECORD.encoded[:1] + b"\x9f" + RECORD.encoded[2:] + b"\xff",
    "tag inside": envelope(payload=cbor2.CBORTag(24, RECORD.payload)),
    "header not a map": envelope(protected=protected_of([1, -8])),
    "header not canonical": envelope(protected=cbor2.dumps(dict(reversed(list(header().items()))))),
    "header unknown label": envelope(protected=protected_of({**header(), 5: b"iv"})),
    "header missing label": envelope(protected=protected_of(header(hash=...))),
    "header no version": envelope(protected=protected_of(header(version=...))),
    "header version is text": envelope(protected=protected_of(header(version="1"))),
    "alg ES256": envelope(protected=protected_of(header(alg=-7))),
    "other content type": envelope(protected=protected_of(header(content_type="application/json"))),
    "content type as int": envelope(protected=protected_of(header(content_type=60))),
    "kid of 31 bytes": envelope(protected=protected_of(header(kid=bytes(31)))),
    "kid as text": envelope(protected=protected_of(header(kid="key"))),
    "bad dispensary": envelope(protected=protected_of(header(dispensary="JANE:1"))),
    "dispensary as bytes": envelope(protected=protected_of(header(dispensary=b"jane:1"))),
    "negative time": envelope(protected=protected_of(header(fetched_at=-1))),
    "float time": envelope(protected=protected_of(header(fetched_at=1.5))),
    "time past 2**53": envelope(protected=protected_of(header(fetched_at=2**53 + 1))),
    "short hash": envelope(protected=protected_of(header(hash=bytes(31)))),
    "huge header": envelope(protected=protected_of({**header(), -65541: "x" * 2000})),
    "empty": b"",
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_malformed_records_are_refused(case: str) -> None:
    with pytest.raises(DecodeError):
        decode_record(BAD_RECORDS[case])


def test_another_format_version_is_unsupported_whatever_else_changed() -> None:
    for version in (0, 2, 99):
        future = protected_of({**header(version=version), -70000: "a new field"})
        with pytest.raises(UnsupportedVersion):
            decode_record(envelope(protected=future))


def test_non_bytes_input_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_record("text")  # type: ignore[arg-type]


def test_an_oversize_record_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> None:
        raise AssertionError("the record was parsed")

    monkeypatch.setattr(signed, "decode_bounded", fail)
    with pytest.raises(LimitExceeded):
        decode_record(b"\xd2" + bytes(limits.MAX_RECORD_BYTES))


# ---------------------------------------------------------------- keys and identifiers
def test_routing_key_is_sha1_of_the_versioned_prefix_and_the_id() -> None:
    assert ROUTING_PREFIX == b"whnode/dispensary/v1\x00"
    expected = hashlib.sha1(b"whnode/dispensary/v1\x00jane:1547").digest()
    assert routing_key("jane:1547") == expected
    assert routing_key("jane:1548") != expected


def test_node_id_is_sha1_of_the_public_key() -> None:
    assert node_id_for(KEY.public_key) == hashlib.sha1(bytes(KEY.public_key)).digest()
    assert KEY.node_id == node_id_for(KEY.public_key)
    with pytest.raises(ModelError):
        node_id_for(b"\x00" * 31)


def test_signing_keys_round_trip_and_verify() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_private_bytes(key.private_bytes())
    assert again.public_key == key.public_key
    assert len(key.public_key) == 32
    signature = key.sign(b"data")
    assert verify_signature(key.public_key, signature, b"data")
    assert not verify_signature(key.public_key, signature, b"other")
    assert not verify_signature(KEY.public_key, signature, b"data")
    assert not verify_signature(key.public_key, signature[:63], b"data")
    assert not verify_signature(b"\x00" * 32, signature, b"data")
    assert key.private_bytes().hex() not in repr(key)
    with pytest.raises(ModelError):
        SigningKey.from_private_bytes(b"\x00" * 31)


def test_signed_record_repr_leaves_out_the_bytes() -> None:
    text = repr(RECORD)
    assert RECORD.payload.hex()[:16] not in text
    assert "jane:1547" in text
