"""``whnode bench parse``: parse throughput of the process pool against inline parsing, and the
event loop's lag meanwhile.

Fetches ``--menus`` menus once from the sandbox, over real HTTP with the vendor adapters: a
generated population sized like real menus (log-normal, median ~245 items) plus the four
2,500-item catalog menus, spread over the four vendors. Then the same raw pages are parsed
twice (statistics, canonical encoding, compression and content hash included):

- inline: ``parse_menu_job`` called on the event loop, one menu after another;
- pool: every menu submitted to a ``ParsePool`` at once (its back-pressure admits
  ``--queue-depth`` at a time); each job also reports the CPU time its worker spent, which
  shows how many cores the pool actually got on a shared machine.

Meanwhile a ticker coroutine sleeps 1 ms in a loop and records how late it wakes up: that is
the event-loop lag every other request of the node would see.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from whnode.record.model import Vendor
from whnode.upstream.http import UpstreamHttp, UpstreamHttpConfig
from whnode.upstream.pool import ParsePool, default_workers, parse_menu_job

__all__ = ["RawMenu", "fetch_raw_menus", "main", "measure_lag", "timed_parse_job"]

TICK_SECONDS = 0.001
"""The ticker's sleep."""
LARGE_MENUS = 4
"""The catalog's 2,500-item menus, one per vendor, always included."""


@dataclass(frozen=True, slots=True)
class RawMenu:
    """One menu's raw pages, as fetched."""

    dispensary_id: str
    vendor: Vendor
    pages: list[bytes]

    @property
    def nbytes(self) -> int:
        return sum(len(page) for page in self.pages)


@dataclass(frozen=True, slots=True)
class PhaseResult:
    name: str
    seconds: float
    menus: int
    products: int
    lateness: list[float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.lateness)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def line(self) -> str:
        return (
            f"{self.name:<8} {self.seconds:7.2f} s  {self.menus / self.seconds:7.1f} menus/s "
            f"{self.products / self.seconds:9,.0f} products/s   loop lag p50 "
            f"{self.percentile(0.5) * 1e3:7.2f} ms  p99 {self.percentile(0.99) * 1e3:8.2f} ms  "
            f"max {max(self.lateness, default=0.0) * 1e3:8.2f} ms  ({len(self.lateness)} ticks)"
        )


async def fetch_raw_menus(count: int, seed: int) -> list[RawMenu]:
    """``count`` menus from a sandbox population plus the 2,500-item catalog menus."""
    from whnode.sandbox import LARGE, SandboxConfig, run_sandbox
    from whnode.upstream.adapters import ADAPTERS
    from whnode.upstream.sources import SourcesConfig

    population = max(0, count - LARGE_MENUS)
    config = SandboxConfig(seed=seed, population=max(1, population), max_items=2500)
    fast = UpstreamHttpConfig(requests_per_second=10_000.0, burst=1_000, concurrency_per_host=16)
    async with run_sandbox(config) as sandbox, UpstreamHttp(fast) as http:
        generated = sorted(d for d in sandbox.dispensaries if ":store-" in d)[:population]
        wanted = [*list(LARGE.values())[: min(LARGE_MENUS, count)], *generated]
        sources = SourcesConfig.pointing_at(sandbox.base_url)
        gate = asyncio.Semaphore(8)

        async def one(dispensary_id: str) -> RawMenu:
            source = sources.resolve(dispensary_id)
            async with gate:
                pages = await ADAPTERS[source.vendor].fetch_pages(http, source, dispensary_id)
            return RawMenu(dispensary_id, source.vendor, pages)

        return list(await asyncio.gather(*(one(d) for d in wanted)))


def timed_parse_job(
    vendor: str, dispensary_id: str, pages: list[bytes], fetched_at_ms: int
) -> tuple[int, float]:
    """``parse_menu_job`` in a worker: (products, CPU seconds the worker spent on it)."""
    started = time.process_time()
    parsed = parse_menu_job(vendor, dispensary_id, pages, fetched_at_ms)
    return parsed.product_count, time.process_time() - started


async def measure_lag(
    work: Callable[[], Awaitable[list[int]]],
) -> tuple[float, list[int], list[float]]:
    """Run ``work`` (returning products per menu) beside a 1 ms ticker: (seconds, its result,
    lateness of each tick in seconds)."""
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(TICK_SECONDS)
            lateness.append(max(0.0, loop.time() - before - TICK_SECONDS))

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    try:
        products = await work()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        await task
    return seconds, products, lateness


