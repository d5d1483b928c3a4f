"""The menu codec: round trips, one encoding per menu, caps enforced before the work they
protect, and nothing but the project's own errors on any input."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import cbor2
import lz4.frame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whnode import limits
from whnode.record import cbor, codec
from whnode.record.codec import content_hash, decode_menu, decompress_payload, encode_menu
from whnode.record.exceptions import DecodeError, LimitExceeded, ModelError, RecordError
from whnode.record.model import Menu, Potency, PotencyUnit, Product
from whnode.testing.factories import evolve_menu, make_menu, menus
from whnode.testing.forgery import xxh32_short

MENU = make_menu(n_products=3)


def frame(content: bytes, **options: Any) -> bytes:
    return bytes(lz4.frame.compress(content, store_size=True, **options))


def payload_of(plain: object) -> bytes:
    return frame(cbor2.dumps(plain, canonical=True))


# ---------------------------------------------------------------- round trips
@given(menus())
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_decode_of_encode_is_the_menu(menu: Menu) -> None:
    encoded = encode_menu(menu)
    assert decode_menu(encoded) == menu
    assert encode_menu(decode_menu(encoded)) == encoded


@pytest.mark.parametrize("size", [0, 1, 250, 2500])
def test_realistic_menus_round_trip(size: int) -> None:
    menu = make_menu("dutchie:kushmart-north", n_products=size, seed=size)
    assert decode_menu(encode_menu(menu)) == menu


def test_the_frame_declares_its_content_size() -> None:
    encoded = encode_menu(MENU)
    info = lz4.frame.get_frame_info(encoded)
    assert encoded[:4] == codec.LZ4_MAGIC
    assert info["content_size"] == len(cbor2.dumps(codec.menu_to_plain(MENU), canonical=True))


def test_the_content_is_canonical_cbor_of_the_plain_mapping() -> None:
    content = decompress_payload(encode_menu(MENU))
    plain = cbor2.loads(content)
    assert set(plain) == {"d", "n", "s", "t", "p"}
    assert plain["d"] == MENU.dispensary_id
    assert plain["t"] == MENU.fetched_at_ms
    assert plain["s"] == MENU.vendor.value
    assert cbor2.dumps(plain, canonical=True) == content


def test_encoding_is_deterministic() -> None:
    assert encode_menu(make_menu(n_products=40)) == encode_menu(make_menu(n_products=40))
    assert encode_menu(make_menu(n_products=40)) != encode_menu(make_menu(n_products=40, seed=2))


def test_whole_numbers_encode_as_floats_where_the_mapping_says_float() -> None:
    product = MENU.products[0]
    as_int = dataclasses.replace(product, thc=Potency(20, 20, PotencyUnit.PERCENT))
    as_float = dataclasses.replace(product, thc=Potency(20.0, 20.0, PotencyUnit.PERCENT))
    menus_ = [dataclasses.replace(MENU, products=(item,)) for item in (as_int, as_float)]
    assert encode_menu(menus_[0]) == encode_menu(menus_[1])
    assert content_hash(menus_[0]) == content_hash(menus_[1])
    assert bytes.fromhex("83f94d00f94d00") in decompress_payload(encode_menu(menus_[0]))


# ---------------------------------------------------------------- content hash
def test_content_hash_ignores_fetch_time_and_statistics_only() -> None:
    menu = make_menu(n_products=30)
    later = make_menu(n_products=30, fetched_at_ms=menu.fetched_at_ms + 60_000)
    assert content_hash(menu) == content_hash(later)
    assert content_hash(menu) == content_hash(evolve_menu(menu, 1, later.fetched_at_ms, 0.0))
    assert content_hash(menu) != content_hash(evolve_menu(menu, 1, later.fetched_at_ms, 0.2))
    assert content_hash(menu) != content_hash(dataclasses.replace(menu, name="Other name"))


@given(menus(max_products=3))
@settings(max_examples=40)
def test_content_hash_is_sha256_of_the_mapping_without_t_and_x(menu: Menu) -> None:
    plain = codec.menu_to_plain(menu)
    del plain["t"]
    plain.pop("x", None)
    expected = hashlib.sha256(cbor2.dumps(plain, canonical=True)).digest()
    assert content_hash(menu) == expected
    assert content_hash(dataclasses.replace(menu, statistics=None)) == expected
    # the one-pass variants slice the hashed map out of the payload: same hash
    payload, one_pass = codec.encode_menu_with_hash(menu)
    assert payload == encode_menu(menu)
    assert one_pass == expected
    assert codec.decode_menu_with_hash(payload) == (menu, expected)


# ---------------------------------------------------------------- encoder refusals
def test_text_that_is_not_unicode_is_refused_by_the_model() -> None:
    with pytest.raises(ModelError, match="Unicode"):
        dataclasses.replace(MENU, name="Lone \ud800 surrogate")


def test_the_encoder_refuses_what_the_decoder_would_refuse() -> None:
    # 20,000 characters pass the model, but 80,000 bytes of UTF-8 exceed MAX_CBOR_STRING_BYTES
    product = dataclasses.replace(MENU.products[0], description="\U0001f33f" * 20_000)
    with pytest.raises(LimitExceeded):
        encode_menu(dataclasses.replace(MENU, products=(product,)))


# ---------------------------------------------------------------- strict mapping
def _plain() -> dict[str, Any]:
    return codec.menu_to_plain(MENU)


def _mutations() -> Iterator[tuple[str, Any]]:
    plain = _plain()
    yield "unknown member", {**plain, "z": 1}
    yield "missing member", {key: value for key, value in plain.items() if key != "n"}
    yield "null optional", {**plain, "x": None}
    product = dict(plain["p"][0])
    yield "null brand", {**plain, "p": [{**product, "b": None}]}
    yield "unknown product member", {**plain, "p": [{**product, "zz": 1}]}
    yield (
        "integer amount",
        {
            **plain,
            "p": [{**product, "o": [{**product["o"][0], "q": [3, "g"]}]}],
        },
    )
    yield "integer potency", {**plain, "p": [{**product, "h": [20, 20, "%"]}]}
    yield "potency of two members", {**plain, "p": [{**product, "h": [20.0, "%"]}]}
    yield "unknown category", {**plain, "p": [{**product, "c": "weed"}]}
    yield "category not text", {**plain, "p": [{**product, "c": 3}]}
    yield "products not an array", {**plain, "p": {"a": 1}}
    yield "menu not a map", [plain]
    yield "bytes for text", {**plain, "n": b"name"}
    yield "bad statistics", {**plain, "x": {"c": [["flower", 1, 2.0]], "h": [0] * 20}}


@pytest.mark.parametrize(("case", "plain"), list(_mutations()), ids=[c for c, _ in _mutations()])
def test_payloads_that_break_the_mapping_are_refused(case: str, plain: object) -> None:
    with pytest.raises((DecodeError, ModelError)):
        decode_menu(payload_of(plain))


def test_a_valid_menu_in_a_non_canonical_encoding_is_refused() -> None:
    plain = _plain()
    canonical = cbor2.dumps(plain, canonical=True)
    relaxed = cbor2.dumps(dict(reversed(list(plain.items()))))  # keys out of order
    assert cbor2.loads(relaxed) == cbor2.loads(canonical)
    assert relaxed != canonical
    with pytest.raises(DecodeError, match="canonical"):
        decode_menu(frame(relaxed))
    wide_float = canonical.replace(bytes.fromhex("f94300"), bytes.fromhex("fb400c000000000000"))
    assert wide_float != canonical
    with pytest.raises(DecodeError, match="canonical"):
        decode_menu(frame(wide_float))


def test_too_many_products_are_refused_before_any_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    built = 0
    real = codec._product

    def counting(value: object, where: str) -> Product:
        nonlocal built
        built += 1
        return real(value, where)

    monkeypatch.setattr(codec, "_product", counting)
    plain = {**_plain(), "p": [0] * (limits.MAX_PRODUCTS_PER_MENU + 1)}
    with pytest.raises(LimitExceeded):
        decode_menu(payload_of(plain))
    assert built == 0


# ---------------------------------------------------------------- lz4 caps and bombs
class DecompressionSpy:
    """Counts every way lz4 could decompress: the one-shot function and the stream class."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.max_lengths: list[int] = []
        spy = self
        real_decompress = lz4.frame.decompress
        real_class = lz4.frame.LZ4FrameDecompressor

        def decompress(*args: Any, **kwargs: Any) -> Any:
            spy.calls += 1
            return real_decompress(*args, **kwargs)

        class Spying(real_class):  # type: ignore[misc, valid-type]
            def decompress(self, data: bytes, max_length: int = -1) -> bytes:
                spy.calls += 1
                spy.max_lengths.append(max_length)
                return super().decompress(data, max_length=max_length)  # type: ignore[no-any-return]

        monkeypatch.setattr(lz4.frame, "decompress", decompress)
        monkeypatch.setattr(lz4.frame, "LZ4FrameDecompressor", Spying)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> DecompressionSpy:
    return DecompressionSpy(monkeypatch)


