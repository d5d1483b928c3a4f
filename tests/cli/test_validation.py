"""One validation: ``config show`` refuses exactly what ``run`` refuses, naming the key a
user sets; the TOML file's types are not coerced."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from whnode.config import Config, build_config
from whnode.dht import DhtConfig
from whnode.dht import config as dht_config
from whnode.errors import ConfigError
from whnode.upstream.http import UpstreamHttpConfig

from .conftest import Cli

BAD_FILES = [
    ('[node]\nport = "9000"', "node.port: expected an integer, got '9000'"),
    ('[node]\nseeds = "a.example:1"', "node.seeds: expected a list, got 'a.example:1'"),
    ("[node]\nport = 9000.0", "node.port: expected an integer, got 9000.0"),
    ('[node]\nrouting_only = "yes"', "node.routing_only: expected true or false, got 'yes'"),
    ("[node]\nksize = 0", "node.ksize must be at least 1, not 0"),
    ("[node]\nalpha = 0", "node.alpha must be at least 1, not 0"),
    ("[node]\nrpc_timeout = 0", "node.rpc_timeout must be > 0, not 0.0"),
    ("[node]\nlookup_deadline = nan", "node.lookup_deadline must be a finite number, not nan"),
    ('[node]\nadvertise_host = "node.example"', "node.advertise_host must be an IP address"),
    ("[upstream]\nburst = 0", "upstream.burst must be at least 1, not 0"),
    ('[upstream]\nuser_agent = " "', "upstream.user_agent must be printable and not empty"),
    (
        '[[upstream.sources]]\nvendor = "nosuch"',
        "upstream.sources[0].vendor: unknown vendor 'nosuch'",
    ),
    (
        '[[upstream.sources]]\nvendor = "jane"\nbase_url = "ftp://x"',
        "upstream.sources[0].base_url must be an absolute http(s) URL",
    ),
    (
        '[[upstream.sources]]\nvendor = "weedmaps"\ncredentials = { api = "v9" }',
        "upstream.sources[0]: source weedmaps: api must be discovery or v1",
    ),
    ("[freshness]\nmin_ttl = 600\nmax_ttl = 60", "freshness.max_ttl must be >= freshness.min_ttl"),
    ("[trust]\nnode_id_difficulty = 33", "trust.node_id_difficulty must be 0..32, not 33"),
    ("[trust]\nowner_ids_per_ip = 0", "trust.owner_ids_per_ip must be at least 1, not 0"),
]


@pytest.mark.parametrize(("file_text", "message"), BAD_FILES)
def test_config_show_and_run_refuse_the_same_file_the_same_way(
    cli: Cli, tmp_path: Path, file_text: str, message: str
) -> None:
    (tmp_path / "whnode.toml").write_text(file_text + "\n", encoding="utf-8")
    shown = cli("config", "show", "--data-dir", str(tmp_path))
    run = cli("run", "--data-dir", str(tmp_path), "--port", "0")
    assert shown.code == run.code == 2, (shown.err, run.err)
    assert shown.err == run.err
    assert shown.err.startswith(f"whnode: error: {message}"), shown.err
    assert "dht." not in shown.err
    assert not (tmp_path / "identity.key").exists()  # refused before anything started


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("node.ksize=0", "node.ksize must be at least 1, not 0"),
        ("upstream.max_retries=-1", "upstream.max_retries must be at least 0, not -1"),
        ("node.ksize=2.5", "node.ksize: expected an integer, got '2.5'"),
    ],
)
def test_flags_are_parsed_from_text_and_checked_under_their_names(
    cli: Cli, tmp_path: Path, flag: str, message: str
) -> None:
    for command in (["config", "show"], ["run", "--port", "0"]):
        outcome = cli(*command, "--data-dir", str(tmp_path), "--set", flag)
        assert outcome.code == 2
        assert outcome.err == f"whnode: error: {message}\n"


def test_environment_and_flags_parse_text_the_file_does_not(cli: Cli, tmp_path: Path) -> None:
    outcome = cli(
        "config",
        "show",
        "--format",
        "json",
        "--data-dir",
        str(tmp_path),
        env={"WHNODE_NODE_PORT": "9000", "WHNODE_NODE_SEEDS": "a.example:1,b.example:2"},
    )
    assert outcome.code == 0, outcome.err
    assert '"port": 9000' in outcome.out
    assert '"a.example:1",' in outcome.out


def test_what_config_accepts_the_layers_below_accept() -> None:
    """Boundary values a built Config accepts build the DHT and upstream configurations."""
    config = build_config(
        environ={},
        flags={
            "node.ksize": "1",
            "node.alpha": "1",
            "node.rpc_timeout": "0.001",
            "node.lookup_deadline": "0.001",
            "node.advertise_host": "::1",
            "upstream.burst": "1",
            "upstream.max_retries": "0",
            "upstream.breaker_cooldown": "0",
            "trust.node_id_difficulty": "32",
        },
    )
    dht = DhtConfig.from_config(config)
    assert (dht.ksize, dht.alpha, dht.advertise_host, dht.node_id_difficulty) == (1, 1, "::1", 32)
    http = UpstreamHttpConfig.from_config(config.upstream)
    assert (http.burst, http.max_retries, http.breaker_cooldown) == (1, 0, 0.0)


@pytest.mark.parametrize(
    ("cls", "keys"),
    [(DhtConfig, dht_config.USER_KEYS), (UpstreamHttpConfig, UpstreamHttpConfig.USER_KEYS)],
)
def test_the_layers_copies_of_user_keys_take_the_keys_defaults_and_rules(
    cls: type[Any], keys: Mapping[str, str]
) -> None:
    """A layer's copy of a user key has the key's default (except the DHT's node-id puzzle,
    off for a DhtNode built alone) and refuses what the key refuses, under its own name."""
    built = cls()
    config = Config()
    for name, key in keys.items():
        section, _, field_name = key.partition(".")
        if key != "trust.node_id_difficulty":
            assert getattr(built, name) == getattr(getattr(config, section), field_name), name
    numeric = [name for name in keys if isinstance(getattr(built, name), int | float)]
    for name in numeric:
        if isinstance(getattr(built, name), bool):
            continue
        with pytest.raises(ConfigError, match=name) as refused:
            cls(**{name: -1})
        key = keys[name]
        with pytest.raises(ConfigError) as user_refused:
            build_config(environ={}, flags={key: "-1"})
        assert str(user_refused.value).startswith(key)
        rule = str(user_refused.value).partition(" must ")[2].partition(", not")[0]
        assert f"dht.{name} must {rule}" in str(refused.value) or (
            f"upstream {name} must {rule}" in str(refused.value)
        ), (str(refused.value), rule)


def test_a_node_builds_its_dht_configuration_from_every_copied_key() -> None:
    changed = {
        "node.ksize": "7",
        "node.alpha": "2",
        "node.rpc_timeout": "1.5",
        "node.lookup_deadline": "4",
        "node.routing_only": "true",
        "node.advertise_host": "10.0.0.9",
        "trust.node_id_difficulty": "3",
        "trust.ids_per_ip": "5",
        "trust.owner_ids_per_ip": "2",
    }
    assert set(changed) == set(dht_config.USER_KEYS.values())
    dht = DhtConfig.from_config(build_config(environ={}, flags=changed))
    assert (dht.ksize, dht.alpha, dht.rpc_timeout, dht.lookup_deadline) == (7, 2, 1.5, 4.0)
    assert (dht.routing_only, dht.advertise_host) == (True, "10.0.0.9")
    assert (dht.node_id_difficulty, dht.ids_per_ip, dht.owner_ids_per_ip) == (3, 5, 2)
    assert DhtConfig.from_config(Config(), ksize=9).ksize == 9  # a seed's own changes
