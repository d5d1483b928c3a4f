"""Helpers for the command-line tests: run ``whnode`` in-process or as a real process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from whnode.cli import main


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


Cli = Callable[..., Outcome]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process configure the root logger; later tests must not inherit it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``whnode ARGS`` in this process with a clean environment and cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)

    def run(*argv: str, env: Mapping[str, str] | None = None) -> Outcome:
        capsys.readouterr()
        code = main(list(argv), environ=dict(env or {}))
        captured = capsys.readouterr()
        return Outcome(int(code), captured.out, captured.err)

    return run


def run_process(
    *argv: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 30
) -> Outcome:
    """Run ``python -m whnode ARGS`` as a real process (the installed entry point's twin)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WHNODE_")}
    environ.update(env or {})
    completed = subprocess.run(
        [sys.executable, "-m", "whnode", *argv],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(completed.returncode, completed.stdout, completed.stderr)
