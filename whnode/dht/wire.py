"""The DHT wire format: rpcudp framing with whnode's validated, identity-bound RPCs.

This module owns every rule about what a datagram may contain; it is pure (bytes in, values
out, no I/O, no clock) so that it can be fuzzed. docs/dht.md describes the format for other
implementations.

Framing (rpcudp 5)::

    datagram = kind (1 byte: 0x00 request, 0x01 reply) || msg_id (20 bytes) || msgpack body
    request body = [name: str, args: array]
    reply body   = any msgpack value (below)

RPCs (``hello`` = ``[node_id: bin 20, public_key: bin 32, flags: uint]``,
``node_id == SHA-1(public_key)`` or the message is refused; flag bit 0 = routing only)::

    ping      args [*hello]            -> reply [*hello]
    find_node args [*hello, target]    -> reply [*hello, [contact, ...]]  (at most 20)
    store     args anything            -> reply false (the open store is disabled)

    contact = [node_id: bin 20, ip: bin 4 | bin 16, port: uint 1..65535, flags: uint]
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from whnode import limits
from whnode.dht.contact import (
    ADDRESS_CACHE_ENTRIES,
    NODE_ID_BYTES,
    PUBLIC_KEY_BYTES,
    Contact,
    NodeId,
    PublicKey,
    node_id_for,
    packed_address,
)
from whnode.dht.exceptions import IdentityMismatch, InvalidMessage
from whnode.dht.packing import Packed, packb, unpackb

__all__ = [
    "FLAG_ROUTING_ONLY",
    "MSG_ID_BYTES",
    "Frame",
    "FrameKind",
    "Hello",
    "Request",
    "RpcName",
    "decode_body",
    "decode_contact",
    "decode_find_node_args",
    "decode_find_node_reply",
    "decode_frame",
    "decode_header",
    "decode_ping_args",
    "decode_ping_reply",
    "decode_request",
    "encode_contact",
    "encode_frame",
    "encode_request",
    "packed_contact",
]

MSG_ID_BYTES = 20
"""Length of rpcudp's message id (request and reply share it)."""
FRAME_HEADER_BYTES = 1 + MSG_ID_BYTES
FLAG_ROUTING_ONLY = 0x01
"""Flag bit: the node routes but never owns records. Unknown bits are ignored."""
MAX_FLAGS = 0xFF


class FrameKind(enum.IntEnum):
    """rpcudp's first byte."""

    REQUEST = 0x00
    REPLY = 0x01


