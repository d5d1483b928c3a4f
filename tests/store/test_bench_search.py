"""``whnode bench search`` end to end on a small index: it builds, serves and measures, and
prints a figure for every query kind."""

from __future__ import annotations

import pytest

from whnode.bench import search as bench
from whnode.bench.search import QUERIES


def test_the_search_bench_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["--menus", "4", "--requests", "32", "--concurrency", "2"])
    out = capsys.readouterr().out
    assert code in (0, 1)  # 1: the goal was not met on this (possibly loaded) machine
    assert "index: 4 menus" in out
    for kind in QUERIES:
        assert kind in out
    assert "2 in flight; load average" in out
    assert "ms of CPU a search" in out
