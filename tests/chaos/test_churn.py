"""Short versions of ``whnode bench chaos``: churn and crowded joins.

Real nodes on loopback (``LocalCluster``), the sandbox upstream, a crash that closes every
socket of 30% of the nodes at once. Latency goals are the bench's to print; these tests pin
what must hold on any machine: no request fails once the survivors noticed, no dispensary is
fetched again while one of its owners lives, and nobody is left alone after a crowded join.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from whnode.bench.chaos import ChurnOptions, JoinOptions, run_churn, run_joins

pytestmark = pytest.mark.slow


async def test_after_a_crash_of_30_percent_every_dispensary_with_a_live_owner_is_served(
    tmp_path: Path,
) -> None:
    options = ChurnOptions(
        nodes=14, dispensaries=30, kill_fraction=0.3, duration=6.0, rate=10.0, seed=3
    )
    result = await run_churn(options, tmp_path)
    assert result.killed == 4
    assert result.requests == 60
    # whatever fails, fails in the first seconds: then every request succeeds
    assert result.last_failure is None or result.last_failure < 4.0, result.errors
    # a dispensary is fetched upstream again only when every one of its owners died
    assert result.refilled_with_owner_alive == 0
    assert result.refilled <= result.orphaned
    # every dispensary was stored by its owners before the kill, and one whose copy survived
    # anywhere is not fetched again
    assert result.copies_min >= 3
    assert result.refilled_with_copy_alive == 0
    # the survivors drop the crashed nodes from their tables
    assert result.curve[-1].dead_in_tables < result.dead_entries_at_kill


async def test_nodes_joining_at_once_through_one_seed_are_none_isolated() -> None:
    result = await run_joins(JoinOptions(nodes=60, wait=6.0, lookups=20))
    assert result.isolated == 0, result
    assert result.exact_lookups == result.lookups, result
