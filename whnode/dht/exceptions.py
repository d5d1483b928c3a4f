"""Errors raised by the DHT layer.

::

    WhnodeError
    ├── UsageError
    │   └── DhtUsageError        the caller misused the DHT API (not listening, bad key length)
    └── RemoteError
        └── DhtError             routing failed because something outside misbehaved
            ├── InvalidMessage   a datagram or a reply broke the wire rules (``reason`` label)
            │   └── IdentityMismatch   an id is not SHA-1 of the key sent with it, or is not
            │                          the id that was asked for
            └── PeersFileError   the persisted peer list is unreadable or malformed

Foreign exceptions (umsgpack, OSError from the socket, json) are translated here at the layer
edge with ``raise ... from exc``; nothing from ``kademlia`` or ``rpcudp`` escapes ``whnode.dht``.
"""

from __future__ import annotations

from whnode.errors import RemoteError, UsageError

__all__ = [
    "DhtError",
    "DhtUsageError",
    "IdentityMismatch",
    "InvalidMessage",
    "PeersFileError",
]


class DhtUsageError(UsageError):
    """The DHT API was misused by local code (a bug, not a peer's fault)."""


class DhtError(RemoteError):
    """Routing failed because a peer, the network or a file misbehaved."""


class InvalidMessage(DhtError):
    """A datagram or an RPC reply broke the wire rules.

    ``reason`` is a short fixed label (``frame``, ``msgpack``, ``shape``, ``node_id``, ...) used
    as a counter and log category; the message carries the detail.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class IdentityMismatch(InvalidMessage):
    """A node id is not the SHA-1 of the public key sent with it, or not the id asked for."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("identity", detail)


class PeersFileError(DhtError):
    """The persisted peer list could not be read or is malformed."""
