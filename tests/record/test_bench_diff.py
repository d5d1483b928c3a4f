"""`whnode bench diff` runs and prints its figures (not asserted: they depend on the machine)."""

from __future__ import annotations

import re

import pytest

from whnode.bench.diff import main


def test_bench_diff_prints_diff_and_query_costs(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--repeat", "1"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+([\d,]+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", out, re.MULTILINE)
    assert [row[0] for row in rows] == ["250", "2,500"], out
    for _, changed, diff_ms, query_ms, matches in rows:
        assert int(changed) > 0
        assert float(diff_ms) > 0
        assert float(query_ms) > 0
        assert int(matches) > 0
    assert re.search(r"goal: a diff of a 2,500-product menu under 50 ms CPU: (met|NOT met)", out)
    assert code == (0 if "NOT met" not in out else 1)
