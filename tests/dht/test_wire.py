"""The wire format: every decoder accepts only well-formed, identity-bound messages and
raises nothing but InvalidMessage on anything else."""

from __future__ import annotations

import hashlib
import os

import pytest
import umsgpack  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from whnode import limits
from whnode.dht import Contact, IdentityMismatch, InvalidMessage, NodeId, PublicKey, node_id_for
from whnode.dht.wire import (
    FLAG_ROUTING_ONLY,
    FrameKind,
    Hello,
    RpcName,
    decode_contact,
    decode_find_node_args,
    decode_find_node_reply,
    decode_frame,
    decode_ping_args,
    decode_ping_reply,
    decode_request,
    encode_contact,
    encode_frame,
    encode_request,
)

ID = bytes(range(20))
"""A fixed node id (parameters must be equal on every xdist worker)."""


def hello(routing_only: bool = False) -> Hello:
    key = PublicKey(os.urandom(32))
    return Hello(node_id_for(key), key, routing_only)


def test_node_id_is_sha1_of_public_key() -> None:
    key = PublicKey(os.urandom(32))
    assert node_id_for(key) == hashlib.sha1(key).digest()


def test_request_round_trip() -> None:
    me = hello(routing_only=True)
    target = os.urandom(20)
    datagram = encode_request(os.urandom(20), RpcName.FIND_NODE, [*me.encode(), target])
    frame = decode_frame(datagram)
    assert frame.kind is FrameKind.REQUEST
    request = decode_request(frame.body)
    assert request.name == "find_node"
    assert decode_find_node_args(request.args) == (me, target)
    assert decode_ping_args(me.encode()) == me
    assert decode_ping_args(me.encode()).routing_only


def test_find_node_reply_round_trip_ipv4_and_ipv6() -> None:
    me = hello()
    contacts = [
        Contact(NodeId(os.urandom(20)), "192.0.2.7", 8468),
        Contact(NodeId(os.urandom(20)), "2001:db8::1", 65535, routing_only=True),
    ]
    body = [*me.encode(), [encode_contact(contact) for contact in contacts]]
    frame = decode_frame(encode_frame(FrameKind.REPLY, os.urandom(20), body))
    responder, decoded = decode_find_node_reply(frame.body, allow_loopback=False)
    assert responder == me
    assert decoded == contacts
    assert [contact.routing_only for contact in decoded] == [False, True]


def test_largest_find_node_reply_fits_in_one_datagram() -> None:
    me = hello(routing_only=True)
    worst = [
        encode_contact(
            Contact(
                NodeId(os.urandom(20)),
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                65535,
                routing_only=True,
            )
        )
        for _ in range(limits.MAX_CONTACTS_PER_REPLY)
    ]
    datagram = encode_frame(FrameKind.REPLY, os.urandom(20), [*me.encode(), worst])
    assert len(datagram) <= limits.MAX_DATAGRAM_BYTES
    assert decode_find_node_reply(decode_frame(datagram).body, allow_loopback=False)[1]


@pytest.mark.parametrize("length", [0, 1, 19, 21, 64])
def test_wrong_length_ids_are_refused(length: int) -> None:
    me = hello()
    with pytest.raises(InvalidMessage) as caught:
        decode_ping_args([os.urandom(length), me.public_key, 0])
    assert caught.value.reason == "node_id"
    with pytest.raises(InvalidMessage) as caught:
        decode_find_node_args([*me.encode(), os.urandom(length)])
    assert caught.value.reason == "node_id"
    with pytest.raises(InvalidMessage):
        decode_contact([os.urandom(length), bytes([192, 0, 2, 1]), 1, 0], allow_loopback=False)


def test_id_not_bound_to_key_is_refused() -> None:
    me = hello()
    other = hello()
    with pytest.raises(IdentityMismatch):
        decode_ping_args([other.node_id, me.public_key, 0])
    with pytest.raises(IdentityMismatch):
        decode_ping_reply([me.node_id, other.public_key, 0])
    with pytest.raises(IdentityMismatch):
        decode_find_node_reply([other.node_id, me.public_key, 0, []], allow_loopback=True)


