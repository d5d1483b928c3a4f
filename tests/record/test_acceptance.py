"""Acceptance: every rule, its own error, its order; any bit flipped is refused; any input
raises only the project's own errors."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import cbor2
import lz4.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whnode import limits
from whnode.errors import UsageError
from whnode.record import acceptance
from whnode.record.acceptance import (
    TrustMode,
    TrustPolicy,
    accept_record,
    open_record,
    verify_record,
)
from whnode.record.codec import content_hash, encode_menu
from whnode.record.exceptions import (
    BadSignature,
    DecodeError,
    FutureTimestamp,
    KeyBindingMismatch,
    LimitExceeded,
    RecordError,
    RejectedRecord,
    UntrustedPublisher,
)
from whnode.record.keys import PublicKey, SigningKey
from whnode.record.model import Menu
from whnode.record.signed import (
    SignedRecord,
    decode_record,
    sig_structure,
    sign_menu,
    sign_record,
)
from whnode.testing.factories import make_menu, menus

KEY = SigningKey.from_private_bytes(bytes(range(32)))
OTHER = SigningKey.from_private_bytes(bytes(range(1, 33)))
MENU = make_menu("weedmaps:ultra-health-gallup", n_products=3)
RECORD = sign_menu(MENU, KEY)
NOW_MS = MENU.fetched_at_ms + 60_000
OPEN = TrustPolicy.open()
SKEW_MS = limits.MAX_FUTURE_SKEW_SECONDS * 1000


def accept(data: bytes, **overrides: Any) -> SignedRecord:
    arguments: dict[str, Any] = {"now_ms": NOW_MS, "policy": OPEN, **overrides}
    return accept_record(data, **arguments)


def resigned(record: SignedRecord, *, payload: bytes | None = None, **fields: Any) -> bytes:
    """A record signed by KEY whose header fields or payload differ from ``record``'s."""
    arguments: dict[str, Any] = {
        "payload": record.payload if payload is None else payload,
        "dispensary_id": record.dispensary_id,
        "fetched_at_ms": record.fetched_at_ms,
        "content_hash": record.content_hash,
        "signing_key": KEY,
        **fields,
    }
    return sign_record(**arguments).encoded


# ---------------------------------------------------------------- the happy path
@given(menus(max_products=3))
@settings(max_examples=60)
def test_a_signed_menu_is_accepted_and_opens_to_the_same_menu(menu: Menu) -> None:
    record = sign_menu(menu, KEY)
    accepted = accept_record(
        record.encoded,
        now_ms=menu.fetched_at_ms,
        policy=TrustPolicy.allowlist({KEY.public_key}),
        expected_dispensary=menu.dispensary_id,
    )
    assert accepted == record
    assert open_record(accepted) == menu


def test_a_realistic_menu_is_accepted() -> None:
    menu = make_menu("dutchie:kushmart-north", n_products=2500)
    record = sign_menu(menu, KEY)
    assert open_record(accept(record.encoded, now_ms=menu.fetched_at_ms)) == menu


# ---------------------------------------------------------------- each rule, its own error
def test_time_rule_allows_exactly_the_skew() -> None:
    fetched = RECORD.fetched_at_ms
    accept(RECORD.encoded, now_ms=fetched - SKEW_MS)
    with pytest.raises(FutureTimestamp):
        accept(RECORD.encoded, now_ms=fetched - SKEW_MS - 1)
    accept(RECORD.encoded, now_ms=fetched + 10 * 365 * 86_400_000)  # old records are fine here


def test_key_binding() -> None:
    accept(RECORD.encoded, expected_dispensary="weedmaps:ultra-health-gallup")
    with pytest.raises(KeyBindingMismatch):
        accept(RECORD.encoded, expected_dispensary="weedmaps:another-store")


def test_trust_policy() -> None:
    accept(RECORD.encoded, policy=TrustPolicy.allowlist({KEY.public_key, OTHER.public_key}))
    with pytest.raises(UntrustedPublisher):
        accept(RECORD.encoded, policy=TrustPolicy.allowlist({OTHER.public_key}))
    with pytest.raises(UntrustedPublisher):
        accept(RECORD.encoded, policy=TrustPolicy.allowlist(set()))
    assert TrustPolicy(TrustMode.OPEN, frozenset({OTHER.public_key})).trusts(KEY.public_key)


