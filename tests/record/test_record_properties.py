"""Codec and signed-record properties: round trips, bit flips, garbage, bombs, limits."""

from __future__ import annotations

import time

import cbor2
import lz4.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whnode import limits
from whnode.record import codec
from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.codec import content_hash, decode_menu, encode_menu
from whnode.record.exceptions import (
    BadSignature,
    DecodeError,
    FutureTimestamp,
    KeyBindingMismatch,
    LimitExceeded,
    RecordError,
    UntrustedPublisher,
)
from whnode.record.keys import SigningKey, routing_key
from whnode.record.model import Menu
from whnode.record.signed import SignedRecord, decode_record, sign_record
from whnode.testing.factories import make_menu, menus

KEY = SigningKey.from_private_bytes(bytes(range(32)))
NOW_MS = 1_760_000_000_000


def signed(menu: Menu, key: SigningKey = KEY) -> SignedRecord:
    return sign_record(
        payload=encode_menu(menu),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=key,
    )


@given(menus())
def test_decode_of_encode_is_identity(menu: Menu) -> None:
    assert decode_menu(encode_menu(menu)) == menu


@given(menus(max_products=3))
@settings(max_examples=50)
def test_signed_record_round_trip_and_open(menu: Menu) -> None:
    record = signed(menu)
    accepted = accept_record(
        record.encoded,
        now_ms=menu.fetched_at_ms,
        policy=TrustPolicy.open(),
        expected_dispensary=menu.dispensary_id,
    )
    assert accepted == record
    assert open_record(accepted) == menu


def test_encoding_is_deterministic_and_hash_ignores_fetch_time() -> None:
    menu = make_menu(n_products=20)
    later = make_menu(n_products=20, fetched_at_ms=menu.fetched_at_ms + 60_000)
    assert encode_menu(menu) == encode_menu(make_menu(n_products=20))
    assert content_hash(menu) == content_hash(later)
    assert content_hash(menu) != content_hash(make_menu(n_products=20, seed=2))


def test_every_single_bit_flip_is_rejected() -> None:
    record = signed(make_menu(n_products=2))
    data = record.encoded
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(RecordError):
            accept_record(bytes(flipped), now_ms=NOW_MS, policy=TrustPolicy.open())


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_record_errors(data: bytes) -> None:
    with pytest.raises(RecordError):
        accept_record(data, now_ms=NOW_MS, policy=TrustPolicy.open())
    with pytest.raises(RecordError):
        decode_menu(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.binary(max_size=40) | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.integers(-70000, 10) | st.text(max_size=3), children, max_size=5)
        ),
        max_leaves=30,
    )
)
def test_near_valid_structures_only_raise_record_errors(value: object) -> None:
    record = signed(make_menu(n_products=1))
    candidates = [
        cbor2.dumps(cbor2.CBORTag(18, value), canonical=True),
        cbor2.dumps(
            cbor2.CBORTag(18, [record.protected, {}, record.payload, value]), canonical=True
        ),
        cbor2.dumps(
            cbor2.CBORTag(
                18, [cbor2.dumps(value, canonical=True), {}, record.payload, record.signature]
            ),
            canonical=True,
        ),
        lz4.frame.compress(cbor2.dumps(value, canonical=True), store_size=True),
    ]
    for data in candidates[:3]:
        with pytest.raises(RecordError):
            accept_record(data, now_ms=NOW_MS, policy=TrustPolicy.open())
    with pytest.raises(RecordError):
        decode_menu(candidates[3])


class _Spy:
    calls = 0


