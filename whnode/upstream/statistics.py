"""Per-menu statistics, computed in the parse worker when a menu is parsed.

Pure: a ``Menu`` in, a ``MenuStatistics`` out (see its docstring in whnode.record.model).

- ``product_count`` per category, for every category that has products, in the order of the
  ``Category`` enum.
- Price per gram per category, in cents per gram: min, median and max over every price option
  whose quantity is in grams, at its list price (``price_cents``; specials come and go and
  would make the figures jump). Rounded to 1/100 cent. None for a category without any.
- THC histogram: products whose THC potency is in percent, counted in 20 buckets of 5 points
  (index i holds [5i, 5i+5), the last bucket also holds 100). A range counts at its midpoint.
"""

from __future__ import annotations

import statistics as stats
from collections import defaultdict

from whnode.record.model import (
    Category,
    CategoryStatistics,
    Menu,
    MenuStatistics,
    PotencyUnit,
)
from whnode.record.query import price_per_gram

__all__ = ["HISTOGRAM_BUCKETS", "compute_statistics"]

HISTOGRAM_BUCKETS = 20
"""Buckets of the THC histogram (fixed by MenuStatistics)."""
_BUCKET_WIDTH = 100.0 / HISTOGRAM_BUCKETS


def compute_statistics(menu: Menu) -> MenuStatistics:
    """The statistics of ``menu`` (its own ``statistics`` field is ignored)."""
    counts: dict[Category, int] = defaultdict(int)
    per_gram: dict[Category, list[float]] = defaultdict(list)
    histogram = [0] * HISTOGRAM_BUCKETS
    for product in menu.products:
        counts[product.category] += 1
        for option in product.price_options:
            value = price_per_gram(option.price_cents, option.quantity)
            if value is not None:
                per_gram[product.category].append(value)
        thc = product.thc
        if thc is not None and thc.unit is PotencyUnit.PERCENT:
            value = (thc.low + thc.high) / 2.0
            histogram[min(HISTOGRAM_BUCKETS - 1, int(value // _BUCKET_WIDTH))] += 1
    categories: list[CategoryStatistics] = []
    for category in Category:
        count = counts.get(category, 0)
        if count == 0:
            continue
        prices = per_gram.get(category)
        if prices:
            categories.append(
                CategoryStatistics(
                    category=category,
                    product_count=count,
                    price_per_gram_min=round(min(prices), 2),
                    price_per_gram_median=round(stats.median(prices), 2),
                    price_per_gram_max=round(max(prices), 2),
                )
            )
        else:
            categories.append(CategoryStatistics(category=category, product_count=count))
    return MenuStatistics(categories=tuple(categories), thc_percent_histogram=tuple(histogram))