def test_trust_policy_refuses_invalid_values() -> None:
    with pytest.raises(UsageError):
        TrustPolicy("open")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        TrustPolicy(TrustMode.ALLOWLIST, frozenset({PublicKey(b"short")}))
    with pytest.raises(UsageError):
        TrustPolicy(TrustMode.ALLOWLIST, {KEY.public_key})  # type: ignore[arg-type]


def test_a_signature_by_another_key_is_bad() -> None:
    forged = cbor2.dumps(
        cbor2.CBORTag(
            18,
            [RECORD.protected, {}, RECORD.payload, OTHER.sign(b"anything else entirely")],
        ),
        canonical=True,
    )
    with pytest.raises(BadSignature):
        accept(forged)


def test_claiming_another_publisher_is_a_bad_signature() -> None:
    # the header names OTHER as publisher; the signature is KEY's over that very header
    claim = sign_record(
        payload=RECORD.payload,
        dispensary_id=RECORD.dispensary_id,
        fetched_at_ms=RECORD.fetched_at_ms,
        content_hash=RECORD.content_hash,
        signing_key=OTHER,
    )
    stolen = cbor2.dumps(
        cbor2.CBORTag(
            18,
            [
                claim.protected,
                {},
                claim.payload,
                KEY.sign(sig_structure(claim.protected, claim.payload)),
            ],
        ),
        canonical=True,
    )
    with pytest.raises(BadSignature):
        accept(stolen)


def test_a_payload_swapped_under_a_valid_header_is_a_bad_signature() -> None:
    other_payload = encode_menu(make_menu("weedmaps:ultra-health-gallup", n_products=4))
    swapped = cbor2.dumps(
        cbor2.CBORTag(18, [RECORD.protected, {}, other_payload, RECORD.signature]),
        canonical=True,
    )
    with pytest.raises(BadSignature):
        accept(swapped)


def test_rules_apply_cheapest_first() -> None:
    # future, for another dispensary, by an untrusted key, with a bad signature: time first
    bad = cbor2.dumps(
        cbor2.CBORTag(18, [RECORD.protected, {}, RECORD.payload, bytes(64)]), canonical=True
    )
    everything = {
        "now_ms": RECORD.fetched_at_ms - SKEW_MS - 1,
        "expected_dispensary": "jane:1",
        "policy": TrustPolicy.allowlist({OTHER.public_key}),
    }
    with pytest.raises(FutureTimestamp):
        accept(bad, **everything)
    with pytest.raises(KeyBindingMismatch):
        accept(bad, **{**everything, "now_ms": NOW_MS})
    with pytest.raises(UntrustedPublisher):
        accept(bad, **{**everything, "now_ms": NOW_MS, "expected_dispensary": None})
    with pytest.raises(BadSignature):
        accept(bad)


def test_a_signed_decompression_bomb_is_refused_on_acceptance_without_decompressing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bomb = bytes(lz4.frame.compress(b"\x00" * (4 * 1024 * 1024), store_size=True))
    data = resigned(RECORD, payload=bomb)

    def fail(*_: object, **__: object) -> None:
        raise AssertionError("decompressed")

    monkeypatch.setattr(lz4.frame, "LZ4FrameDecompressor", fail)
    monkeypatch.setattr(lz4.frame, "decompress", fail)
    with pytest.raises(LimitExceeded):
        accept(data)
    unsized = bytes(lz4.frame.compress(b"\x00" * 1000, store_size=False))
    with pytest.raises(LimitExceeded):
        accept(resigned(RECORD, payload=unsized))
    with pytest.raises(DecodeError):
        accept(resigned(RECORD, payload=b"not an lz4 frame"))


def test_an_oversize_record_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(acceptance, "decode_record", fail)
    with pytest.raises(LimitExceeded):
        accept(b"\xd2" + bytes(limits.MAX_RECORD_BYTES))


