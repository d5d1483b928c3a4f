"""Payloads crafted to cost the decoder time, rather than to break it: refused up front.

Python's hashes of integers, floats and tuples are not randomized. A CBOR map whose keys are
arrays crafted to share one hash (cbor2 builds them as tuples) costs quadratic time to insert
into a dict: 8,000 such keys took 4 s, 100,000 (MAX_CBOR_ITEMS) would take minutes, in a
payload far under every size cap. A menu payload only ever has text keys, whose hashes are
keyed per process, so the scan refuses any other key before cbor2 builds anything.
"""

from __future__ import annotations

import time
from typing import Any

import cbor2
import lz4.frame
import pytest

from whnode.record.cbor import PAYLOAD_CAPS, CborCaps, decode_bounded, scan
from whnode.record.codec import decode_menu
from whnode.record.exceptions import DecodeError

_MASK = (1 << 64) - 1
_PRIME_1 = 11400714785074694791
_PRIME_2 = 14029467366897019727
_PRIME_5 = 2870177450012600261
_HASH_MODULUS = (1 << 61) - 1


def _rotate(value: int) -> int:
    return ((value << 31) | (value >> 33)) & _MASK


def colliding_pairs(count: int) -> list[tuple[int, int]]:
    """``count`` distinct 2-tuples of integers with one and the same ``hash`` (CPython 3.11's
    tuple hash: xxHash-style lanes over the items' hashes, inverted for the second item)."""
    inverse = pow(_PRIME_2, -1, 1 << 64)
    target = 12345
    pairs: list[tuple[int, int]] = []
    first = 0
    while len(pairs) < count:
        first += 1
        after_first = (_rotate((_PRIME_5 + first * _PRIME_2) & _MASK) * _PRIME_1) & _MASK
        wanted = ((target - after_first) * inverse) & _MASK
        if wanted < _HASH_MODULUS:
            pairs.append((first, wanted))
        elif wanted > (1 << 64) - _HASH_MODULUS and wanted != _MASK:
            pairs.append((first, wanted - (1 << 64)))  # hash(-x) == -x for 1 < x < 2**61 - 1
    return pairs


def hash_flooding_map(count: int) -> bytes:
    body = bytearray(b"\xb9" + count.to_bytes(2, "big"))
    for pair in colliding_pairs(count):
        body += cbor2.dumps(list(pair)) + b"\xf6"
    return bytes(body)


def test_the_crafted_keys_do_collide() -> None:
    pairs = colliding_pairs(64)
    assert len(set(pairs)) == 64
    assert len({hash(pair) for pair in pairs}) == 1


def test_a_hash_flooding_map_is_refused_before_cbor2_builds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    real_loads = cbor2.loads

    def spy(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real_loads(*args, **kwargs)

    monkeypatch.setattr("whnode.record.cbor.cbor2.loads", spy)
    flood = hash_flooding_map(20_000)
    started = time.monotonic()
    with pytest.raises(DecodeError, match="key is not a text string"):
        decode_menu(bytes(lz4.frame.compress(flood, store_size=True)))
    assert time.monotonic() - started < 1.0
    assert calls == 0


@pytest.mark.parametrize(
    "key",
    [1, -1, 1.5, b"bytes", [1, 2], {"a": 1}, None, True],
    ids=["uint", "nint", "float", "bstr", "array", "map", "null", "true"],
)
def test_payload_map_keys_must_be_text(key: object) -> None:
    nested = cbor2.dumps({"d": [{"x": 1}]}, canonical=True)
    scan(nested, PAYLOAD_CAPS)  # text keys at every level: fine
    inner = b"\xa1" + cbor2.dumps(key, canonical=True) + b"\x01"
    with pytest.raises(DecodeError, match="key is not a text string"):
        scan(b"\xa1\x61d\x81" + inner, PAYLOAD_CAPS)


def test_other_caps_may_allow_integer_keys() -> None:
    header = cbor2.dumps({1: -8, -65537: 1}, canonical=True)
    assert decode_bounded(header, CborCaps(max_depth=1, max_items=16)) == {1: -8, -65537: 1}
    with pytest.raises(DecodeError):
        decode_bounded(header, PAYLOAD_CAPS)
