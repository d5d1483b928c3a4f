"""``whnode bench fidelity``: does every vendor adapter serve exactly what the upstream says?

Runs the sandbox and, for every API shape (``whnode.sandbox.fidelity.SHAPES``: each vendor,
Weedmaps both as discovery and as the JSON:API menu) and every named menu size (tiny, small,
realistic, large: every variant a vendor module serves appears in them), fills the menu as a
node does (``Fetcher``: ``UpstreamHttp`` and a ``ParsePool``), decodes the payload the node
would sign, and compares it with the sandbox's own truth (``whnode.sandbox.fidelity.compare``):
products expected / served / missing / duplicated / extra, sizes likewise, and wrong values by
field, with a few item names per loss.

Exit status 0 when every shape is exact, 1 otherwise. The goal is 0 everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from whnode.record.codec import decode_menu
from whnode.record.model import Vendor
from whnode.sandbox.catalog import SizeClass
from whnode.sandbox.fidelity import SHAPES, FidelityReport, compare
from whnode.upstream.exceptions import UpstreamError
from whnode.upstream.fetcher import Fetcher
from whnode.upstream.http import UpstreamHttp, UpstreamHttpConfig
from whnode.upstream.pool import ParsePool

__all__ = ["main", "measure"]

SIZE_CLASSES = ("tiny", "small", "realistic", "large")
OPEN = UpstreamHttpConfig(requests_per_second=10_000.0, burst=1_000, concurrency_per_host=16)
"""Pacing lifted: the sandbox is local."""


def _credentials(shape: str) -> dict[Vendor, dict[str, str]]:
    vendor, _, variant = shape.partition("-")
    return {Vendor(vendor): {"api": variant}} if variant else {}


async def measure(
    shapes: Sequence[str] = SHAPES,
    sizes: Sequence[str] = SIZE_CLASSES,
    *,
    seed: int = 1,
    workers: int = 2,
) -> list[FidelityReport]:
    """One report per shape, added up over the named menus of ``sizes``."""
    from whnode.sandbox import SandboxConfig, run_sandbox
    from whnode.upstream.sources import SourcesConfig

    reports: list[FidelityReport] = []
    async with (
        run_sandbox(SandboxConfig(seed=seed, change_rate=0.0)) as sandbox,
        ParsePool(workers, max_tasks_per_child=None) as pool,
        UpstreamHttp(OPEN) as http,
    ):
        for shape in shapes:
            vendor = Vendor(shape.partition("-")[0])
            credentials = {**sandbox.credentials(), **_credentials(shape)}
            sources = SourcesConfig.pointing_at(sandbox.base_url, credentials)
            fetcher = Fetcher(sources, http, pool, menu_deadline=120.0)
            total = FidelityReport(shape)
            for size in sizes:
                dispensary_id = sandbox.named(SizeClass(size), vendor)
                items = sandbox.items(dispensary_id)
                try:
                    parsed = await fetcher.fetch(dispensary_id, int(time.time() * 1000))
                except UpstreamError as exc:
                    print(f"  {shape} {dispensary_id}: the fill failed: {exc}")
                    total.add(compare((), items, shape))
                    continue
                total.add(compare(decode_menu(parsed.payload), items, shape))
            reports.append(total)
    return reports


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench fidelity", description=__doc__)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--sizes", nargs="+", default=list(SIZE_CLASSES), choices=SIZE_CLASSES)
    parser.add_argument("--workers", type=int, default=2, help="parse pool workers")
    parser.add_argument("--seed", type=int, default=1, help="sandbox seed")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    reports = asyncio.run(measure(args.shapes, args.sizes, seed=args.seed, workers=args.workers))
    for report in reports:
        print(report.line())
        for line in report.details():
            print(line)
    exact = all(report.exact for report in reports)
    print(
        f"{'exact' if exact else 'NOT exact'}: {len(reports)} shapes over the "
        f"{', '.join(args.sizes)} menus in {time.perf_counter() - started:.1f} s"
    )
    return 0 if exact else 1
