"""``whnode bench fetch``: one full upstream fetch of a 2,500-item menu from the sandbox.

For each vendor's 2,500-item catalog menu, the sandbox adds ``--latency`` seconds (default
50 ms) to every page, and a ``Fetcher`` fetches every page through ``UpstreamHttp`` and parses
them in a ``ParsePool``, as a node filling the dispensary would. Two client profiles:

- ``polite``: the node's default pacing (``UpstreamHttpConfig()``: 2 requests/s per host,
  burst 4, 4 at a time), what a production node does to a real API;
- ``open``: pacing lifted (only the adapter's page concurrency bounds the fetch), to show what
  latency and pagination alone cost.

Prints per fetch: wall time (fetch and parse apart), pages, the largest number of requests in
flight to the host (the concurrency used), requests the sandbox saw, and products.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from whnode.record.model import Vendor
from whnode.upstream.fetcher import Fetcher
from whnode.upstream.http import UpstreamHttp, UpstreamHttpConfig
from whnode.upstream.pool import ParsedMenu, ParsePool

__all__ = ["main"]

PROFILES: dict[str, UpstreamHttpConfig] = {
    "polite": UpstreamHttpConfig(),
    "open": UpstreamHttpConfig(requests_per_second=10_000.0, burst=1_000, concurrency_per_host=16),
}
"""Client settings compared."""


class _TimedPool(ParsePool):
    """A pool that remembers how long its last parse took."""

    last_parse_seconds = 0.0

    async def parse(
        self, vendor: Vendor | str, dispensary_id: str, pages: Sequence[bytes], fetched_at_ms: int
    ) -> ParsedMenu:
        started = time.perf_counter()
        try:
            return await super().parse(vendor, dispensary_id, pages, fetched_at_ms)
        finally:
            self.last_parse_seconds = time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class FetchResult:
    profile: str
    dispensary_id: str
    seconds: float
    parse_seconds: float
    pages: int
    peak_in_flight: int
    sandbox_requests: int
    products: int

    def line(self) -> str:
        return (
            f"{self.profile:<7} {self.dispensary_id:<34} {self.seconds:7.2f} s "
            f"(fetch {self.seconds - self.parse_seconds:6.2f} s, parse {self.parse_seconds:5.2f} s)"
            f"  {self.pages:3} pages  concurrency {self.peak_in_flight:2}  "
            f"{self.sandbox_requests:3} requests  {self.products:5} products"
        )


async def _run(args: argparse.Namespace) -> int:
    from whnode.sandbox import LARGE, SandboxConfig, run_sandbox
    from whnode.upstream.sources import SourcesConfig

    vendors = [Vendor(name) for name in args.vendors]
    config = SandboxConfig(seed=args.seed, latency=args.latency, change_rate=0.0)
    results: list[FetchResult] = []
    async with (
        run_sandbox(config) as sandbox,
        _TimedPool(args.workers, max_tasks_per_child=None) as pool,
    ):
        await pool.warm_up()
        sources = SourcesConfig.pointing_at(sandbox.base_url)
        for profile in args.profiles:
            for vendor in vendors:
                dispensary_id = LARGE[vendor]
                settings = replace(PROFILES[profile], request_timeout=args.timeout)
                async with UpstreamHttp(settings) as http:
                    fetcher = Fetcher(sources, http, pool, menu_deadline=args.deadline)
                    before = sandbox.calls(dispensary_id)
                    started = time.perf_counter()
                    parsed = await fetcher.fetch(dispensary_id, int(time.time() * 1000))
                    seconds = time.perf_counter() - started
                    host = http.statistics().hosts[0]
                    result = FetchResult(
                        profile=profile,
                        dispensary_id=dispensary_id,
                        seconds=seconds,
                        parse_seconds=pool.last_parse_seconds,
                        pages=fetcher.statistics().pages,
                        peak_in_flight=host.peak_in_flight,
                        sandbox_requests=sandbox.calls(dispensary_id) - before,
                        products=parsed.product_count,
                    )
                results.append(result)
                print(result.line(), flush=True)
    print(
        f"sandbox latency {args.latency * 1e3:.0f} ms per page; polite = "
        f"{PROFILES['polite'].requests_per_second:g} requests/s, burst "
        f"{PROFILES['polite'].burst}, {PROFILES['polite'].concurrency_per_host} at a time per host"
    )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench fetch", description=__doc__)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per page")
    parser.add_argument(
        "--vendors",
        nargs="+",
        default=[str(v) for v in (Vendor.WEEDMAPS, Vendor.DUTCHIE, Vendor.JANE, Vendor.LEAFLY)],
        choices=[str(v) for v in (Vendor.WEEDMAPS, Vendor.DUTCHIE, Vendor.JANE, Vendor.LEAFLY)],
    )
    parser.add_argument(
        "--profiles", nargs="+", default=["open", "polite"], choices=sorted(PROFILES)
    )
    parser.add_argument("--workers", type=int, default=2, help="parse pool workers")
    parser.add_argument("--deadline", type=float, default=120.0, help="menu deadline (s)")
    parser.add_argument("--timeout", type=float, default=15.0, help="request timeout (s)")
    parser.add_argument("--seed", type=int, default=1, help="sandbox seed")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args))