def test_the_spy_sees_a_normal_decode(spy: DecompressionSpy) -> None:
    encoded = encode_menu(MENU)
    decode_menu(encoded)
    assert spy.calls == 1
    assert spy.max_lengths == [lz4.frame.get_frame_info(encoded)["content_size"] + 1]


def test_a_frame_declaring_a_huge_size_is_refused_before_decompressing(
    spy: DecompressionSpy,
) -> None:
    honest = frame(b"\x00" * 1000)
    header = bytearray(honest[:15])
    header[6:14] = (limits.MAX_DECOMPRESSED_BYTES + 1).to_bytes(8, "little")
    # the header checksum covers the descriptor: recompute it (xxh32 >> 8 & 0xff) via lz4
    bomb = _with_valid_header_checksum(bytes(header), honest[15:])
    assert lz4.frame.get_frame_info(bomb)["content_size"] == limits.MAX_DECOMPRESSED_BYTES + 1
    with pytest.raises(LimitExceeded, match="MAX_DECOMPRESSED_BYTES"):
        decode_menu(bomb)
    assert spy.calls == 0


def test_a_real_huge_frame_is_refused_before_decompressing(spy: DecompressionSpy) -> None:
    bomb = frame(b"\x00" * (limits.MAX_DECOMPRESSED_BYTES + 1))
    with pytest.raises(LimitExceeded):
        decode_menu(bomb)
    assert spy.calls == 0


