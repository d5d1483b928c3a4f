"""Interoperability with pycose, an independent COSE implementation (a test dependency).

pycose 1.1 checks ``isinstance(value, list)`` on the decoded COSE array, and cbor2 6 decodes
arrays inside tags as tuples, so ``Sign1Message.decode`` refuses every message, its own
included (https://github.com/TimothyClaeys/pycose/issues/141). ``pycose_decodes_with_lists``
gives pycose a cbor2 whose top-level tag content is a list again; nothing else changes.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from pathlib import Path

import cbor2
import pytest
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm, ContentType
from pycose.keys.curves import Ed25519
from pycose.keys.okp import OKPKey
from pycose.messages import cosemessage
from pycose.messages.sign1message import Sign1Message

from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.codec import content_hash, encode_menu
from whnode.record.exceptions import BadSignature, DecodeError
from whnode.record.keys import SigningKey
from whnode.record.model import Menu
from whnode.record.signed import (
    CONTENT_TYPE,
    FORMAT_VERSION,
    LABEL_CONTENT_HASH,
    LABEL_DISPENSARY,
    LABEL_FETCHED_AT,
    LABEL_VERSION,
    sign_menu,
)
from whnode.testing.factories import make_menu

DOC = Path(__file__).resolve().parents[2] / "docs" / "record-format.md"


def _loads_with_lists(data: bytes) -> object:
    item = cbor2.loads(data)
    if isinstance(item, cbor2.CBORTag) and isinstance(item.value, tuple):
        item = cbor2.CBORTag(
            item.tag, [dict(v) if isinstance(v, Mapping) else v for v in item.value]
        )
    return item


@pytest.fixture
def pycose_decodes_with_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    shim = types.SimpleNamespace(**{name: getattr(cbor2, name) for name in dir(cbor2)})
    shim.loads = _loads_with_lists
    monkeypatch.setattr(cosemessage, "cbor2", shim)
    return


def test_pycose_needs_the_shim_with_this_cbor2() -> None:
    """If this fails, pycose or cbor2 changed: drop the shim."""
    message = Sign1Message(phdr={Algorithm: EdDSA}, payload=b"x")
    message.key = OKPKey.generate_key(crv=Ed25519)
    with pytest.raises(TypeError):
        Sign1Message.decode(message.encode())


@pytest.mark.usefixtures("pycose_decodes_with_lists")
def test_a_whnode_record_verifies_with_pycose() -> None:
    key = SigningKey.generate()
    menu = make_menu(n_products=5)
    record = sign_menu(menu, key)
    message = Sign1Message.decode(record.encoded)
    assert message.phdr[KID] == bytes(key.public_key)
    assert message.phdr[Algorithm] is EdDSA
    assert message.phdr[ContentType] == CONTENT_TYPE
    assert message.phdr[LABEL_DISPENSARY] == menu.dispensary_id
    assert message.phdr[LABEL_FETCHED_AT] == menu.fetched_at_ms
    assert message.phdr[LABEL_CONTENT_HASH] == bytes(content_hash(menu))
    assert message.payload == record.payload
    message.key = OKPKey(crv=Ed25519, x=bytes(key.public_key))
    assert message.verify_signature()
    # a tampered payload, or another key, does not verify with pycose either
    message.payload = record.payload[:-1] + bytes([record.payload[-1] ^ 1])
    assert not message.verify_signature()
    message.payload = record.payload
    message.key = OKPKey(crv=Ed25519, x=bytes(SigningKey.generate().public_key))
    assert not message.verify_signature()


def test_a_whnode_record_verifies_with_pycose_from_the_decoded_array() -> None:
    key = SigningKey.generate()
    record = sign_menu(make_menu(n_products=2), key)
    tagged = cbor2.loads(record.encoded)
    items = [dict(item) if isinstance(item, Mapping) else item for item in tagged.value]
    message = Sign1Message.from_cose_obj(items, True)
    message.key = OKPKey(crv=Ed25519, x=bytes(key.public_key))
    assert message.verify_signature()


def _pycose_message(menu: Menu, key: SigningKey) -> Sign1Message:
    return Sign1Message(
        phdr={  # in canonical order: 1, 3, 4, -65537, -65538, -65539, -65540
            Algorithm: EdDSA,
            ContentType: CONTENT_TYPE,
            KID: bytes(key.public_key),
            LABEL_VERSION: FORMAT_VERSION,
            LABEL_DISPENSARY: menu.dispensary_id,
            LABEL_FETCHED_AT: menu.fetched_at_ms,
            LABEL_CONTENT_HASH: bytes(content_hash(menu)),
        },
        payload=encode_menu(menu),
        key=OKPKey(crv=Ed25519, d=key.private_bytes(), x=bytes(key.public_key)),
    )


def test_a_pycose_record_verifies_and_opens_with_whnode() -> None:
    key = SigningKey.generate()
    menu = make_menu("jane:1547", n_products=4)
    encoded = _pycose_message(menu, key).encode(tag=True)
    record = accept_record(
        encoded,
        now_ms=menu.fetched_at_ms,
        policy=TrustPolicy.allowlist({key.public_key}),
        expected_dispensary="jane:1547",
    )
    assert record.publisher == key.public_key
    assert open_record(record) == menu
    assert encoded == sign_menu(menu, key).encoded  # Ed25519 is deterministic: same bytes


def test_a_pycose_record_with_a_bad_signature_is_refused_by_whnode() -> None:
    key = SigningKey.generate()
    menu = make_menu("jane:1547", n_products=1)
    encoded = bytearray(_pycose_message(menu, key).encode(tag=True))
    encoded[-1] ^= 0x01
    with pytest.raises(BadSignature):
        accept_record(bytes(encoded), now_ms=menu.fetched_at_ms, policy=TrustPolicy.open())


def test_a_pycose_header_out_of_canonical_order_is_refused() -> None:
    key = SigningKey.generate()
    menu = make_menu("jane:1547", n_products=1)
    message = _pycose_message(menu, key)
    message.phdr = dict(reversed(list(message.phdr.items())))
    with pytest.raises(DecodeError, match="canonical"):
        accept_record(
            message.encode(tag=True), now_ms=menu.fetched_at_ms, policy=TrustPolicy.open()
        )


@pytest.mark.usefixtures("pycose_decodes_with_lists")
def test_the_pycose_example_in_the_format_document_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) == 1
    record = sign_menu(make_menu(n_products=2), SigningKey.generate())
    exec(compile(blocks[0], str(DOC), "exec"), {"record_bytes": record.encoded})
    with pytest.raises(AssertionError):
        tampered = record.encoded[:-1] + bytes([record.encoded[-1] ^ 1])
        exec(compile(blocks[0], str(DOC), "exec"), {"record_bytes": tampered})
