"""Upstream menu APIs: sources, vendor adapters, the pooled HTTP client, the parse pool, and
the fetcher that puts them together. See docs/upstream-client.md (the simulated upstream used
by tests and benchmarks is ``whnode.sandbox``).
"""

from __future__ import annotations

from whnode.upstream.adapters import ADAPTERS, Adapter
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamCircuitOpen,
    UpstreamError,
    UpstreamParseError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from whnode.upstream.fetcher import Fetcher, FetcherStatistics
from whnode.upstream.http import (
    UpstreamHttp,
    UpstreamHttpConfig,
    UpstreamHttpStatistics,
)
from whnode.upstream.pool import ParsedMenu, ParsePool, ParsePoolStatistics
from whnode.upstream.sources import SourceConfig, SourcesConfig
from whnode.upstream.statistics import compute_statistics

__all__ = [
    "ADAPTERS",
    "Adapter",
    "Fetcher",
    "FetcherStatistics",
    "ParsePool",
    "ParsePoolStatistics",
    "ParsedMenu",
    "SourceConfig",
    "SourcesConfig",
    "UnknownDispensary",
    "UpstreamBadResponse",
    "UpstreamCircuitOpen",
    "UpstreamError",
    "UpstreamHttp",
    "UpstreamHttpConfig",
    "UpstreamHttpStatistics",
    "UpstreamParseError",
    "UpstreamRateLimited",
    "UpstreamRefused",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "compute_statistics",
]