def test_a_high_ratio_frame_is_refused_before_decompressing(spy: DecompressionSpy) -> None:
    size = 4 * 1024 * 1024
    bomb = frame(b"\x00" * size)
    assert len(bomb) * limits.MAX_COMPRESSION_RATIO < size <= limits.MAX_DECOMPRESSED_BYTES
    with pytest.raises(LimitExceeded, match="RATIO"):
        decode_menu(bomb)
    assert spy.calls == 0


def test_a_frame_without_a_declared_size_is_refused_before_decompressing(
    spy: DecompressionSpy,
) -> None:
    content = cbor2.dumps(codec.menu_to_plain(MENU), canonical=True)
    unsized = bytes(lz4.frame.compress(content, store_size=False))
    assert lz4.frame.get_frame_info(unsized)["content_size"] == 0
    with pytest.raises(LimitExceeded, match="declare"):
        decode_menu(unsized)
    assert spy.calls == 0


def test_a_header_that_lies_low_cannot_inflate_past_its_declared_size(
    spy: DecompressionSpy,
) -> None:
    content = b"\x01" * 4000
    honest = frame(content)
    header = bytearray(honest[:15])
    header[6:14] = (100).to_bytes(8, "little")
    lying = _with_valid_header_checksum(bytes(header), honest[15:])
    with pytest.raises(DecodeError):
        decode_menu(lying)
    assert spy.max_lengths == [101]


def test_an_oversize_payload_is_refused_before_its_header_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*_: object) -> None:
        raise AssertionError("the frame header was read")

    monkeypatch.setattr(lz4.frame, "get_frame_info", fail)
    with pytest.raises(LimitExceeded):
        decode_menu(codec.LZ4_MAGIC + bytes(limits.MAX_RECORD_BYTES))


def test_a_frame_followed_by_anything_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode_menu(encode_menu(MENU) + b"\x00")
    with pytest.raises(DecodeError):
        decode_menu(encode_menu(MENU) + encode_menu(MENU))


def _with_valid_header_checksum(header: bytes, rest: bytes) -> bytes:
    """An lz4 frame header with its descriptor changed and its checksum byte recomputed."""
    descriptor = header[4:14]
    return header[:14] + bytes([xxh32_short(descriptor) >> 8 & 0xFF]) + rest


def test_the_header_checksum_helper_matches_lz4() -> None:
    honest = frame(b"abc" * 100)
    assert _with_valid_header_checksum(honest[:15], honest[15:]) == honest


# ---------------------------------------------------------------- CBOR caps
class LoadsSpy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = cbor2.loads

        def loads(data: bytes) -> object:
            self.calls += 1
            return real(data)

        monkeypatch.setattr(cbor2, "loads", loads)


