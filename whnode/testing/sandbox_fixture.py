"""A handle on a running sandbox with the few things network tests need."""

from __future__ import annotations

from dataclasses import dataclass

from whnode.record.model import Vendor
from whnode.sandbox import SandboxServer, SizeClass

__all__ = ["SandboxHandle"]


@dataclass
class SandboxHandle:
    """Wraps a SandboxServer: two one-page dispensaries and the controls tests use."""

    server: SandboxServer

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def tiny_dispensary(self) -> str:
        """A one-page Weedmaps menu."""
        return self.server.named(SizeClass.TINY, Vendor.WEEDMAPS)

    @property
    def other_dispensary(self) -> str:
        """Another one-page menu, from Leafly."""
        return self.server.named(SizeClass.TINY, Vendor.LEAFLY)

    def calls(self, dispensary_id: str) -> int:
        """HTTP requests the sandbox received for ``dispensary_id``."""
        return self.server.calls(dispensary_id)

    def advance(self, dispensary_id: str) -> None:
        self.server.advance(dispensary_id)

    def fail(self, dispensary_id: str) -> None:
        self.server.fail(dispensary_id)

    def heal(self, dispensary_id: str) -> None:
        self.server.heal(dispensary_id)

    def set_latency(self, seconds: float) -> None:
        self.server.set_latency(seconds)
