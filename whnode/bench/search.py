"""``whnode bench search``: latency of ``GET /v1/search`` over a node's held menus.

Fills a search index (a real SQLite file, ``whnode.store.search``) with ``--menus`` generated
menus sized like real ones (``whnode.testing.factories.make_menu``; 300 menus of 120 to 420
products: about 80,000 products), serves it through a real API server (``ApiServer`` over the
index and a service double: only the search route is measured), and sends ``--requests``
searches drawn from a mix an app would send (words, a category with a price per gram bound
sorted by price per gram, THC bounds, specials of a size, a brand, ...), ``--concurrency`` at
a time from an aiohttp client in this process. Prints the index size and build time, then
p50/p95/p99 of the answers by query kind and overall, with the load average before and after
the measurement; goal p99 <= 50 ms. ``--stress N`` runs N CPU-burning processes beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

import aiohttp

from whnode.bench.cluster import cpu_burners
from whnode.record.keys import SigningKey
from whnode.record.signed import sign_menu
from whnode.service.events import SnapshotEvents
from whnode.service.searchfeed import SearchFeed
from whnode.store.search import READERS, SearchIndex
from whnode.testing.factories import make_menu

__all__ = ["main"]

GOAL_P99_MS: Final = 50.0
QUERIES: Final = {
    "words": {"q": "blue"},
    "two words": {"q": "og kush"},
    "cheap flower": {"category": "flower", "max_price_per_gram": "10", "sort": "price_per_gram"},
    "strong": {"min_thc": "25", "sort": "-thc"},
    "eighths on special": {"size": "3.5g", "on_special": "true", "sort": "price"},
    "edibles under $20": {"category": "edible", "max_price": "20", "sort": "price"},
    "indica by name": {"lineage": "indica", "limit": "20"},
    "page 3": {"category": "vape", "limit": "50"},
}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _bench(args: argparse.Namespace) -> bool:
    from aiohttp import web

    from whnode.api.app import add_public_routes
    from whnode.api.server import ConnectionLimits, http_runner  # the node's own listener

    rng = random.Random(7)
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory() as directory:
        feed = SearchFeed(SearchIndex(Path(directory) / "search.sqlite3"), SnapshotEvents())
        await feed.index.open()
        started = time.perf_counter()
        products = 0
        now_ms = int(time.time() * 1000)
        for number in range(args.menus):
            size = rng.randint(120, 420)
            menu = make_menu(
                f"weedmaps:bench-{number:04d}", size, seed=number, fetched_at_ms=now_ms
            )
            await feed.index.update(sign_menu(menu, key), menu)
            products += size
        build = time.perf_counter() - started
        db_bytes = (Path(directory) / "search.sqlite3").stat().st_size
        print(
            f"index: {args.menus} menus, {products:,} products, built in {build:.1f} s "
            f"({build / max(args.menus, 1) * 1000:.0f} ms a menu), "
            f"{db_bytes / 2**20:.0f} MiB on disk; {READERS} reader threads"
        )
        context = _Context(feed)
        app = web.Application()
        api = add_public_routes(app, context)  # type: ignore[arg-type]
        runner = http_runner(app, ConnectionLimits())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        latencies: dict[str, list[float]] = {kind: [] for kind in QUERIES}
        kinds = list(QUERIES)
        load_before = os.getloadavg()[0]
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
                for kind in kinds:  # warm up: one of each
                    async with session.get("/v1/search", params=QUERIES[kind]) as response:
                        assert response.status == 200, await response.text()
                        await response.read()
                queue = [kinds[i % len(kinds)] for i in range(args.requests)]
                rng.shuffle(queue)
                api.searches.seconds.clear()
                cpu_started, wall_started = time.process_time(), time.perf_counter()

                async def worker() -> None:
                    while queue:
                        kind = queue.pop()
                        began = time.perf_counter()
                        async with session.get("/v1/search", params=QUERIES[kind]) as response:
                            await response.read()
                            assert response.status == 200
                        latencies[kind].append((time.perf_counter() - began) * 1000)

                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
                cpu = time.process_time() - cpu_started
                wall = time.perf_counter() - wall_started
                handled = [seconds * 1000 for seconds in api.searches.seconds]
        finally:
            await runner.cleanup()
            await feed.aclose()
    load_after = os.getloadavg()[0]
    everything = [value for values in latencies.values() for value in values]
    print(f"{'query':<20} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind, values in latencies.items():
        print(
            f"{kind:<20} {len(values):>5} {statistics.median(values):>8.1f} "
            f"{_percentile(values, 0.95):>8.1f} {_percentile(values, 0.99):>8.1f}"
        )
    p99 = _percentile(everything, 0.99)
    print(
        f"{'all':<20} {len(everything):>5} {statistics.median(everything):>8.1f} "
        f"{_percentile(everything, 0.95):>8.1f} {p99:>8.1f}"
    )
    print(
        f"in the handler (parse, query, answer; no HTTP): p50 {statistics.median(handled):.1f} "
        f"p99 {_percentile(handled, 0.99):.1f} ms (last {len(handled)}); this process used "
        f"{cpu / len(everything) * 1000:.1f} ms of CPU a search (server and client), "
        f"{len(everything) / wall:.0f} searches/s"
    )
    print(
        f"{args.concurrency} in flight; load average {load_before:.1f} before, "
        f"{load_after:.1f} after ({os.cpu_count()} CPUs)"
    )
    met = p99 <= GOAL_P99_MS
    print(f"goal: p99 <= {GOAL_P99_MS:.0f} ms: {'met' if met else 'NOT met'}")
    return met


class _Context:
    """An ApiContext with only what the search route reads: the search feed and a config."""

    def __init__(self, feed: SearchFeed) -> None:
        from whnode.config import ApiConfig, Config

        self.config = Config(api=ApiConfig(requests_per_second=1e9, burst=10**9))
        self.search_feed = feed
        self.service = None

    def statistics(self) -> dict[str, object]:
        return {}

    def healthy(self) -> bool:
        return True

    def ready(self) -> bool:
        return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench search", description=__doc__)
    parser.add_argument("--menus", type=int, default=300)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--stress", type=int, default=0, help="CPU burners beside the bench")
    args = parser.parse_args(argv)
    with cpu_burners(args.stress):
        print(
            f"whnode bench search: {args.stress} CPU burners; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        met = asyncio.run(_bench(args))
    return 0 if met else 1
