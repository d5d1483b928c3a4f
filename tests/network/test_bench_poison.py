"""The short version of ``whnode bench poison``: a small network with one attacker that
ground its id next to a target, publishing fake menus; with the cross-check no honest
answer is fake, without it some are (the bench's baseline)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from whnode.bench.poison import run_poison
from whnode.sandbox import SandboxConfig, run_sandbox
from whnode.upstream.pool import ParsePool

pytestmark = pytest.mark.timeout(240)


async def test_no_honest_answer_is_fake_with_the_cross_check(tmp_path: Path) -> None:
    async with run_sandbox(SandboxConfig(catalog=False, population=10, max_items=20)) as sandbox:
        targets = list(sandbox.dispensaries)[:10]
        pool = ParsePool(workers=2, max_tasks_per_child=500, queue_depth=64)
        try:
            runs = []
            for crosscheck in (True, False):
                runs.append(
                    await run_poison(
                        share=0.1,
                        nodes=12,
                        targets=targets,
                        budget=100_000,
                        grinders=1.0,
                        reads=2,
                        crosscheck=crosscheck,
                        sandbox_url=sandbox.base_url,
                        pool=pool,
                        directory=tmp_path / str(crosscheck),
                        rng=random.Random(7),
                    )
                )
        finally:
            await pool.close()
    checked, baseline = runs
    for run in runs:
        assert run.attackers == 1
        assert run.grind_reached == 1  # placed first at its chosen target
        assert run.placed_first >= 1
        assert run.answers == run.reads == 20
    assert checked.fake_answers == 0
    assert checked.puts_accepted == 0
    assert checked.blocked_pairs > 0
    assert checked.crosscheck_rpcs > 0
    assert baseline.fake_answers > 0
    assert baseline.puts_accepted > 0