def test_wrong_length_public_key_is_refused() -> None:
    with pytest.raises(InvalidMessage):
        decode_ping_args([ID, os.urandom(31), 0])


@pytest.mark.parametrize(
    "item",
    [
        [ID, bytes([0, 0, 0, 0]), 8468, 0],  # unspecified
        [ID, bytes([224, 0, 0, 1]), 8468, 0],  # multicast
        [ID, bytes([255, 255, 255, 255]), 8468, 0],  # broadcast
        [ID, bytes([192, 0, 2, 1]), 0, 0],  # port 0
        [ID, bytes([192, 0, 2, 1]), 65536, 0],  # port too large
        [ID, bytes([192, 0, 2, 1]), True, 0],  # a bool is not a port
        [ID, bytes([192, 0, 2]), 8468, 0],  # 3-byte address
        [ID, "192.0.2.1", 8468, 0],  # text address
        [ID, bytes([192, 0, 2, 1]), 8468],  # missing flags
        [ID, bytes([192, 0, 2, 1]), 8468, -1],  # negative flags
        {"id": ID},
    ],
)
def test_invalid_contacts_are_refused(item: object) -> None:
    with pytest.raises(InvalidMessage):
        decode_contact(item, allow_loopback=True)


def test_loopback_contacts_only_from_loopback_peers() -> None:
    item = [os.urandom(20), bytes([127, 0, 0, 1]), 8468, FLAG_ROUTING_ONLY]
    assert decode_contact(item, allow_loopback=True).host == "127.0.0.1"
    with pytest.raises(InvalidMessage):
        decode_contact(item, allow_loopback=False)


def test_more_than_twenty_contacts_are_refused() -> None:
    me = hello()
    items = [
        encode_contact(Contact(NodeId(os.urandom(20)), "192.0.2.1", 1000 + index))
        for index in range(limits.MAX_CONTACTS_PER_REPLY + 1)
    ]
    with pytest.raises(InvalidMessage):
        decode_find_node_reply([*me.encode(), items], allow_loopback=False)
    assert decode_find_node_reply([*me.encode(), items[:-1]], allow_loopback=False)


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x00",
        b"\x00" + bytes(20),
        b"\x07" + bytes(20) + umsgpack.packb(["ping", []]),
        b"\x00" + bytes(20) + b"\xc1",  # reserved msgpack code
        b"\x00" + bytes(20) + b"\xdd\xff\xff\xff\xff",  # array claiming 4 billion items
        b"\x00" + bytes(20) + b"\x91" * 1300,  # deep nesting
        b"\x00" + bytes(20) + bytes(limits.MAX_DATAGRAM_BYTES),  # oversize
    ],
)
def test_malformed_frames_raise_invalid_message(datagram: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_frame(datagram)


def _every_decoder(body: object) -> None:
    for decode in (
        decode_request,
        decode_ping_reply,
        lambda value: decode_find_node_reply(value, allow_loopback=True),
        lambda value: decode_contact(value, allow_loopback=False),
    ):
        try:
            decode(body)
        except InvalidMessage:
            pass
    if isinstance(body, list):
        for decode_args in (decode_ping_args, decode_find_node_args):
            try:
                decode_args(body)
            except InvalidMessage:
                pass


@given(st.binary(max_size=limits.MAX_DATAGRAM_BYTES + 10))
def test_random_bytes_only_raise_invalid_message(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except InvalidMessage:
        return
    _every_decoder(frame.body)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.binary(max_size=40)
    | st.sampled_from([os.urandom(20), os.urandom(32), bytes(4), b"\x7f\x00\x00\x01"]),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=40,
)


@given(msgpack_values)
def test_random_structures_only_raise_invalid_message(body: object) -> None:
    _every_decoder(body)
    datagram = b"\x01" + bytes(20) + umsgpack.packb(body)
    try:
        frame = decode_frame(datagram)
    except InvalidMessage:
        return  # maps, floats and oversize bodies stop at the frame
    _every_decoder(frame.body)


@given(st.lists(msgpack_values, min_size=3, max_size=5))
def test_hello_shaped_garbage_only_raises_invalid_message(items: list[object]) -> None:
    _every_decoder(items)
    _every_decoder([*hello().encode(), items])
