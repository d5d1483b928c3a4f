"""The seams of a node: what the read-through service needs from each part beneath it.

``MenuService`` (whnode.service.core) is typed against these protocols, not against the
classes that implement them in production, so that it runs in unit tests on in-memory twins
(the shipped test kit, whnode.testing) with a hand-driven clock: no sockets, no SQLite, no
upstream, no sleeping.

=================  =====================================  ========================================
seam               in production                          in memory (whnode.testing)
=================  =====================================  ========================================
``RecordStore``    ``whnode.store.durable.DurableStore``  ``memory_store.MemoryStore``
``HotRecords``     ``whnode.store.hot.HotCache``          ``HotCache`` itself (no I/O already)
``PeerTransport``  ``whnode.peer.client.PeerClient``      ``memory_network.MemoryNetwork.peers``
``OwnerLookup``    ``whnode.dht.DhtNode``                 ``memory_network.MemoryNetwork.owners``
``MenuFetcher``    ``whnode.upstream.fetcher.Fetcher``    ``memory_fetcher.ScriptedFetcher``
=================  =====================================  ========================================

Each protocol lists only what the service uses. Records crossing a seam are bytes or
``StoredRecord``: whatever a store, a cache or a peer gives back is verified by the service
(whnode.record.acceptance) before it becomes an answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from whnode.dht.contact import Contact
    from whnode.peer.client import FillAnswer, PeerAddress
    from whnode.store.types import StoredRecord
    from whnode.upstream.pool import ParsedMenu

__all__ = ["HotRecords", "MenuFetcher", "OwnerLookup", "PeerTransport", "RecordStore"]


class RecordStore(Protocol):
    """The durable store of snapshots, with history per dispensary."""

    async def put(self, record: StoredRecord) -> bool:
        """Keep ``record``; True when it was not held before."""
        ...

    async def newest(self, dispensary_id: str) -> StoredRecord | None: ...

    async def at(self, dispensary_id: str, t_ms: int) -> StoredRecord | None:
        """The snapshot current at ``t_ms`` (the newest fetched at or before it)."""
        ...

    async def history(self, dispensary_id: str, limit: int) -> list[StoredRecord]:
        """Up to ``limit`` snapshots, newest first."""
        ...

    async def quarantine(self, dispensary_id: str, fetched_at_ms: int, reason: str) -> bool:
        """Move a snapshot that failed verification aside; True when it was held."""
        ...

    async def change_times(self, dispensary_id: str, *, include_first: bool = False) -> list[int]:
        """Fetch times at which the menu's content changed, oldest first (with
        ``include_first``, the first snapshot's time too)."""
        ...

    def iter_newest(self) -> AsyncIterator[StoredRecord]:
        """The newest snapshot of every dispensary held."""
        ...


class HotRecords(Protocol):
    """The in-memory cache of records a node answers from first."""

    def put(self, record: StoredRecord) -> bool: ...

    def delete(self, dispensary_id: str, fetched_at_ms: int) -> bool: ...

    def newest(self, dispensary_id: str) -> StoredRecord | None:
        """The newest record held (counts a hit or a miss)."""
        ...

    def peek_newest(self, dispensary_id: str) -> StoredRecord | None:
        """``newest`` without counting (the caller calls ``touch`` when it uses it)."""
        ...

    def touch(self, dispensary_id: str) -> None: ...

    def __contains__(self, dispensary_id: object) -> bool: ...


class PeerTransport(Protocol):
    """Calls to other nodes' peer endpoints (whnode.peer.wire); failures raise PeerError."""

    async def get_record(
        self, peer: PeerAddress, dispensary_id: str, *, at_ms: int | None = None
    ) -> bytes | None: ...

    async def put_record(self, peer: PeerAddress, dispensary_id: str, data: bytes) -> bool: ...

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
    ) -> FillAnswer: ...

    async def history(self, peer: PeerAddress, dispensary_id: str, limit: int) -> list[bytes]: ...


class OwnerLookup(Protocol):
    """What the service needs from the DHT: who owns a key, and who is known."""

    @property
    def node_id(self) -> bytes: ...

    async def find_owners(
        self, key: bytes, count: int, *, fresh: bool = False
    ) -> Sequence[Contact]:
        """The ``count`` live owner-capable nodes closest to ``key``, closest first."""
        ...

    def contacts(self) -> Sequence[Contact]:
        """Every contact of the routing table."""
        ...

    def note_unreachable(self, contact: Contact) -> None:
        """``contact`` did not answer over HTTP: count a miss, drop cached owner lists."""
        ...


class MenuFetcher(Protocol):
    """Upstream: fetch and parse one dispensary's menu (raises UpstreamError)."""

    async def fetch(self, dispensary_id: str, now_ms: int) -> ParsedMenu: ...