async def _inline(menus: Sequence[RawMenu], now_ms: int) -> list[int]:
    products: list[int] = []
    for menu in menus:
        parsed = parse_menu_job(menu.vendor, menu.dispensary_id, menu.pages, now_ms)
        products.append(parsed.product_count)
        await asyncio.sleep(0)
    return products


@contextlib.asynccontextmanager
async def _pool(workers: int, queue_depth: int) -> AsyncIterator[ParsePool]:
    async with ParsePool(workers, max_tasks_per_child=None, queue_depth=queue_depth) as pool:
        await pool.warm_up()
        yield pool


async def _run(args: argparse.Namespace) -> int:
    loading = time.perf_counter()
    menus = await fetch_raw_menus(args.menus, args.seed)
    sizes = sorted(len(menu.pages) for menu in menus)
    raw_bytes = sum(menu.nbytes for menu in menus)
    print(
        f"{len(menus)} menus fetched from the sandbox in {time.perf_counter() - loading:.1f} s: "
        f"{raw_bytes / 1e6:.1f} MB of JSON in {sum(sizes)} pages"
    )
    now_ms = int(time.time() * 1000)
    # One inline parse first, unmeasured: imports and caches warm up in this process too.
    parse_menu_job(menus[0].vendor, menus[0].dispensary_id, menus[0].pages, now_ms)

    inline_runs: list[PhaseResult] = []
    pool_runs: list[PhaseResult] = []
    inline_counts: list[int] = []
    pool_counts: list[int] = []
    load_before = os.getloadavg()[0]
    async with _pool(args.workers, args.queue_depth) as pool:
        worker_cpu: list[float] = []

        async def pooled() -> list[int]:
            parsed = await asyncio.gather(
                *(
                    pool.run(timed_parse_job, m.vendor, m.dispensary_id, m.pages, now_ms)
                    for m in menus
                )
            )
            worker_cpu.append(sum(cpu for _, cpu in parsed))
            return [products for products, _ in parsed]

        for _ in range(args.rounds):  # interleaved, so that outside load hits both alike
            seconds, inline_counts, lateness = await measure_lag(lambda: _inline(menus, now_ms))
            inline_runs.append(
                PhaseResult("inline", seconds, len(menus), sum(inline_counts), lateness)
            )
            seconds, pool_counts, lateness = await measure_lag(pooled)
            pool_runs.append(
                PhaseResult(
                    f"pool x{args.workers}", seconds, len(menus), sum(pool_counts), lateness
                )
            )
    load_after = os.getloadavg()[0]

    if pool_counts != inline_counts:
        print("the pool and inline parsing disagree on product counts")
        return 1
    per_menu = sorted(inline_counts)
    print(
        f"menu sizes (products): median {statistics.median(per_menu):.0f}, "
        f"p90 {per_menu[int(0.9 * len(per_menu))]}, max {per_menu[-1]}; "
        f"{sum(per_menu):,} products in all"
    )
    inline = min(inline_runs, key=lambda r: r.seconds)
    pooled_result = min(pool_runs, key=lambda r: r.seconds)
    for result in (*inline_runs, *pool_runs):
        print(result.line())
    for result, cpu in zip(pool_runs, worker_cpu, strict=True):
        print(
            f"pool round: workers used {cpu:.1f} CPU s in {result.seconds:.1f} s, "
            f"{cpu / result.seconds:.2f} cores on average (other processes take the rest)"
        )
    print(
        f"best of {args.rounds}: speed-up of the pool over inline parsing "
        f"{inline.seconds / pooled_result.seconds:.2f}x on {default_workers()} cores; loop lag "
        f"p99 {pooled_result.percentile(0.99) * 1e3:.1f} ms with the pool against "
        f"{inline.percentile(0.99) * 1e3:.1f} ms inline (1-min load average "
        f"{load_before:.1f} before, {load_after:.1f} after)"
    )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench parse", description=__doc__)
    parser.add_argument("--menus", type=int, default=200, help="menus to parse (default 200)")
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="pool workers (default: cores)"
    )
    parser.add_argument("--queue-depth", type=int, default=64, help="pool admission depth")
    parser.add_argument("--rounds", type=int, default=1, help="inline/pool rounds (best kept)")
    parser.add_argument("--seed", type=int, default=1, help="sandbox seed")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    if min(args.menus, args.workers, args.rounds) < 1:
        parser.error("--menus, --workers and --rounds must be >= 1")
    if args.uvloop:
        import uvloop

        return uvloop.run(_run(args))
    return asyncio.run(_run(args))
