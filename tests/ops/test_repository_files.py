"""Files around the code: LICENSE, .gitignore, the build-context filters."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_license_is_the_apache_2_text_the_package_declares() -> None:
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text.splitlines()[1]
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == {"text": "Apache-2.0"}


@pytest.mark.parametrize(
    "path", ["whnode-data/identity.key", "whnode-seed-data/identity.key", ".venv/x"]
)
def test_data_directories_are_never_committed(path: str) -> None:
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path], check=False
    )
    assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"


def _patterns(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def _sent(patterns: list[str], name: str) -> bool:
    """Whether a top-level ``name`` is in the build context (last matching pattern wins)."""
    sent = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        if bare in ("*", name):
            sent = negated
    return sent


def test_build_context_holds_only_what_the_image_needs() -> None:
    root = _patterns(REPO / ".dockerignore")
    assert root == _patterns(REPO / "docker" / "Dockerfile.dockerignore")
    copied = []
    for line in (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            copied += line.split()[1:-1]
    assert copied == ["pyproject.toml", "README.md", "LICENSE", "whnode"]
    for name in copied:
        assert _sent(root, name), name
    for name in (".venv", ".git", "tests", "whnode-data", ".hypothesis", "docs"):
        assert not _sent(root, name), name
