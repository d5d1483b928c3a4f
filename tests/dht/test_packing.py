"""The strict msgpack codec agrees with umsgpack (rpcudp's codec) on the subset it supports,
and refuses everything else with InvalidMessage only."""

from __future__ import annotations

import pytest
import umsgpack  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from whnode.dht import InvalidMessage
from whnode.dht.packing import MAX_DEPTH, Packed, packb, unpackb

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=300)
    | st.binary(max_size=300)
)
values = st.recursive(scalars, lambda children: st.lists(children, max_size=20), max_leaves=60)


@given(values)
def test_same_bytes_as_umsgpack_and_round_trip(value: object) -> None:
    packed = packb(value)
    assert packed == umsgpack.packb(value)
    assert unpackb(packed) == value


@given(values)
def test_reads_what_umsgpack_writes(value: object) -> None:
    assert unpackb(umsgpack.packb(value)) == value


@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_invalid_message(data: bytes) -> None:
    try:
        value = unpackb(data)
    except InvalidMessage as exc:
        reason = exc.reason
        assert reason == "msgpack"
        return
    # whatever it accepts, umsgpack decodes to the same value
    assert umsgpack.unpackb(data) == value


@pytest.mark.parametrize(
    "data",
    [
        b"\x81\xa1a\x01",  # map
        b"\xcb" + bytes(8),  # float 64
        b"\xd4\x01\x00",  # fixext
        b"\xc1",  # never used
        b"\xc4\x05abc",  # bin 8 shorter than declared
        b"\xdd\xff\xff\xff\xff",  # array claiming 4 billion items
        b"\xa2\xff\xfe",  # invalid UTF-8
        b"\x01\x02",  # trailing bytes
        b"",
        b"\x91" * (MAX_DEPTH + 1) + b"\x00",  # too deep
        b"\xcd\x01",  # truncated uint 16
    ],
)
def test_refused_encodings(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        unpackb(data)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert unpackb(b"\x91" * MAX_DEPTH + b"\x00") is not None


def test_packed_values_are_inserted_verbatim() -> None:
    inner = packb([b"id", 7])
    assert packb([1, Packed(inner)]) == packb([1, [b"id", 7]])


def test_unsupported_values_are_a_local_bug() -> None:
    with pytest.raises(TypeError):
        packb({"a": 1})
    with pytest.raises(TypeError):
        packb(1.5)
