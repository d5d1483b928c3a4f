"""Count the test functions that depend on the wall clock: they sleep (a non-zero
``sleep``; ``sleep(0)`` only yields) or read a clock to bound elapsed time (``monotonic``,
``perf_counter``, ``loop.time()``). Issue 14's figure::

    python -m tests.timing_census [-v] [directory]

Each ``def test_*`` is counted once (parametrized or not), by its own body only.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

WALL_CLOCK = re.compile(r"\bsleep\((?!\s*0(?:\.0)?\s*\))|monotonic\(|perf_counter\(|loop\.time\(\)")


def census(root: Path) -> tuple[list[str], int]:
    """The wall-clock test functions under ``root`` (as path::name), and all test functions."""
    found: list[str] = []
    total = 0
    for path in sorted(root.rglob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                total += 1
                if WALL_CLOCK.search(ast.get_source_segment(text, node) or ""):
                    found.append(f"{path}::{node.name}")
    return found, total


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    paths = [arg for arg in argv if arg != "-v"]
    found, total = census(Path(paths[0] if paths else Path(__file__).parent))
    if verbose:
        print("\n".join(found))
    print(f"{len(found)} of {total} test functions sleep or read a clock")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
