"""docs/cli.md and docs/configuration.md, generated from the parser and the config classes."""

from __future__ import annotations

import argparse
from pathlib import Path

from whnode.cli.base import ExitCode
from whnode.cli.config import SOURCE_EXAMPLE
from whnode.cli.main import build_parser
from whnode.cli.parsing import HELP_WIDTH
from whnode.config import CONFIG_FILE_NAME, ENV_PREFIX, describe_config
from whnode.docstrings import attribute_docs


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            return choices
    return {}


def render_cli_markdown() -> str:
    """docs/cli.md: every command's help (with its example) and the exit codes table."""
    parser = build_parser(width=HELP_WIDTH)
    lines = [
        "# Command-line interface",
        "",
        "<!-- Generated from whnode/cli/ by whnode.cli.render_cli_markdown(); do not edit. -->",
        "",
        "`whnode` (or `python -m whnode`) runs one command. Commands that read configuration",
        "take `--data-dir`, `--config`, `--set SECTION.KEY=VALUE` and a few shortcuts; see",
        "[configuration.md](configuration.md) for every key and the precedence rules",
        "(flags > `WHNODE_*` environment > `whnode.toml` > defaults).",
        "",
        "## Exit codes",
        "",
        "| Code | Name | Meaning |",
        "|---:|---|---|",
    ]
    docs = attribute_docs(ExitCode)
    for code in ExitCode:
        lines.append(f"| {code.value} | `{code.name}` | {docs.get(code.name, '')} |")
    lines += [
        "",
        "`whnode run` and `whnode demo` stop cleanly on SIGTERM and on the first Ctrl-C and then",
        "exit 0 (a second Ctrl-C while draining exits 130). User errors print one line",
        "`whnode: error: ...` on stderr, never a traceback. `whnode config show` refuses",
        "exactly what `whnode run` refuses, with the same message naming the key.",
        "",
        "## The data directory",
        "",
        "`whnode run` (and `whnode get --embedded`, `whnode seed`) takes an exclusive lock on",
        "the data directory (`whnode.lock`, holding the pid) for as long as it runs: a second",
        "process on the same directory exits 1 at once, naming the pid of the first. The kernel",
        "drops the lock when the process ends, even by `kill -9`. `whnode run` creates a missing",
        "data directory (mode 0700) and a new identity in it (0600), as `whnode init` does but",
        "without a `whnode.toml`; `whnode id`, `whnode config show` and `whnode status` never",
        "create anything (`whnode id` on a directory without identity exits 2).",
        "",
        "A running node writes its HTTP URL to the `api` file of its data directory (removed",
        "when it stops). `whnode status`, `whnode peers` and `whnode get` without `--node` use",
        "it while the node runs, whatever port it was given (`--port 0` included); otherwise",
        "they use the configured host and port. An `api` file left by a killed process is",
        "ignored (its lock is gone).",
        "",
        "## whnode",
        "",
        "```",
        parser.format_help().rstrip(),
        "```",
    ]
    for name, command in _subcommands(parser).items():
        lines += ["", f"## whnode {name}", "", "```", command.format_help().rstrip(), "```"]
        for action_name, action in _subcommands(command).items():
            lines += [
                "",
                f"### whnode {name} {action_name}",
                "",
                "```",
                action.format_help().rstrip(),
                "```",
            ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_configuration_markdown() -> str:
    """docs/configuration.md, generated from ``whnode.config.describe_config()``."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from whnode/config.py by whnode.cli.render_configuration_markdown();",
        "     do not edit. -->",
        "",
        "A node has one configuration object (`whnode.config.Config`), built once by the",
        "command-line interface and passed down; nothing below `whnode/cli/` reads the",
        "environment or argv. An application embedding `whnode.Node` builds it with",
        "`whnode.config.build_config(...)` or constructs the dataclasses directly.",
        "",
        "## Where values come from (highest first)",
        "",
        "1. **Command-line flags**: `--set SECTION.KEY=VALUE` (repeatable) and the shortcuts",
        "   `--data-dir` (`node.data_dir`), `--host` (`node.host`), `--port` (`node.port`),",
        "   `--seed HOST:PORT` (`node.seeds`, repeatable), `--log-format` (`log.format`),",
        "   `--log-level` (`log.level`). A shortcut wins over `--set` of the same key.",
        "2. **Environment**: `WHNODE_<SECTION>_<KEY>` in upper case, e.g. `WHNODE_NODE_PORT=9000`,",
        "   `WHNODE_CACHE_HOT_CACHE_BYTES=134217728`. Lists are comma-separated",
        "   (`WHNODE_NODE_SEEDS=a.example:8468,b.example:8468`); booleans are",
        "   `true/false/1/0/yes/no/on/off`.",
        f"3. **The file**: `{CONFIG_FILE_NAME}` (TOML) in the data directory, or the file named",
        "   by `--config FILE` or `$WHNODE_CONFIG`. `whnode init` writes a commented one.",
        "   Upstream sources (base URL and credentials per vendor) can only be given here, as",
        "   `[[upstream.sources]]` tables.",
        "4. **Defaults**: the table below.",
        "",
        "The data directory itself comes from flags, then the environment, then the default",
        "(the file lives in it, so it cannot move it). Unknown sections or keys, values of the",
        "wrong type and values out of range are refused with a message naming the key (exit",
        'code 2). The file\'s values keep their TOML types: `port = "9000"` and',
        '`seeds = "a:1"` are refused, not converted (environment variables and flags are text',
        "and are parsed). Every rule is checked when the configuration is built, so `whnode",
        "config show` refuses exactly what `whnode run` refuses, with the same message; upstream",
        "sources are checked there too (known vendor, absolute http(s) `base_url`, credentials).",
        "`whnode config show` prints the effective configuration (TOML, or JSON with `--format",
        "json`) with secrets (keys named like key, secret, token, password, credential) masked",
        "as `***`.",
        "`whnode run` rereads the file on SIGHUP and applies the upstream sources.",
        "",
        "Example:",
        "",
        "```toml",
        "[node]",
        'seeds = ["seed1.example.org:8468"]',
        "port = 8468",
        "",
        "[cache]",
        "hot_cache_bytes = 134217728",
        "",
        *SOURCE_EXAMPLE,
        "```",
    ]
    current = ""
    for key, type_name, default, description in describe_config():
        section, _, name = key.partition(".")
        if section != current:
            current = section
            lines += [
                "",
                f"## [{section}]",
                "",
                "| Key | Type | Default | Environment | Description |",
                "|---|---|---|---|---|",
            ]
        env_name = f"{ENV_PREFIX}{section.upper()}_{name.upper()}"
        lines.append(
            f"| `{name}` | `{_cell(type_name)}` | `{_cell(default)}` | `{env_name}` "
            f"| {_cell(description)} |"
        )
    return "\n".join(lines) + "\n"


def write_docs(docs_dir: Path = Path("docs")) -> None:
    """Regenerate docs/cli.md and docs/configuration.md."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    (docs_dir / "cli.md").write_text(render_cli_markdown(), encoding="utf-8")
    (docs_dir / "configuration.md").write_text(render_configuration_markdown(), encoding="utf-8")
