"""Upstream menu APIs: the pooled HTTP client, the parse pool, and the fetcher.

Sources, adapters and the sandbox live beside these modules (``sources``, ``adapters``,
``whnode.sandbox``); see docs/upstream-client.md.
"""

from __future__ import annotations

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
from whnode.upstream.statistics import compute_statistics

__all__ = [
    "Fetcher",
    "FetcherStatistics",
    "ParsePool",
    "ParsePoolStatistics",
    "ParsedMenu",
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
