"""The example of docs/upstreams.md runs as it is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "upstreams.md"


def test_the_sandbox_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```$", GUIDE.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 1
    script = tmp_path / "example.py"
    script.write_text(blocks[0], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0"]


def test_the_guide_names_every_served_dispensary() -> None:
    from whnode.sandbox import NAMED_IDS

    text = GUIDE.read_text(encoding="utf-8")
    for dispensary_id in NAMED_IDS:
        assert f"`{dispensary_id.partition(':')[2]}`" in text, dispensary_id
