"""The DHT layer: an identity-bound, hardened Kademlia node (the only code importing kademlia).

See docs/dht.md for the wire format and for what was fixed in the kademlia package.
"""

from __future__ import annotations

from whnode.dht.config import DhtConfig
from whnode.dht.contact import Contact, NodeId, PublicKey, node_id_for, xor_distance
from whnode.dht.exceptions import (
    DhtError,
    DhtUsageError,
    IdentityMismatch,
    InvalidMessage,
    PeersFileError,
)
from whnode.dht.node import DhtNode
from whnode.dht.statistics import DhtStatistics

__all__ = [
    "Contact",
    "DhtConfig",
    "DhtError",
    "DhtNode",
    "DhtStatistics",
    "DhtUsageError",
    "IdentityMismatch",
    "InvalidMessage",
    "NodeId",
    "PeersFileError",
    "PublicKey",
    "node_id_for",
    "xor_distance",
]
