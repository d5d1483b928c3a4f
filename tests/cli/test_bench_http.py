"""`whnode bench http`: one short round end to end (real node, sandbox, load generator).

The figures themselves are not asserted (they depend on the machine); the test checks that
the command runs both sides for both measured content codings (identity and br), that each
answered requests, and that it prints the bytes on the wire per coding, the ratio, the server
CPU per request and the RSS figures it promises.
"""

from __future__ import annotations

import re

import pytest

from .conftest import run_process

pytestmark = pytest.mark.timeout(120)


def test_bench_http_prints_the_ratio_the_cpu_per_request_and_the_rss() -> None:
    outcome = run_process(
        "bench",
        "http",
        "--rounds",
        "1",
        "--duration",
        "1",
        "--connections",
        "8",
        "--records",
        "50",
        timeout=110,
    )
    assert outcome.code == 0, outcome.err
    out = outcome.out
    round_line = re.search(
        r"round 1: whnode GET /v1/menus/\{id\}\s+([\d,]+) req/s \((\d+) us CPU each\); "
        r"bare aiohttp handler\s+([\d,]+) req/s \((\d+) us\); ratio ([\d.]+)",
        out,
    )
    assert round_line is not None, out
    whnode_rate, whnode_cpu, bare_rate, bare_cpu, ratio = round_line.groups()
    assert int(whnode_rate.replace(",", "")) > 0
    assert int(bare_rate.replace(",", "")) > 0
    assert int(whnode_cpu) > 0
    assert int(bare_cpu) > 0
    assert float(ratio) > 0
    for coding in ("identity", "br"):
        assert re.search(rf"{coding}: median ratio over 1 rounds: [\d.]+", out), out
    for menu in ("250 products", "2,500 products"):
        for representation in ("json", "cbor"):
            row = re.search(
                rf"{menu}, {representation}\s+([\d,]+)"
                r"\s+([\d,]+) \(\s*[\d.]+x\)\s+([\d,]+) \(\s*[\d.]+x\)\s+([\d,]+)",
                out,
            )
            assert row is not None, out
            plain, *compressed = (int(cell.replace(",", "")) for cell in row.groups())
            assert all(0 < size < plain for size in compressed), row.group(0)
    assert "server busy" in out
    rss = re.search(r"RSS of a node: idle (\d+) MiB; holding 50 records (\d+) MiB", out)
    assert rss is not None, out
    assert 0 < int(rss.group(1)) <= int(rss.group(2))
