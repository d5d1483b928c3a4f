"""``whnode bench diff``: CPU cost of a snapshot diff and of a product query.

For menus of 250 and 2,500 products (``whnode.testing.factories.make_menu``) it makes a later
snapshot (``evolve_menu``: about 5% of the products get a new price, plus a few products
added and removed, as the sandbox's menus change over time) and times, in CPU time of this
process, median of ``--repeat`` runs:

- the diff as ``GET /v1/menus/{id}/changes`` computes it: ``diff_menus`` and the JSON
  document (with ``full=true``, the larger one); goal under 50 ms for 2,500 products;
- a product query as ``GET /v1/menus/{id}/products`` runs it (flower under $10 a gram,
  sorted by price per gram), on an opened menu.

``--stress N`` runs N CPU-burning processes beside it (CPU time stays a fair figure under
load; wall time would not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from whnode.api.changes import diff_document
from whnode.api.render import dumps
from whnode.bench.cluster import cpu_burners
from whnode.record.diff import diff_menus
from whnode.record.keys import SigningKey
from whnode.record.model import Category
from whnode.record.query import ProductQuery, SortKey, searchable_text, select
from whnode.record.signed import sign_menu
from whnode.testing.factories import evolve_menu, make_menu

__all__ = ["main"]

SIZES: Final = (250, 2500)
GOAL_DIFF_MS: Final = 50.0


def _cpu_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        action()
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def _measure(size: int, repeat: int, key: SigningKey) -> tuple[int, float, float, int]:
    """(products changed, diff + JSON CPU ms, query CPU ms, query matches) for one size."""
    old_menu = make_menu("weedmaps:bench-diff", size, seed=size, fetched_at_ms=10**12)
    evolved = evolve_menu(old_menu, 1, 10**12 + 60_000, change=0.05)
    extra = make_menu("weedmaps:bench-diff", 10, seed=size + 1).products
    added = tuple(replace(p, source_id=f"added-{i}") for i, p in enumerate(extra))
    new_menu = replace(evolved, products=evolved.products[5:] + added)
    old, new = sign_menu(old_menu, key), sign_menu(new_menu, key)

    def diff_and_render() -> bytes:
        return dumps(diff_document(diff_menus(old_menu, new_menu), old, new, full=True))

    query = ProductQuery(
        categories=frozenset({Category.FLOWER}),
        max_price_per_gram_cents=1000.0,
        sort=SortKey.PRICE_PER_GRAM,
    )
    texts = tuple(searchable_text(product) for product in new_menu.products)
    diff = diff_menus(old_menu, new_menu)
    return (
        len(diff.changed) + len(diff.added) + len(diff.removed),
        _cpu_ms(diff_and_render, repeat),
        _cpu_ms(lambda: select(new_menu, query, texts), repeat),
        len(select(new_menu, query, texts)),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench diff", description=__doc__)
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per size (median)")
    parser.add_argument("--stress", type=int, default=0, help="CPU burners beside the bench")
    args = parser.parse_args(argv)
    key = SigningKey.generate()
    with cpu_burners(args.stress):
        load = os.getloadavg()[0]
        print(
            f"whnode bench diff: median CPU ms of {args.repeat} runs; {args.stress} CPU "
            f"burners; load average {load:.1f} on {os.cpu_count()} CPUs"
        )
        print(f"{'products':>8} {'changed':>8} {'diff+JSON ms':>13} {'query ms':>9} {'matches':>8}")
        met = True
        for size in SIZES:
            changed, diff_ms, query_ms, matches = _measure(size, args.repeat, key)
            met = met and (size < 2500 or diff_ms < GOAL_DIFF_MS)
            print(f"{size:>8,} {changed:>8,} {diff_ms:>13.1f} {query_ms:>9.1f} {matches:>8,}")
        verdict = "met" if met else "NOT met"
        print(f"goal: a diff of a 2,500-product menu under {GOAL_DIFF_MS:.0f} ms CPU: {verdict}")
    return 0 if met else 1
