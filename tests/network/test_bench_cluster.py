"""A short run of ``whnode bench cluster`` (the long one is run by hand; docs/architecture.md)."""

from __future__ import annotations

import re

import pytest

from whnode.bench.cluster import cpu_burners, main

pytestmark = pytest.mark.timeout(180)


def test_cpu_burners_burn_while_the_block_runs_and_are_gone_after() -> None:
    with cpu_burners(2) as burners:
        assert all(burner.poll() is None for burner in burners), "burning"
    assert all(burner.poll() is not None for burner in burners)


def test_a_short_run_prints_ideals_duplicates_by_cause_and_latency_by_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "--nodes", "5", "--dispensaries", "20", "--requests", "400", "--duration", "4",
            "--max-age", "2", "--concurrency", "50", "--skip-lookups",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"load average +[\d.]+ [\d.]+ [\d.]+ \(start\)", out)
    network = re.search(r"whnode network +(\d+) +\(([\d.]+)x ideal, ([\d.]+)x latency-aware", out)
    assert network is not None, out
    ideal = re.search(r"ideal \(central\) +(\d+)", out)
    assert ideal is not None
    assert int(ideal.group(1)) > 0
    sandbox = re.search(r"sandbox menu fetches (\d+)", out)
    assert sandbox is not None
    assert int(sandbox.group(1)) == int(network.group(1))
    for cause in ("failover", "too-old join", "owner disagreement", "expiry during fill"):
        assert re.search(rf"  {cause} +\d+", out), cause
    assert "older than max_age on arrival: 0)" in out
    assert re.search(r"  (owner|fill) +n= +\d+ +p50", out)
