"""Keys and identifiers: Ed25519 signing keys, node ids, routing keys, content hashes.

Bytes that mean different things have different types (``NewType``): a public key is not a
node id, and a routing key is not a content hash.
"""

from __future__ import annotations

import hashlib
from typing import Final, NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from whnode.record.exceptions import ModelError

__all__ = [
    "CONTENT_HASH_BYTES",
    "NODE_ID_BYTES",
    "PUBLIC_KEY_BYTES",
    "ROUTING_PREFIX",
    "SIGNATURE_BYTES",
    "ContentHash",
    "NodeId",
    "PublicKey",
    "RoutingKey",
    "SigningKey",
    "has_small_order",
    "node_id_for",
    "routing_key",
    "verify_signature",
]

PublicKey = NewType("PublicKey", bytes)
"""A raw 32-byte Ed25519 public key."""
NodeId = NewType("NodeId", bytes)
"""A 20-byte DHT node id: SHA-1 of the node's public key."""
RoutingKey = NewType("RoutingKey", bytes)
"""A 20-byte DHT key: SHA-1 of ROUTING_PREFIX and a dispensary id."""
ContentHash = NewType("ContentHash", bytes)
"""SHA-256 of a menu's canonical CBOR without fetch time and statistics."""

PUBLIC_KEY_BYTES: Final = 32
PRIVATE_KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
NODE_ID_BYTES: Final = 20
CONTENT_HASH_BYTES: Final = 32
ROUTING_PREFIX: Final = b"whnode/dispensary/v1\x00"
"""Versioned prefix of every routing key: a new scheme changes the prefix, not the ids."""

_FIELD_PRIME: Final = 2**255 - 19
_ORDER_8_Y: Final = 2707385501144840649318225287225658788936804267575313519463743609750303402022
_SMALL_ORDER_Y: Final = frozenset(
    {
        0,  # order 4
        1,  # the neutral point
        _FIELD_PRIME - 1,  # order 2
        _ORDER_8_Y,  # order 8
        _FIELD_PRIME - _ORDER_8_Y,  # order 8
    }
)
"""The y coordinates of the eight points of small order of edwards25519."""


def node_id_for(public_key: bytes) -> NodeId:
    """The node id bound to ``public_key``: SHA-1 of its 32 raw bytes."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ModelError("a public key is 32 raw bytes")
    return NodeId(hashlib.sha1(public_key).digest())


def routing_key(dispensary_id: str) -> RoutingKey:
    """The DHT key of a dispensary: SHA-1 over the versioned prefix and the UTF-8 id."""
    return RoutingKey(hashlib.sha1(ROUTING_PREFIX + dispensary_id.encode("utf-8")).digest())


class SigningKey:
    """An Ed25519 private key (wraps ``cryptography``'s)."""

    __slots__ = ("_private", "_public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self._public = PublicKey(
            private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @property
    def public_key(self) -> PublicKey:
        """The raw 32-byte public key."""
        return self._public

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key (from the operating system's CSPRNG)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> SigningKey:
        """From the 32-byte raw private key (the RFC 8032 seed)."""
        if not isinstance(data, bytes) or len(data) != PRIVATE_KEY_BYTES:
            raise ModelError(f"an Ed25519 private key is {PRIVATE_KEY_BYTES} raw bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(data))

    def private_bytes(self) -> bytes:
        """The 32-byte raw private key (seed). Keep it secret."""
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def node_id(self) -> NodeId:
        """SHA-1 of the public key."""
        return node_id_for(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data`` (deterministic, RFC 8032)."""
        return self._private.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()[:16]}...)"


def has_small_order(public_key: bytes) -> bool:
    """True when ``public_key`` encodes one of the eight points of small order.

    For such a key, the signature (R = the neutral point, S = 0) verifies, under the
    cofactorless check that OpenSSL makes, for about one message in eight, and for every
    message under the neutral point itself: a key that anyone can sign with, whose records
    prove nothing about who made them. The points are recognized by their y coordinate
    (sign bit ignored, non-canonical encodings reduced), as libsodium does.
    """
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    return y % _FIELD_PRIME in _SMALL_ORDER_Y


def verify_signature(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``data`` by ``public_key``.

    Keys of small order (``has_small_order``) never verify.
    """
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    if has_small_order(public_key):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
