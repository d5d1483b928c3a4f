"""Exceptions of the node-to-node layer.

::

    RemoteError
    └── PeerError                   a peer's HTTP answer could not be used
        ├── PeerUnreachable         connection refused, reset or timed out
        ├── PeerBadAnswer           an answer of the wrong shape, size or type
        └── PeerRefused             the peer answered with a problem document

    WhnodeError
    └── PeerProblem                 raised by this node's service to answer a peer with a
                                    given status and problem kind (whnode.peer.routes)
"""

from __future__ import annotations

from whnode.errors import RemoteError, WhnodeError
from whnode.peer.wire import ErrorKind

__all__ = ["PeerBadAnswer", "PeerError", "PeerProblem", "PeerRefused", "PeerUnreachable"]


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


class PeerProblem(WhnodeError):
    """Raised by a PeerHandler to answer with a given status and error kind."""

    def __init__(self, message: str, *, status: int, kind: ErrorKind) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
