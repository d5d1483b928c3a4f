"""What the public HTTP API needs from a node: the ``ApiContext`` protocol.

``whnode.Node`` satisfies it; tests may pass any object that does. The API reads the context
only while answering a request (never while routes are being added), so a node may add the
routes before its service exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from whnode.config import Config
from whnode.record.signed import SignedRecord
from whnode.service.events import SnapshotEvents
from whnode.service.types import MenuAnswer, ServiceStatistics

__all__ = ["ApiContext", "MenuReader", "service_of"]


class MenuReader(Protocol):
    """The part of ``whnode.service.core.MenuService`` that the API calls."""

    @property
    def events(self) -> SnapshotEvents:
        """New snapshots as they are stored (change streams)."""
        ...

    async def get_menu(
        self,
        dispensary_id: str,
        *,
        max_age: float | None = None,
        at_ms: int | None = None,
    ) -> MenuAnswer:
        """The menu answer under the read-through policy (see MenuService.get_menu)."""
        ...

    def answer_hot(self, dispensary_id: str, max_age: float | None = None) -> MenuAnswer | None:
        """A fresh hot-cache answer without awaiting, or None (then call get_menu)."""
        ...

    async def history(self, dispensary_id: str, limit: int) -> list[SignedRecord]:
        """Up to ``limit`` snapshots, newest first."""
        ...

    def statistics(self) -> ServiceStatistics:
        """A frozen snapshot of the service's counters."""
        ...


class ApiContext(Protocol):
    """The node members the public API uses (exactly those of ``whnode.Node``)."""

    @property
    def config(self) -> Config:
        """The node's configuration (``config.api`` holds the rate limits)."""
        ...

    @property
    def service(self) -> MenuReader:
        """The read-through service; may raise AttributeError before the node has started."""
        ...

    def node_info(self) -> Mapping[str, Any]:
        """JSON-able description of the node: id, peers, cache and service figures."""
        ...

    def healthy(self) -> bool:
        """True while the node is connected to the network (``/healthz``)."""
        ...

    def ready(self) -> bool:
        """True while the node can answer menu requests (``/readyz``)."""
        ...

    def statistics(self) -> Mapping[str, object]:
        """Component name → frozen statistics snapshot (dataclass), read at each scrape."""
        ...

    def known_dispensaries(self) -> Sequence[str]:
        """Dispensary ids this node lists as known sources."""
        ...

    def history_samples(self) -> Sequence[Mapping[str, Any]]:
        """Status-page samples (one every few seconds over the last hour), oldest first."""
        ...


def service_of(context: ApiContext) -> MenuReader:
    """The context's service; NodeNotReady (503) before the node has started."""
    from whnode.api.exceptions import NodeNotReady

    try:
        return context.service
    except AttributeError:
        raise NodeNotReady("the node has not started") from None
