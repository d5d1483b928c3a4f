"""Every ```python block of docs/library.md runs as it is, in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import whnode.client

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "docs" / "library.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples() -> list[str]:
    return BLOCK.findall(LIBRARY.read_text(encoding="utf-8"))


def test_the_guide_has_examples_and_covers_the_client() -> None:
    blocks = examples()
    assert len(blocks) >= 5
    text = LIBRARY.read_text(encoding="utf-8")
    public = [name for name in vars(whnode.client.Client) if not name.startswith("_")]
    for name in [*public, *whnode.client.__all__]:
        assert name in text, f"docs/library.md does not mention {name}"


@pytest.mark.parametrize("index", range(len(examples())))
def test_example_runs(index: int, tmp_path: Path) -> None:
    code = examples()[index]
    script = tmp_path / f"example_{index}.py"
    script.write_text(code, encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"example {index} failed:\n{code}\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), "an example should show what it does"
