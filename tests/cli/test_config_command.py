"""``whnode config show``: precedence flags > environment > file > defaults, masking, formats."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from whnode.cli import render_toml
from whnode.config import Config, build_config, masked

from .conftest import Cli, run_process


def show(cli: Cli, *argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    outcome = cli("config", "show", "--format", "json", *argv, env=env)
    assert outcome.code == 0, outcome.err
    document: dict[str, Any] = json.loads(outcome.out)
    return document


def write_file(data_dir: Path, text: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "whnode.toml"
    path.write_text(text, encoding="utf-8")
    return path


FILE = """
[node]
port = 7001
replication = 4
peer_timeout = 3.5

[cache]
history_per_dispensary = 11
"""


def test_defaults_without_file(cli: Cli, tmp_path: Path) -> None:
    effective = show(cli, "--data-dir", str(tmp_path / "none"))
    expected = masked(Config())
    expected["node"]["data_dir"] = str(tmp_path / "none")
    assert effective == expected


def test_each_layer_overrides_the_one_below(cli: Cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_file(data_dir, FILE)
    env = {"WHNODE_NODE_PORT": "7002", "WHNODE_NODE_REPLICATION": "5"}

    from_file = show(cli, "--data-dir", str(data_dir))
    assert from_file["node"]["port"] == 7001
    assert from_file["node"]["replication"] == 4
    assert from_file["cache"]["history_per_dispensary"] == 11

    from_env = show(cli, "--data-dir", str(data_dir), env=env)
    assert from_env["node"]["port"] == 7002  # environment beats file
    assert from_env["node"]["replication"] == 5
    assert from_env["node"]["peer_timeout"] == 3.5  # file beats default

    from_flags = show(
        cli,
        "--data-dir",
        str(data_dir),
        "--port",
        "7003",
        "--set",
        "cache.history_per_dispensary=2",
        env=env,
    )
    assert from_flags["node"]["port"] == 7003  # flag beats environment
    assert from_flags["node"]["replication"] == 5  # untouched by flags: environment
    assert from_flags["cache"]["history_per_dispensary"] == 2  # flag beats file
    assert from_flags["node"]["ksize"] == 20  # default


def test_shortcut_beats_set_and_seeds_accumulate(cli: Cli, tmp_path: Path) -> None:
    effective = show(
        cli,
        "--data-dir",
        str(tmp_path),
        "--set",
        "node.port=1111",
        "--port",
        "2222",
        "--seed",
        "a.example:8468",
        "--seed",
        "[::1]:9000",
    )
    assert effective["node"]["port"] == 2222
    assert effective["node"]["seeds"] == ["a.example:8468", "[::1]:9000"]


def test_environment_names_the_data_dir_and_the_file(cli: Cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "from-env"
    write_file(data_dir, FILE)
    effective = show(cli, env={"WHNODE_NODE_DATA_DIR": str(data_dir)})
    assert effective["node"]["port"] == 7001
    other = tmp_path / "elsewhere.toml"
    other.write_text("[node]\nport = 7777\n", encoding="utf-8")
    effective = show(cli, env={"WHNODE_NODE_DATA_DIR": str(data_dir), "WHNODE_CONFIG": str(other)})
    assert effective["node"]["port"] == 7777
    effective = show(cli, "--config", str(other), "--data-dir", str(data_dir))
    assert effective["node"]["port"] == 7777


def test_environment_lists_and_booleans(cli: Cli, tmp_path: Path) -> None:
    effective = show(
        cli,
        "--data-dir",
        str(tmp_path),
        env={"WHNODE_NODE_SEEDS": "a.example:1, b.example:2", "WHNODE_NODE_ROUTING_ONLY": "yes"},
    )
    assert effective["node"]["seeds"] == ["a.example:1", "b.example:2"]
    assert effective["node"]["routing_only"] is True


def test_secrets_are_masked_in_both_formats(cli: Cli, tmp_path: Path) -> None:
    write_file(
        tmp_path,
        '[[upstream.sources]]\nvendor = "jane"\nbase_url = "http://127.0.0.1:9"\n'
        'credentials = { algolia_api_key = "s3cr3t-value", algolia_app_id = "APPID" }\n',
    )
    as_json = cli("config", "show", "--format", "json", "--data-dir", str(tmp_path))
    as_toml = cli("config", "show", "--data-dir", str(tmp_path))
    for outcome in (as_json, as_toml):
        assert outcome.code == 0, outcome.err
        assert "s3cr3t-value" not in outcome.out
        assert "APPID" not in outcome.out
        assert "***" in outcome.out
    source = json.loads(as_json.out)["upstream"]["sources"][0]
    assert source == {
        "vendor": "jane",
        "base_url": "http://127.0.0.1:9",
        "credentials": {"algolia_api_key": "***", "algolia_app_id": "***"},
    }


def test_toml_output_reads_back_as_the_same_configuration(cli: Cli, tmp_path: Path) -> None:
    write_file(
        tmp_path,
        FILE + '\n[upstream]\ndispensaries = ["jane:1547"]\n\n'
        '[[upstream.sources]]\nvendor = "dutchie"\nbase_url = "http://127.0.0.1:8600"\n',
    )
    outcome = cli(
        "config", "show", "--data-dir", str(tmp_path), "--set", "node.advertise_host=203.0.113.7"
    )
    assert outcome.code == 0, outcome.err
    tomllib.loads(outcome.out)
    copy = tmp_path / "copy.toml"
    copy.write_text(outcome.out, encoding="utf-8")
    original = build_config(
        environ={}, flags={"node.data_dir": str(tmp_path), "node.advertise_host": "203.0.113.7"}
    )
    assert build_config(config_file=copy, environ={}) == original


def test_render_toml_writes_unset_values_as_comments() -> None:
    text = render_toml({"node": {"advertise_host": None, "port": 1, "name with space": "x"}})
    assert "# advertise_host is unset" in text
    assert tomllib.loads(text) == {"node": {"port": 1, "name with space": "x"}}


def test_real_process_applies_the_same_precedence(tmp_path: Path) -> None:
    write_file(tmp_path, FILE)
    outcome = run_process(
        "config",
        "show",
        "--format",
        "json",
        "--data-dir",
        str(tmp_path),
        "--set",
        "node.replication=6",
        env={"WHNODE_NODE_PORT": "7002"},
    )
    assert outcome.code == 0, outcome.err
    effective = json.loads(outcome.out)
    assert (effective["node"]["port"], effective["node"]["replication"]) == (7002, 6)
    assert effective["cache"]["history_per_dispensary"] == 11
