"""Values of the node-to-node protocol shared by its server side (whnode.peer.routes) and
the service that answers it, without importing aiohttp."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FillResult", "Sender"]


@dataclass(frozen=True, slots=True)
class FillResult:
    """An owner's answer to a fill."""

    data: bytes
    fresh_until_ms: int
    stale: bool
    path: str


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a record over the peer API: the node id it announces and its address."""

    node_id: bytes | None
    """The announced node id (None when the header is missing or malformed)."""
    host: str | None
    """The remote address of the request."""

    @classmethod
    def from_header(cls, header: str | None, host: str | None) -> Sender:
        try:
            node_id = bytes.fromhex(header or "")
        except ValueError:
            node_id = b""
        return cls(node_id if len(node_id) == 20 else None, host)
