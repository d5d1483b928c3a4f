"""Bad flags and bad configuration: one clear line on stderr, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from whnode.cli import ExitCode, exit_code_for
from whnode.errors import ConfigError, RemoteError, UsageError, WhnodeError

from .conftest import Cli, run_process


def assert_user_error(outcome_code: int, err: str, *fragments: str) -> None:
    assert outcome_code == ExitCode.USAGE_ERROR, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize(
    ("file_text", "fragment"),
    [
        ("[node\nport = 1", "invalid TOML"),
        ("[node]\nport = 70000", "node.port must be 0..65535"),
        ("[node]\nport = 'eighty'", "node.port: expected an integer"),
        ("[nodes]\nport = 1", "unknown configuration section 'nodes'"),
        ("[node]\nprot = 1", "unknown configuration key node.prot"),
        ("port = 1", "must be a [section]"),
        ("[trust]\nmode = 'allowlist'", "needs at least one trust.allowlist key"),
        ("[[upstream.sources]]\nbase_url = 'http://x'", "a source needs a vendor"),
    ],
)
def test_bad_file(cli: Cli, tmp_path: Path, file_text: str, fragment: str) -> None:
    (tmp_path / "whnode.toml").write_text(file_text, encoding="utf-8")
    outcome = cli("config", "show", "--data-dir", str(tmp_path))
    assert_user_error(outcome.code, outcome.err, "whnode: error:", fragment)
    assert outcome.out == ""


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--set", "node.port"], {}, "expected SECTION.KEY=VALUE"),
        (["--set", "node.nope=1"], {}, "unknown configuration key node.nope"),
        (["--set", "pool.workers=-1"], {}, "pool.workers must be at least 0, not -1"),
        (["--seed", "no-port"], {}, "node.seeds: 'no-port': expected HOST:PORT"),
        (["--log-level", "LOUD"], {}, "is not a log level"),
        ([], {"WHNODE_NODE_ROUTING_ONLY": "maybe"}, "node.routing_only: expected true or false"),
        ([], {"WHNODE_NODE_FROB": "1"}, "unknown configuration key node.frob"),
        (["--config", "/nonexistent/whnode.toml"], {}, "cannot read"),
    ],
)
def test_bad_flag_or_environment(
    cli: Cli, tmp_path: Path, argv: list[str], env: dict[str, str], fragment: str
) -> None:
    outcome = cli("config", "show", "--data-dir", str(tmp_path), *argv, env=env)
    assert_user_error(outcome.code, outcome.err, fragment)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run", "--log-format", "xml"], "invalid choice: 'xml'"),
        (["get"], "the following arguments are required: DISPENSARY"),
        (["get", "jane:1", "--max-age", "-5"], "must be >= 0"),
        (["get", "jane:1", "--at", "yesterday"], "neither ISO-8601"),
        (["get", "jane:1", "--embedded", "--node", "http://x:1"], "not allowed with argument"),
        (["get", "jane:1", "--format", "xml"], "invalid choice: 'xml'"),
        (["demo", "--nodes", "0"], "must be >= 1"),
        (["config"], "the following arguments are required: ACTION"),
        (["bench", "nope"], "invalid choice: 'nope'"),
    ],
)
def test_usage_errors(cli: Cli, argv: list[str], fragment: str) -> None:
    outcome = cli(*argv)
    assert_user_error(outcome.code, outcome.err, fragment)
    assert "usage: whnode" in outcome.err


def test_get_refuses_a_malformed_dispensary_id(cli: Cli) -> None:
    outcome = cli("get", "not-a-dispensary", "--node", "http://127.0.0.1:9")
    assert_user_error(outcome.code, outcome.err, "is not a dispensary id")


def test_node_url_must_be_http(cli: Cli) -> None:
    outcome = cli("status", "--node", "127.0.0.1:8468")
    assert_user_error(outcome.code, outcome.err, "must be http(s)://host[:port]")


def test_help_and_version_exit_zero(cli: Cli) -> None:
    for argv in (["--help"], ["--version"], ["init", "--help"], ["config", "show", "--help"]):
        outcome = cli(*argv)
        assert outcome.code == 0, argv
        assert outcome.out


def test_every_command_has_help_with_an_example(cli: Cli) -> None:
    for command in ("init", "run", "id", "get", "status", "peers", "demo", "bench"):
        outcome = cli(command, "--help")
        assert outcome.code == 0, command
        assert "example:\n  whnode " + command in outcome.out


def test_exit_codes_follow_the_error_tree() -> None:
    assert exit_code_for(ConfigError("x")) == 2
    assert exit_code_for(UsageError("x")) == 2
    assert exit_code_for(RemoteError("x")) == 4
    assert exit_code_for(WhnodeError("x")) == 1
    assert exit_code_for(KeyboardInterrupt()) == 130
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 4, 130]


def test_real_process_reports_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "whnode.toml").write_text("[node]\nport = -1\n", encoding="utf-8")
    outcome = run_process("run", "--data-dir", str(tmp_path))
    assert outcome.code == 2
    assert outcome.err == "whnode: error: node.port must be 0..65535, not -1\n"
    outcome = run_process("get", "jane:1", "--at", "soon")
    assert outcome.code == 2
    assert "Traceback" not in outcome.err
