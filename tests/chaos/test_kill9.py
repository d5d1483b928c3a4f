"""Short version of ``whnode bench chaos --scenarios kill9``: 10 cycles of kill -9.

A real node process is killed with SIGKILL while it fills, answers puts and replicates;
before each restart its SQLite store must pass ``integrity_check`` and hold every record it
acknowledged, and none of its parse-pool processes (fork server, workers, resource tracker)
may outlive it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from whnode.bench.kill9 import Kill9Options, run_kill9

pytestmark = pytest.mark.slow


async def test_ten_kill_9_cycles_lose_nothing_acknowledged_and_leave_no_process(
    tmp_path: Path,
) -> None:
    options = Kill9Options(cycles=10, dispensaries=30, min_run=0.3, max_run=0.6, seed=5)
    result = await run_kill9(options, tmp_path, environ=dict(os.environ))
    assert result.cycles == 10
    assert result.integrity_failures == []
    assert result.puts_acknowledged > 0
    assert result.lost == []
    # the pool's processes existed at the kills, and none outlived the node
    assert result.pool_processes_seen >= 3
    assert result.leftover_processes == 0