@pytest.fixture
def decompression_spy(monkeypatch: pytest.MonkeyPatch) -> type[_Spy]:
    _Spy.calls = 0
    real = lz4.frame.LZ4FrameDecompressor

    class Spying(real):  # type: ignore[misc, valid-type]
        def decompress(self, *args: object, **kwargs: object) -> bytes:
            _Spy.calls += 1
            return super().decompress(*args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(codec.lz4.frame, "LZ4FrameDecompressor", Spying)
    return _Spy


def test_bomb_with_huge_declared_size_is_refused_before_decompressing(
    decompression_spy: type[_Spy],
) -> None:
    bomb = lz4.frame.compress(b"\x00" * (limits.MAX_DECOMPRESSED_BYTES + 1), store_size=True)
    with pytest.raises(LimitExceeded):
        decode_menu(bomb)
    assert decompression_spy.calls == 0


def test_high_ratio_frame_is_refused_before_decompressing(decompression_spy: type[_Spy]) -> None:
    bomb = lz4.frame.compress(b"\x00" * (8 * 1024 * 1024), store_size=True)
    assert len(bomb) * limits.MAX_COMPRESSION_RATIO < 8 * 1024 * 1024
    with pytest.raises(LimitExceeded):
        decode_menu(bomb)
    assert decompression_spy.calls == 0


def test_frame_without_declared_size_is_refused(decompression_spy: type[_Spy]) -> None:
    frame = lz4.frame.compress(cbor2.dumps({"d": 1}), store_size=False)
    with pytest.raises(LimitExceeded):
        decode_menu(frame)
    assert decompression_spy.calls == 0


def test_lying_header_cannot_inflate_past_its_declared_size() -> None:
    real = lz4.frame.compress(b"\x01" * 4000, store_size=True)
    short = lz4.frame.compress(b"\x01" * 100, store_size=True)
    # graft the small frame's header (declares 100 bytes) onto the large frame's blocks
    header_length = 15
    lying = short[:header_length] + real[header_length:]
    with pytest.raises(DecodeError):
        decode_menu(lying)


def test_oversize_record_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real_loads = cbor2.loads

    def spy(data: bytes) -> object:
        nonlocal calls
        calls += 1
        return real_loads(data)

    monkeypatch.setattr("whnode.record.signed.cbor2.loads", spy)
    with pytest.raises(LimitExceeded):
        accept_record(b"\xd2" + bytes(limits.MAX_RECORD_BYTES), now_ms=0, policy=TrustPolicy.open())
    assert calls == 0


def test_deep_cbor_is_refused() -> None:
    deep: object = 1
    for _ in range(limits.MAX_CBOR_DEPTH + 2):
        deep = [deep]
    with pytest.raises(LimitExceeded):
        decode_menu(lz4.frame.compress(cbor2.dumps({"d": deep}, canonical=True), store_size=True))


def test_each_rule_has_its_own_error() -> None:
    menu = make_menu(n_products=3)
    record = signed(menu)
    policy = TrustPolicy.open()
    with pytest.raises(FutureTimestamp):
        accept_record(record.encoded, now_ms=menu.fetched_at_ms - 301_000, policy=policy)
    accept_record(record.encoded, now_ms=menu.fetched_at_ms - 299_000, policy=policy)
    with pytest.raises(KeyBindingMismatch):
        accept_record(
            record.encoded,
            now_ms=NOW_MS,
            policy=policy,
            expected_dispensary="weedmaps:another-store",
        )
    other = SigningKey.generate()
    with pytest.raises(UntrustedPublisher):
        accept_record(
            record.encoded, now_ms=NOW_MS, policy=TrustPolicy.allowlist({other.public_key})
        )
    accept_record(record.encoded, now_ms=NOW_MS, policy=TrustPolicy.allowlist({KEY.public_key}))
    # a valid structure whose signature is by another key than the one named
    forged = decode_record(record.encoded)
    resigned = cbor2.dumps(
        cbor2.CBORTag(18, [forged.protected, {}, forged.payload, other.sign(b"x")]),
        canonical=True,
    )
    with pytest.raises(BadSignature):
        accept_record(resigned, now_ms=NOW_MS, policy=policy)


def test_non_canonical_encoding_is_refused() -> None:
    record = signed(make_menu(n_products=1))
    # the same values with a two-byte array header: not canonical
    body = cbor2.dumps(
        cbor2.CBORTag(18, [record.protected, {}, record.payload, record.signature]), canonical=True
    )
    assert body == record.encoded
    relaxed = body[:1] + b"\x98\x04" + body[2:]
    with pytest.raises(DecodeError):
        decode_record(relaxed)


def test_menu_inside_must_match_the_signed_header() -> None:
    menu = make_menu(n_products=2)
    other = make_menu("weedmaps:other-store", n_products=2)
    record = sign_record(
        payload=encode_menu(other),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=KEY,
    )
    accepted = accept_record(record.encoded, now_ms=NOW_MS, policy=TrustPolicy.open())
    with pytest.raises(DecodeError):
        open_record(accepted)


def test_routing_key_is_versioned_sha1() -> None:
    import hashlib

    assert routing_key("jane:1547") == hashlib.sha1(b"whnode/dispensary/v1\x00jane:1547").digest()
    assert len(routing_key("jane:1547")) == 20


def test_decode_time_is_bounded_for_garbage() -> None:
    started = time.monotonic()
    for size in (10, 1000, 100_000):
        with pytest.raises(RecordError):
            accept_record(b"\x9f" * size, now_ms=NOW_MS, policy=TrustPolicy.open())
    assert time.monotonic() - started < 5
