"""`whnode bench store` runs end to end on a small workload and prints its figures."""

from __future__ import annotations

import re

import pytest

from whnode.bench.store import main


def test_bench_store_prints_rates_for_every_phase(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--records", "80", "--min-kb", "1", "--max-kb", "3", "--dispensaries", "9"]
    assert main([*argv, "--concurrency", "4"]) == 0
    output = capsys.readouterr().out
    for phase in (
        "put (each awaited)",
        "newest (each awaited)",
        "put (4 concurrent)",
        "newest (4 concurrent)",
        "hot cache newest",
    ):
        line = next(line for line in output.splitlines() if line.startswith(phase))
        rate = re.search(r"([\d,]+) ops/s", line)
        assert rate is not None
        assert int(rate.group(1).replace(",", "")) > 0
    assert "store: 80 records" in output
