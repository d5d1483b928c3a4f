"""``SandboxConfig``: everything that shapes the simulated upstream, field by field."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from whnode.errors import ConfigError
from whnode.record.model import Vendor
from whnode.sandbox.faults import FaultRule
from whnode.upstream.sources import DEFAULT_DUTCHIE_QUERY_HASH

__all__ = ["SandboxConfig"]

SANDBOX_VENDORS = (
    Vendor.WEEDMAPS,
    Vendor.DUTCHIE,
    Vendor.JANE,
    Vendor.LEAFLY,
    Vendor.TREEZ,
    Vendor.FLOWHUB,
)
"""Vendors the sandbox serves, in the order dispensaries are listed."""


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """The simulated upstream: which menus, how they change, how the APIs misbehave."""

    host: str = "127.0.0.1"
    """Address ``run_sandbox`` listens on."""
    port: int = 0
    """TCP port ``run_sandbox`` listens on; 0 picks a free one."""
    seed: int = 1
    """Seed of every generated menu (each dispensary draws from ``Random(seed, id)``)."""
    catalog: bool = True
    """Serve the named catalog (tiny, small, realistic, large and quirky per vendor)."""
    population: int = 0
    """Generated dispensaries besides the catalog (``weedmaps:store-0001``...), spread over
    the vendors, sized like real menus (median ~245 items) up to ``max_items``."""
    max_items: int = 2500
    """Largest generated population menu."""
    latency: float = 0.0
    """Seconds added to every answer."""
    latency_jitter: float = 0.0
    """Up to this many seconds more, drawn uniformly per request."""
    rate: float | None = None
    """Requests per second allowed per client address (token bucket); None: unlimited.
    Above it the answer is 429 with Retry-After."""
    burst: int = 10
    """Token-bucket burst per client address."""
    change_interval: float = 300.0
    """Seconds per menu version: version = floor((now - start) / change_interval), plus the
    versions added by ``advance``."""
    change_rate: float = 0.02
    """Fraction of items whose price or stock changes per version, and of items added or
    removed; 0 freezes the menus. With a positive rate every version changes at least one
    price."""
    faults: tuple[FaultRule, ...] = ()
    """Faults injected from the start (they can also be set at runtime)."""
    timeout_fault_seconds: float = 30.0
    """How long a ``timeout`` fault keeps the client waiting before answering."""
    dutchie_query_hash: str = DEFAULT_DUTCHIE_QUERY_HASH
    """The persisted-query hash Dutchie requests must carry (else an error in a 200)."""
    jane_app_id: str | None = None
    """When set, Jane requests must carry this ``x-algolia-application-id`` (else 403)."""
    jane_api_key: str | None = field(default=None, repr=False)
    """When set, Jane requests must carry this ``x-algolia-api-key`` (else 403)."""
    treez_client_id: str = "sandbox-treez-client"
    """The client id Treez token and product requests must carry (else 401)."""
    treez_api_key: str = field(default="sandbox-treez-key", repr=False)
    """The ``apikey`` a Treez token request must carry (else 401)."""
    treez_token_seconds: float = 3600.0
    """How long a Treez access token lives (``expires_in``); past it, pages answer 401."""
    flowhub_client_id: str = "sandbox-flowhub-client"
    """The ``clientId`` header Flowhub requests must carry (else 401)."""
    flowhub_api_key: str = field(default="sandbox-flowhub-key", repr=False)
    """The ``key`` header Flowhub requests must carry (else 401)."""

    def credentials(self) -> dict[Vendor, dict[str, str]]:
        """The source credentials that open the keyed APIs (for ``SourcesConfig.pointing_at``)."""
        return {
            Vendor.TREEZ: {"client_id": self.treez_client_id, "api_key": self.treez_api_key},
            Vendor.FLOWHUB: {"client_id": self.flowhub_client_id, "api_key": self.flowhub_api_key},
        }

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("sandbox port must be between 0 and 65535")
        if self.population < 0 or self.population > 100_000:
            raise ConfigError("sandbox population must be between 0 and 100000")
        if not 3 <= self.max_items <= 2500:
            raise ConfigError("sandbox max_items must be between 3 and 2500")
        if not self.catalog and self.population == 0:
            raise ConfigError("the sandbox needs the catalog or a population")
        for name in ("latency", "latency_jitter", "timeout_fault_seconds", "treez_token_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"sandbox {name} must be a finite number >= 0")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigError("sandbox rate must be > 0 (or None for unlimited)")
        if self.burst < 1:
            raise ConfigError("sandbox burst must be >= 1")
        if not math.isfinite(self.change_interval) or self.change_interval <= 0:
            raise ConfigError("sandbox change_interval must be > 0")
        if not 0 <= self.change_rate <= 1:
            raise ConfigError("sandbox change_rate must be between 0 and 1")