def test_verify_record_applies_the_same_rules_to_a_decoded_record() -> None:
    record = decode_record(RECORD.encoded)
    assert verify_record(record, now_ms=NOW_MS, policy=OPEN) is record
    tampered = dataclasses.replace(record, signature=bytes(64))
    with pytest.raises(BadSignature):
        verify_record(tampered, now_ms=NOW_MS, policy=OPEN)


# ---------------------------------------------------------------- opening
@pytest.mark.parametrize(
    "fields",
    [
        {"dispensary_id": "weedmaps:another-store"},
        {"fetched_at_ms": MENU.fetched_at_ms + 1},
        {"content_hash": content_hash(make_menu(n_products=1))},
    ],
)
def test_a_menu_that_is_not_the_one_the_header_describes_is_refused(
    fields: dict[str, Any],
) -> None:
    record = accept(resigned(RECORD, **fields))
    with pytest.raises(DecodeError, match=r"signed header|content hash"):
        open_record(record)


def test_a_signed_payload_that_is_not_a_menu_is_refused_when_opened() -> None:
    payload = bytes(lz4.frame.compress(cbor2.dumps({"d": 1}), store_size=True))
    with pytest.raises(DecodeError):
        open_record(accept(resigned(RECORD, payload=payload)))


# ---------------------------------------------------------------- every bit, every cut
def test_every_single_bit_flip_is_refused() -> None:
    small = sign_menu(make_menu("jane:1", n_products=1), KEY)
    data = small.encoded
    assert len(data) < 1000
    in_signature = range(len(data) - 64, len(data))
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(RecordError) as caught:
            accept(bytes(flipped), now_ms=small.fetched_at_ms)
        assert isinstance(caught.value, DecodeError | RejectedRecord)
        if bit // 8 in in_signature:
            assert isinstance(caught.value, BadSignature)


def test_every_truncation_and_extension_is_refused() -> None:
    data = RECORD.encoded
    for length in range(len(data)):
        with pytest.raises(DecodeError):
            accept(data[:length])
    for suffix in (b"\x00", b"\xff", data):
        with pytest.raises(DecodeError):
            accept(data + suffix)


# ---------------------------------------------------------------- any input at all
@given(st.binary(max_size=4096))
@settings(max_examples=400)
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    with pytest.raises(DecodeError):
        accept(data)
    with pytest.raises(DecodeError):
        accept(b"\xd2\x84" + data)


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64) + 1, 2**64 - 1)
    | st.floats()
    | st.binary(max_size=70)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.integers(-70_000, 10) | st.text(max_size=3), children, max_size=8)
    ),
    max_leaves=30,
)
HEADER = cbor2.loads(RECORD.protected)


@given(
    values,
    st.integers(0, 3),
    st.sampled_from(sorted(HEADER)),
    st.sampled_from(["protected", "item", "header value", "whole"]),
)
@settings(max_examples=250)
def test_near_valid_records_raise_only_the_projects_errors(
    value: object, position: int, label: int, where: str
) -> None:
    items: list[object] = [RECORD.protected, {}, RECORD.payload, RECORD.signature]
    if where == "whole":
        data = cbor2.dumps(cbor2.CBORTag(18, value), canonical=True)
    elif where == "item":
        items[position] = value
        data = cbor2.dumps(cbor2.CBORTag(18, items), canonical=True)
    elif where == "protected":
        items[0] = cbor2.dumps(value, canonical=True)
        data = cbor2.dumps(cbor2.CBORTag(18, items), canonical=True)
    else:
        items[0] = cbor2.dumps({**HEADER, label: value}, canonical=True)
        data = cbor2.dumps(cbor2.CBORTag(18, items), canonical=True)
    try:
        accept(data)
    except (DecodeError, RejectedRecord):
        return
    assert data == RECORD.encoded  # only an unchanged record is accepted


def test_garbage_is_refused_in_bounded_time() -> None:
    started = time.monotonic()
    for size in (10, 1_000, 100_000, limits.MAX_RECORD_BYTES):
        for filler in (b"\x9f", b"\x81", b"\xd2", b"\x5b", b"\xbf"):
            with pytest.raises(DecodeError):
                accept(filler * size)
    assert time.monotonic() - started < 5