def _nested(depth: int) -> bytes:
    return b"\x81" * depth + b"\x00"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (_nested(limits.MAX_CBOR_DEPTH), None),
        (_nested(limits.MAX_CBOR_DEPTH + 1), LimitExceeded),
        (_nested(100_000), LimitExceeded),
        (b"\x9a" + (limits.MAX_CBOR_ITEMS + 1).to_bytes(4, "big") + b"\x00" * 10, LimitExceeded),
        (b"\xba" + (limits.MAX_CBOR_ITEMS + 1).to_bytes(4, "big") + b"\x00" * 10, LimitExceeded),
        (b"\x5a" + (limits.MAX_CBOR_STRING_BYTES + 1).to_bytes(4, "big"), LimitExceeded),
        (b"\x7b" + (2**63).to_bytes(8, "big"), LimitExceeded),
        (b"\x9b" + (2**64 - 1).to_bytes(8, "big"), LimitExceeded),
        (b"\x59\x00\x10" + b"x" * 15, DecodeError),  # string runs past the end
        (b"\x83\x01\x02", DecodeError),  # array runs past the end
        (b"\x9f\x01\xff", DecodeError),  # indefinite length
        (b"\x5f\x41\x00\xff", DecodeError),
        (b"\x1c", DecodeError),  # reserved additional information
        (b"\xc1\x00", DecodeError),  # a tag
        (b"\xd2\x80", DecodeError),  # tag 18 where no tag is allowed
        (b"\xf7", DecodeError),  # undefined
        (b"\xf0", DecodeError),  # unassigned simple value
        (b"\xf8\xff", DecodeError),  # one-byte simple value
        (b"\x01\x02", DecodeError),  # bytes after the item
        (b"", DecodeError),
        (b"\x1b\x00", DecodeError),  # truncated head
        (b"\xa1\x01", DecodeError),  # map missing a value
    ],
)
def test_scan_enforces_the_caps_before_cbor2_builds_anything(
    monkeypatch: pytest.MonkeyPatch, data: bytes, error: type[Exception] | None
) -> None:
    spy = LoadsSpy(monkeypatch)
    if error is None:
        cbor.decode_bounded(data)
        assert spy.calls == 1
        return
    with pytest.raises(error):
        cbor.decode_bounded(data)
    assert spy.calls == 0


def test_total_items_are_capped() -> None:
    caps = cbor.CborCaps(max_total_items=10)
    cbor.scan(cbor2.dumps([1] * 9), caps)
    with pytest.raises(LimitExceeded):
        cbor.scan(cbor2.dumps([1] * 10), caps)
    with pytest.raises(LimitExceeded):
        cbor.scan(cbor2.dumps([[1] * 5, [1] * 5]), caps)


plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64) + 1, 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.integers(-(2**63), 2**63 - 1) | st.text(max_size=4), children, max_size=5
        )
    ),
    max_leaves=40,
)


@given(plain_values)
def test_scan_accepts_every_canonical_item_cbor2_writes(value: object) -> None:
    data = cbor2.dumps(value, canonical=True)
    assert cbor.decode_bounded(data, cbor.CborCaps(max_depth=64)) == value


# ---------------------------------------------------------------- any input
@given(st.binary(max_size=4096))
@settings(max_examples=300)
def test_arbitrary_bytes_only_raise_record_errors(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode_menu(data)
    with pytest.raises(RecordError):
        decode_menu(codec.LZ4_MAGIC + data)


@given(st.binary(max_size=2048))
@settings(max_examples=300)
def test_arbitrary_content_in_a_valid_frame_only_raises_record_errors(content: bytes) -> None:
    with pytest.raises(RecordError):
        decode_menu(frame(content))


@given(plain_values)
@settings(max_examples=200)
def test_arbitrary_cbor_in_a_valid_frame_only_raises_record_errors(value: object) -> None:
    with pytest.raises(RecordError):
        decode_menu(payload_of(value))


def _replace_somewhere(plain: Any, path: list[int], replacement: object) -> Any:
    """``plain`` with the node reached by following ``path`` (indices into the children of
    maps and arrays, taken modulo their size) replaced."""
    if not path or not isinstance(plain, dict | list) or not plain:
        return replacement
    index, rest = path[0], path[1:]
    if isinstance(plain, dict):
        key = sorted(plain, key=str)[index % len(plain)]
        return {**plain, key: _replace_somewhere(plain[key], rest, replacement)}
    position = index % len(plain)
    copy = list(plain)
    copy[position] = _replace_somewhere(copy[position], rest, replacement)
    return copy


@given(st.lists(st.integers(0, 50), max_size=6), plain_values, st.booleans())
@settings(max_examples=300)
def test_near_valid_menus_only_raise_record_errors_or_decode(
    path: list[int], replacement: object, flip: bool
) -> None:
    plain = _replace_somewhere(_plain(), path, replacement)
    data = payload_of(plain)
    if flip:
        data = data[:-6] + bytes([data[-6] ^ 0x40]) + data[-5:]
    try:
        menu = decode_menu(data)
    except RecordError:
        return
    # whatever decodes is exactly the one encoding of a menu
    assert decompress_payload(encode_menu(menu)) == decompress_payload(data)


def test_decoding_garbage_takes_bounded_time() -> None:
    started = time.monotonic()
    for size in (10, 1000, 100_000, 1_000_000):
        for filler in (b"\x9f", b"\x81", b"\xff", b"\x00"):
            with pytest.raises(RecordError):
                decode_menu(frame(filler * size))
    assert time.monotonic() - started < 5
