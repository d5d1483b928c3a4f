"""Count the test functions that depend on the wall clock (issue 14's figure; the rules are in
docs/testing.md, "Time in tests")::

    python -m tests.timing_census [-v] [directory]

A test function (``def test_*``, counted once however it is parametrized) depends on the wall
clock when its body, a fixture it takes, or a function it calls by name (transitively, among
the functions and fixtures of ``tests/`` and ``whnode/testing/``):

- sleeps a non-zero time (``sleep(0)`` only yields), or
- reads a clock to measure or bound elapsed time (``monotonic()``, ``perf_counter()``,
  ``loop.time()``, ``time.time() - ...``, a ``timedelta``'s ``total_seconds()``, as between
  two log timestamps; a ``time.time()`` that only stamps a record or
  seeds a virtual clock measures nothing and is not counted).

Not counted: waiting for a condition or an event under a deadline that is only a failure guard
(``whnode.testing.clock.eventually``, ``asyncio.timeout``, ``asyncio.wait_for``), and time that
a :class:`whnode.testing.clock.ManualClock` (or any ``clock=``) moves by hand. Method calls
(``node.wait_connected()``) are not followed: library methods wait on conditions, not times.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SLEEP = re.compile(r"\bsleep\((?!\s*0(?:\.0)?\s*[,)])")
CLOCK = re.compile(
    r"\bmonotonic\(|\bperf_counter\(|\bloop\.time\(\)|\bmonotonic_ns\(|\btime\.time\(\)\s*-"
    r"|\.total_seconds\(\)"
)
SANCTIONED = frozenset({"eventually", "eventually_sync"})
"""Helpers that wait for a condition under a failure-guard deadline (not counted)."""


@dataclass
class Function:
    module: str
    name: str
    own: bool
    """Its own body sleeps or reads a clock."""
    calls: set[str] = field(default_factory=set)
    """Names it calls (plain names) and fixtures it takes."""


@dataclass
class Module:
    name: str
    path: Path
    functions: dict[str, Function] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)
    """local name -> (module, name) for ``from M import name``."""


def _module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def _depends_on_clock(source: str) -> bool:
    return bool(SLEEP.search(source) or CLOCK.search(source))


def _read(path: Path, root: Path) -> tuple[Module, ast.Module, str]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    module = Module(_module_name(path, root), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                module.imports[alias.asname or alias.name] = (node.module, alias.name)
    for node in tree.body:
        for function in _functions(node):
            source = ast.get_source_segment(text, function) or ""
            calls = {
                call.func.id
                for call in ast.walk(function)
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            }
            calls |= {arg.arg for arg in function.args.args}  # fixtures by parameter name
            module.functions[function.name] = Function(
                module.name, function.name, _depends_on_clock(source), calls
            )
    return module, tree, text


def _functions(node: ast.stmt) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        yield node
    elif isinstance(node, ast.ClassDef):
        for item in node.body:
            yield from _functions(item)


class Index:
    """Every function of tests/ and whnode/testing/, and how names resolve between them."""

    def __init__(self, repository: Path) -> None:
        self.modules: dict[str, Module] = {}
        paths = [
            *(repository / "tests").rglob("*.py"),
            *(repository / "whnode/testing").rglob("*.py"),
        ]
        for path in sorted(paths):
            module, _, _ = _read(path, repository)
            self.modules[module.name] = module
        self._memo: dict[tuple[str, str], bool] = {}

    def conftests(self, module: Module) -> list[Module]:
        """The conftest modules whose fixtures ``module`` sees (its folder and those above)."""
        parts = module.name.split(".")[:-1]
        found = []
        while parts:
            conftest = self.modules.get(".".join([*parts, "conftest"]))
            if conftest is not None:
                found.append(conftest)
            parts.pop()
        return found

    def resolve(self, module: Module, name: str) -> Function | None:
        if name in SANCTIONED:
            return None
        if name in module.functions:
            return module.functions[name]
        imported = module.imports.get(name)
        if imported is not None:
            target = self.modules.get(imported[0])
            if imported[1] in SANCTIONED:
                return None
            return target.functions.get(imported[1]) if target is not None else None
        for conftest in self.conftests(module):
            if name in conftest.functions:
                return conftest.functions[name]
        return None

    def depends(self, function: Function, seen: frozenset[tuple[str, str]] = frozenset()) -> bool:
        key = (function.module, function.name)
        if key in self._memo:
            return self._memo[key]
        if function.own:
            self._memo[key] = True
            return True
        seen = seen | {key}
        module = self.modules[function.module]
        result = False
        for name in sorted(function.calls):
            callee = self.resolve(module, name)
            if callee is None or (callee.module, callee.name) in seen:
                continue
            if self.depends(callee, seen):
                result = True
                break
        self._memo[key] = result
        return result


def census(root: Path) -> tuple[list[str], int]:
    """The wall-clock test functions under ``root`` (as path::name), and all test functions."""
    repository = root.resolve().parent if root.name == "tests" else Path(__file__).parent.parent
    index = Index(repository)
    found: list[str] = []
    total = 0
    for path in sorted(root.resolve().rglob("test_*.py")):
        module = index.modules[_module_name(path, repository)]
        for name, function in module.functions.items():
            if not name.startswith("test_"):
                continue
            total += 1
            if index.depends(function):
                found.append(f"{path.relative_to(repository)}::{name}")
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