class RpcName(enum.StrEnum):
    """The only RPCs a whnode node answers."""

    PING = "ping"
    FIND_NODE = "find_node"
    STORE = "store"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded datagram."""

    kind: FrameKind
    msg_id: bytes
    body: object


@dataclass(frozen=True, slots=True)
class Request:
    """A request body: the RPC name and its positional arguments (not yet validated)."""

    name: str
    args: list[object]


@dataclass(frozen=True, slots=True)
class Hello:
    """Who a node says it is, sent in every request and every reply.

    Construction checks the binding ``node_id == SHA-1(public_key)``.
    """

    node_id: NodeId
    public_key: PublicKey
    routing_only: bool = False

    def __post_init__(self) -> None:
        if len(self.node_id) != NODE_ID_BYTES or len(self.public_key) != PUBLIC_KEY_BYTES:
            raise InvalidMessage("node_id", "wrong id or key length")
        if node_id_for(self.public_key) != self.node_id:
            raise IdentityMismatch("node id is not SHA-1 of the public key")

    @property
    def flags(self) -> int:
        return FLAG_ROUTING_ONLY if self.routing_only else 0

    def encode(self) -> list[object]:
        """The three hello items as sent on the wire."""
        return [self.node_id, self.public_key, self.flags]

    def contact(self, host: str, port: int) -> Contact:
        """This node as a contact at the address its datagram came from."""
        return Contact(self.node_id, host, port, routing_only=self.routing_only)


# --------------------------------------------------------------------------- framing
def encode_frame(kind: FrameKind, msg_id: bytes, body: object) -> bytes:
    """Frame a body; the caller checks the result against ``limits.MAX_DATAGRAM_BYTES``."""
    if len(msg_id) != MSG_ID_BYTES:
        raise ValueError("a message id is 20 bytes")
    return bytes((kind,)) + msg_id + packb(body)


def encode_request(msg_id: bytes, name: RpcName, args: Sequence[object]) -> bytes:
    return encode_frame(FrameKind.REQUEST, msg_id, [str(name), list(args)])


def decode_header(datagram: bytes) -> tuple[FrameKind, bytes]:
    """Kind and message id of a datagram (reasons ``size`` and ``frame``)."""
    if len(datagram) > limits.MAX_DATAGRAM_BYTES:
        raise InvalidMessage("size", f"{len(datagram)} bytes")
    if len(datagram) <= FRAME_HEADER_BYTES:
        raise InvalidMessage("frame", "too short")
    try:
        kind = FrameKind(datagram[0])
    except ValueError as exc:
        raise InvalidMessage("frame", f"unknown kind {datagram[0]:#x}") from exc
    return kind, datagram[1:FRAME_HEADER_BYTES]


def decode_body(datagram: bytes) -> object:
    """The msgpack body after the header (reason ``msgpack``)."""
    return unpackb(datagram[FRAME_HEADER_BYTES:])


def decode_frame(datagram: bytes) -> Frame:
    """Split a datagram into kind, message id and msgpack body.

    Raises InvalidMessage (reasons ``size``, ``frame``, ``msgpack``) and nothing else.
    """
    kind, msg_id = decode_header(datagram)
    return Frame(kind, msg_id, decode_body(datagram))


def decode_request(body: object) -> Request:
    if not isinstance(body, list) or len(body) != 2:
        raise InvalidMessage("shape", "a request is [name, args]")
    name, args = body
    if not isinstance(name, str) or not isinstance(args, list):
        raise InvalidMessage("shape", "a request is [name: str, args: array]")
    return Request(name, args)


# --------------------------------------------------------------------------- fields
def _bytes_field(value: object, length: int, what: str) -> bytes:
    if type(value) is not bytes:
        raise InvalidMessage("shape", f"{what} is not binary")
    if len(value) != length:
        raise InvalidMessage("node_id" if length == NODE_ID_BYTES else "shape", f"{what} length")
    return value


def _uint_field(value: object, high: int, what: str) -> int:
    if type(value) is not int or not 0 <= value <= high:
        raise InvalidMessage("shape", f"{what} is not an integer in 0..{high}")
    return value


def _decode_hello(items: Sequence[object]) -> Hello:
    node_id = _bytes_field(items[0], NODE_ID_BYTES, "node id")
    public_key = _bytes_field(items[1], PUBLIC_KEY_BYTES, "public key")
    flags = _uint_field(items[2], MAX_FLAGS, "flags")
    return Hello(NodeId(node_id), PublicKey(public_key), bool(flags & FLAG_ROUTING_ONLY))


def decode_ping_args(args: Sequence[object]) -> Hello:
    if len(args) != 3:
        raise InvalidMessage("shape", "ping takes [node_id, public_key, flags]")
    return _decode_hello(args)


def decode_find_node_args(args: Sequence[object]) -> tuple[Hello, NodeId]:
    if len(args) != 4:
        raise InvalidMessage("shape", "find_node takes [node_id, public_key, flags, target]")
    hello = _decode_hello(args[:3])
    return hello, NodeId(_bytes_field(args[3], NODE_ID_BYTES, "target"))


def decode_ping_reply(body: object) -> Hello:
    if not isinstance(body, list) or len(body) != 3:
        raise InvalidMessage("shape", "a ping reply is [node_id, public_key, flags]")
    return _decode_hello(body)


def _checked_ip(packed: bytes, *, allow_loopback: bool) -> str:
    host, problem = _unpack_address(packed)
    if problem == "loopback":
        if not allow_loopback:
            raise InvalidMessage("address", "loopback contact from a non-loopback peer")
    elif problem is not None:
        raise InvalidMessage("address", problem)
    return host


@lru_cache(maxsize=ADDRESS_CACHE_ENTRIES)
def _unpack_address(packed: bytes) -> tuple[str, str | None]:
    """(canonical host, None | "loopback" | why the address is refused)."""
    if len(packed) not in (4, 16):
        return "", "an IP address is 4 or 16 bytes"
    ip = ipaddress.ip_address(packed)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return str(ip), "loopback"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return str(ip), f"unroutable address {ip}"
    return str(ip), None


def decode_contact(item: object, *, allow_loopback: bool) -> Contact:
    """One contact from a find_node reply.

    ``allow_loopback`` is true only when the reply itself came from a loopback address: a
    remote peer must not steer us into sending datagrams to our own host's services.
    """
    if not isinstance(item, list) or len(item) != 4:
        raise InvalidMessage("shape", "a contact is [node_id, ip, port, flags]")
    node_id = _bytes_field(item[0], NODE_ID_BYTES, "contact id")
    if type(item[1]) is not bytes:
        raise InvalidMessage("shape", "contact ip is not binary")
    host = _checked_ip(item[1], allow_loopback=allow_loopback)
    port = _uint_field(item[2], 65535, "port")
    if port == 0:
        raise InvalidMessage("address", "port 0")
    flags = _uint_field(item[3], MAX_FLAGS, "flags")
    return Contact(NodeId(node_id), host, port, routing_only=bool(flags & FLAG_ROUTING_ONLY))


def encode_contact(contact: Contact) -> list[object]:
    flags = FLAG_ROUTING_ONLY if contact.routing_only else 0
    return [contact.node_id, packed_address(contact.host), contact.port, flags]


def packed_contact(contact: Contact) -> Packed:
    """``encode_contact`` already packed (the same contacts fill many replies)."""
    return _packed_contact(contact.node_id, contact.host, contact.port, contact.routing_only)


@lru_cache(maxsize=ADDRESS_CACHE_ENTRIES)
def _packed_contact(node_id: bytes, host: str, port: int, routing_only: bool) -> Packed:
    # keyed by every field: Contact equality ignores routing_only
    flags = FLAG_ROUTING_ONLY if routing_only else 0
    return Packed(packb([node_id, packed_address(host), port, flags]))


def decode_find_node_reply(body: object, *, allow_loopback: bool) -> tuple[Hello, list[Contact]]:
    """The responder's hello and its contacts (at most ``limits.MAX_CONTACTS_PER_REPLY``).

    One malformed contact makes the whole reply invalid: a peer that sends it is broken or
    hostile, and nothing else it says is trusted.
    """
    if not isinstance(body, list) or len(body) != 4:
        raise InvalidMessage("shape", "a find_node reply is [node_id, public_key, flags, list]")
    hello = _decode_hello(body[:3])
    items = body[3]
    if not isinstance(items, list):
        raise InvalidMessage("shape", "contacts are an array")
    if len(items) > limits.MAX_CONTACTS_PER_REPLY:
        raise InvalidMessage("shape", f"{len(items)} contacts")
    contacts = [decode_contact(item, allow_loopback=allow_loopback) for item in items]
    return hello, contacts
