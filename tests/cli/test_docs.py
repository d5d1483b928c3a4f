"""docs/cli.md and docs/configuration.md are generated, never edited by hand."""

from __future__ import annotations

from pathlib import Path

from whnode.cli import ExitCode, build_parser, render_cli_markdown, render_configuration_markdown
from whnode.config import describe_config

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = (
    "regenerate with: .venv/bin/python -c 'from whnode.cli import write_docs; write_docs()'"
)


def test_cli_reference_is_the_generated_text() -> None:
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == render_cli_markdown(), REGENERATE


def test_configuration_reference_is_the_generated_text() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert text == render_configuration_markdown(), REGENERATE


def test_cli_reference_covers_every_command_and_exit_code() -> None:
    text = render_cli_markdown()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands
    for name in commands:
        assert f"## whnode {name}\n" in text
    for code in ExitCode:
        assert f"| {code.value} | `{code.name}` |" in text


def test_configuration_reference_lists_every_key_with_its_variable() -> None:
    text = render_configuration_markdown()
    for key, _, _, description in describe_config():
        section, _, name = key.partition(".")
        assert f"| `{name}` |" in text
        assert f"`WHNODE_{section.upper()}_{name.upper()}`" in text
        assert description.replace("|", "\\|") in text
