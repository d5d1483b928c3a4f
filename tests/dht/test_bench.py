"""The DHT lookup benchmark runs, and its figures are numbers."""

from __future__ import annotations

import pytest

from whnode.bench.cluster_dht import main, measure_lookups


async def test_measure_lookups_on_a_small_network() -> None:
    row = await measure_lookups(12, routing_only=False, lookups=5)
    assert all(isinstance(value, int | float) for value in row.values())
    assert row["nodes"] == 12
    assert row["exact_fraction"] == 1.0
    assert 1 <= row["rpcs_per_lookup"] <= 12
    assert row["table_size_mean"] >= 10


async def test_routing_only_mode_measures_node_lookups() -> None:
    row = await measure_lookups(8, routing_only=True, lookups=3, lookup_width=20)
    assert row["routing_only"] == 1.0
    assert row["lookup_width"] == 20
    assert row["exact_fraction"] == 1.0


def test_main_prints_one_row_per_size_and_width(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sizes", "6,8", "--widths", "20,3", "--lookups", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 4
    assert lines[2].split()[:2] == ["6", "20"]
    assert lines[-1].split()[:2] == ["8", "3"]
