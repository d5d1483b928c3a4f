"""Fidelity: every adapter serves exactly the sandbox's truth (real sandbox, real HTTP client,
real parse pool), and the comparison itself notices every kind of loss."""

from __future__ import annotations

import dataclasses

import pytest

from tests.sandbox.support import upstream
from whnode.bench import fidelity as bench
from whnode.record.model import PriceOption, Quantity, QuantityUnit, Vendor
from whnode.sandbox import SMALL
from whnode.sandbox.fidelity import SHAPES, compare
from whnode.sandbox.vendors.weedmaps import PricesShape, prices_shape, render_discovery_item
from whnode.upstream.adapters.walk import ItemReader
from whnode.upstream.adapters.weedmaps import parse_discovery_item


async def test_every_shape_serves_the_truth_exactly() -> None:
    reports = await bench.measure(SHAPES, ("tiny", "small", "realistic"))
    assert [report.shape for report in reports] == list(SHAPES)
    for report in reports:
        assert report.products_expected > 250, report.shape
        assert report.exact, "\n".join([report.line(), *report.details()])


async def test_the_comparison_counts_each_kind_of_loss() -> None:
    async with upstream() as up:
        dispensary = SMALL[Vendor.WEEDMAPS]
        menu, _ = await up.menu(dispensary)
        items = up.sandbox.items(dispensary)
    assert compare(menu, items, "weedmaps").exact
    products = list(menu.products)
    several = next(i for i, p in enumerate(products) if i > 2 and len(p.price_options) > 1)
    products[several] = dataclasses.replace(
        products[several], price_options=products[several].price_options[1:]
    )
    first = products[0]
    products[0] = dataclasses.replace(
        first,
        brand="Someone Else",
        price_options=(
            dataclasses.replace(
                first.price_options[0], price_cents=first.price_options[0].price_cents + 1
            ),
            *first.price_options[1:],
            PriceOption(Quantity(99.0, QuantityUnit.GRAMS), 100),
        ),
    )
    products.append(products[1])
    lost = products.pop(2)
    report = compare(products, items, "weedmaps")
    assert not report.exact
    assert (report.missing, report.duplicated, report.extra) == (1, 1, 0)
    assert (report.sizes_missing, report.sizes_extra) == (1, 1)
    assert dict(report.wrong) == {"brand": 1, "price": 1}
    assert report.products_served == len(items)
    assert report.examples["missing"] == [lost.name]


def test_every_discovery_prices_shape_keeps_every_size() -> None:
    """The reported loss: tiers whose units or labels carry unit words ("1 g", "1/8 oz"),
    items without a top-level price. Each shape, with and without that price."""
    from whnode.sandbox.catalog import menu_at, named_catalog

    spec = next(s for s in named_catalog(1) if s.dispensary_id == SMALL[Vendor.WEEDMAPS])
    items = menu_at(spec, 1, 0.0, 0)
    seen: set[tuple[PricesShape, bool]] = set()
    for item in items:
        rendered = render_discovery_item(item)
        seen.add((prices_shape(item), "price" in rendered))
        candidate = parse_discovery_item(rendered, ItemReader.alone())
        assert candidate is not None, item.name
        got = {(o.quantity, o.price_cents) for o in candidate.product.price_options}
        assert got == {(o.quantity, o.price_cents) for o in item.options}, item.name
    assert seen == {(shape, top) for shape in PricesShape for top in (True, False)}


@pytest.mark.parametrize(
    ("units", "label", "key", "grams"),
    [
        ("1/8 oz", None, "ounce", 3.5),
        ("1/4 oz", "1/4 oz", "ounce", 7.0),
        ("1 g", "1 g", "gram", 1.0),
        ("0.5 g", None, "gram", 0.5),
        (None, "1/2 oz", "ounce", 14.0),
        ("1/8", None, "ounce", 3.5),
        (2, None, "gram", 2.0),
    ],
)
def test_a_tier_size_is_read_from_units_label_or_key(
    units: object, label: object, key: str, grams: float
) -> None:
    tier = {"price": 30, **({"units": units} if units is not None else {})}
    if label is not None:
        tier["label"] = label
    item = {"id": 1, "name": "Blue Dream", "prices": {key: [tier]}}
    candidate = parse_discovery_item(item, ItemReader.alone())
    assert candidate is not None
    assert candidate.product.price_options == (
        PriceOption(Quantity(grams, QuantityUnit.GRAMS), 3000),
    )


def test_the_bench_prints_one_line_per_shape_and_exits_0_when_exact(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench.main(["--shapes", "jane", "weedmaps", "--sizes", "tiny"]) == 0
    out = capsys.readouterr().out
    assert out.count("products expected") == 2
    assert "exact: 2 shapes" in out
