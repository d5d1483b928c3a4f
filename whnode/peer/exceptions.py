"""Exceptions of the node-to-node layer.

::

    RemoteError
    └── PeerError                   a peer's HTTP answer could not be used
        ├── PeerUnreachable         connection refused, reset or timed out
        ├── PeerBadAnswer           an answer of the wrong shape, size or type
        └── PeerRefused             the peer answered with a problem document
"""

from __future__ import annotations

from whnode.errors import RemoteError

__all__ = ["PeerBadAnswer", "PeerError", "PeerRefused", "PeerUnreachable"]


class PeerError(RemoteError):
    """A peer could not give a usable answer."""

    def __init__(self, message: str, *, peer: str) -> None:
        super().__init__(f"{peer}: {message}")
        self.peer = peer


class PeerUnreachable(PeerError):
    """The peer did not answer (refused, reset or timed out)."""


class PeerBadAnswer(PeerError):
    """The peer answered something unusable."""


class PeerRefused(PeerError):
    """The peer answered with an error; ``kind`` names it (see whnode.peer.wire.ErrorKind)."""

    def __init__(self, message: str, *, peer: str, status: int, kind: str) -> None:
        super().__init__(message, peer=peer)
        self.status = status
        self.kind = kind
