"""``MemoryNetwork``: the DHT and the peer protocol's in-memory twins.

Members are node ids with a contact and, once attached, a ``PeerHandler`` (a
``MenuService``). ``owners(node_id)`` is that node's ``whnode.abc.OwnerLookup``: the owners
of a key are the members closest to it by XOR, as a converged DHT would find them.
``peers(node_id)`` is its ``whnode.abc.PeerTransport``: each call goes straight into the
target member's handler, as whnode.peer.routes would pass it, and errors come back as the
``PeerError`` the HTTP client would raise (a member marked down is unreachable). Wiring
several services this way tests the owner and fill protocol in memory, on a hand-driven
clock; tests/network runs the same over real HTTP and UDP.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from whnode.dht.contact import Contact, NodeId
from whnode.errors import WhnodeError
from whnode.peer.client import FillAnswer, PeerAddress
from whnode.peer.exceptions import PeerRefused, PeerUnreachable
from whnode.peer.routes import PeerHandler, error_status
from whnode.peer.types import Sender

__all__ = ["MemoryNetwork", "MemoryOwners", "MemoryPeers"]


@dataclass
class _Member:
    contact: Contact
    handler: PeerHandler | None = None


class MemoryNetwork:
    """Nodes wired in memory (module docstring)."""

    def __init__(self) -> None:
        self._members: dict[bytes, _Member] = {}
        self.down: set[bytes] = set()
        """Members that do not answer: peer calls to them raise PeerUnreachable (they are
        still listed as owners, as a routing table that has not noticed yet would)."""
        self.calls: Counter[tuple[str, bytes]] = Counter()
        """Peer calls made, by (operation, target node id)."""
        self.unreachable_notes: list[bytes] = []
        """Node ids reported by ``note_unreachable``, in order."""

    def add(self, node_id: bytes, *, routing_only: bool = False) -> Contact:
        """A new member at its own address (127.0.0.N)."""
        index = len(self._members) + 2
        host = f"127.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"
        contact = Contact(NodeId(node_id), host, 8468, routing_only)
        self._members[bytes(node_id)] = _Member(contact)
        return contact

    def attach(self, node_id: bytes, handler: PeerHandler) -> None:
        """Answer peer calls to ``node_id`` with ``handler``."""
        self._members[bytes(node_id)].handler = handler

    def contact(self, node_id: bytes) -> Contact:
        return self._members[bytes(node_id)].contact

    def contacts(self) -> list[Contact]:
        return [member.contact for member in self._members.values()]

    def closest(self, key: bytes, count: int) -> list[Contact]:
        """The ``count`` owner-capable members closest to ``key``, closest first."""
        target = int.from_bytes(key, "big")
        capable = [contact for contact in self.contacts() if not contact.routing_only]
        capable.sort(key=lambda contact: int.from_bytes(contact.node_id, "big") ^ target)
        return capable[:count]

    def owners(self, node_id: bytes) -> MemoryOwners:
        return MemoryOwners(self, bytes(node_id))

    def peers(self, node_id: bytes) -> MemoryPeers:
        return MemoryPeers(self, bytes(node_id))

    def handler(self, operation: str, peer: PeerAddress) -> PeerHandler:
        """The handler behind ``peer``, or PeerUnreachable."""
        name = f"{peer.host}:{peer.port}"
        node_id = next(
            (
                member_id
                for member_id, member in self._members.items()
                if member.contact.host == peer.host and member.contact.port == peer.port
            ),
            None,
        )
        if node_id is None:
            raise PeerUnreachable("no such member", peer=name)
        self.calls[(operation, node_id)] += 1
        handler = self._members[node_id].handler
        if node_id in self.down or handler is None:
            raise PeerUnreachable("connection refused (down)", peer=name)
        return handler


class MemoryOwners:
    """One member's view of the DHT (whnode.abc.OwnerLookup)."""

    def __init__(self, network: MemoryNetwork, node_id: bytes) -> None:
        self._network = network
        self._node_id = node_id
        self.lookups = 0

    @property
    def node_id(self) -> bytes:
        return self._node_id

    async def find_owners(
        self, key: bytes, count: int, *, fresh: bool = False
    ) -> Sequence[Contact]:
        self.lookups += 1
        return self._network.closest(key, count)

    def contacts(self) -> Sequence[Contact]:
        return [contact for contact in self._network.contacts() if contact.node_id != self._node_id]

    def note_unreachable(self, contact: Contact) -> None:
        self._network.unreachable_notes.append(bytes(contact.node_id))


class MemoryPeers:
    """One member's peer client (whnode.abc.PeerTransport)."""

    def __init__(self, network: MemoryNetwork, node_id: bytes) -> None:
        self._network = network
        self._node_id = node_id

    def _sender(self) -> Sender:
        return Sender(self._node_id, self._network.contact(self._node_id).host)

    async def get_record(
        self, peer: PeerAddress, dispensary_id: str, *, at_ms: int | None = None
    ) -> bytes | None:
        handler = self._network.handler("get", peer)
        with _as_peer_errors(peer):
            return await handler.peer_get(dispensary_id, at_ms)

    async def put_record(self, peer: PeerAddress, dispensary_id: str, data: bytes) -> bool:
        handler = self._network.handler("put", peer)
        with _as_peer_errors(peer):
            return await handler.peer_put(dispensary_id, data, self._sender())

    async def fill(
        self,
        peer: PeerAddress,
        dispensary_id: str,
        *,
        max_age: float | None,
        budget: float,
        attempt: int = 0,
        requested_at_ms: int | None = None,
        hedge: bool = False,
    ) -> FillAnswer:
        handler = self._network.handler("hedge" if hedge else "fill", peer)
        with _as_peer_errors(peer):
            async with asyncio.timeout(budget):
                result = await handler.peer_fill(
                    dispensary_id,
                    max_age,
                    budget,
                    attempt=attempt,
                    requested_at_ms=requested_at_ms,
                    hedge_from=self._node_id if hedge else None,
                )
            return FillAnswer(
                data=result.data,
                fresh_until_ms=result.fresh_until_ms,
                stale=result.stale,
                path=result.path,
            )

    async def history(self, peer: PeerAddress, dispensary_id: str, limit: int) -> list[bytes]:
        handler = self._network.handler("history", peer)
        with _as_peer_errors(peer):
            return await handler.peer_history(dispensary_id, limit)


class _as_peer_errors:  # a with-statement helper, named like contextlib's
    """Turn what a handler raises into what the HTTP client raises for its answer."""

    def __init__(self, peer: PeerAddress) -> None:
        self._name = f"{peer.host}:{peer.port}"

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, TimeoutError):
            raise PeerUnreachable("timed out", peer=self._name) from exc
        if isinstance(exc, WhnodeError):
            status, error_kind = error_status(exc)
            raise PeerRefused(
                str(exc), peer=self._name, status=status, kind=error_kind.value
            ) from exc
