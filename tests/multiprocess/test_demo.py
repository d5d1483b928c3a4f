"""``whnode demo --once``: the whole local network as real processes, as `make demo` runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DEMO_TIMEOUT = 120


def test_demo_once_runs_a_workload_and_exits_cleanly() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "whnode", "demo", "--once", "--requests", "200"],
        env={k: v for k, v in os.environ.items() if not k.startswith("WHNODE_")},
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "200 requests in" in out
    assert ", 0 failed" in out
    for label in ("whnode network (sandbox count)", "ideal: one central cache", "no cache"):
        assert label in out
    assert "\nhot " in out  # answers served from a node's memory
    assert "status page  http://127.0.0.1:" in out
    # one search and one change, checked against the signed records
    assert re.search(r"search       cheapest flower per gram on \S+ \(\d+\+? matches\):", out), out
    assert re.search(r"\n             \S+:\S+  .+  [\d.]+ g at \$[\d.]+/g\n", out), out
    assert re.search(r"changes      \S+ over \d+ snapshot\(s\): \d+ added", out), out
    assert "[##############################] 200/200" in completed.stderr
    assert "problem:" not in completed.stderr

    root = re.search(r"logs in (\S+)\)", completed.stderr)
    assert root is not None, completed.stderr
    assert not Path(root.group(1)).exists()  # the temporary data directories are gone
    assert processes_mentioning(root.group(1)) == []  # and no child outlived the demo


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found
