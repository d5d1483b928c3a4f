"""One validation: ``config show`` refuses exactly what ``run`` refuses, naming the key a
user sets; the TOML file's types are not coerced."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from whnode.config import Config, build_config
from whnode.dht import DhtConfig
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
        },
    )
    node = config.node
    DhtConfig(
        ksize=node.ksize,
        alpha=node.alpha,
        rpc_timeout=node.rpc_timeout,
        lookup_deadline=node.lookup_deadline,
        advertise_host=node.advertise_host,
    )
    upstream = config.upstream
    UpstreamHttpConfig(
        user_agent=upstream.user_agent,
        requests_per_second=upstream.requests_per_second,
        burst=upstream.burst,
        concurrency_per_host=upstream.concurrency_per_host,
        request_timeout=upstream.request_timeout,
        max_retries=upstream.max_retries,
        breaker_failures=upstream.breaker_failures,
        breaker_cooldown=upstream.breaker_cooldown,
    )


def test_the_layers_defaults_are_the_configuration_defaults() -> None:
    """The DHT and upstream layers keep defaults of their own (they never import the config);
    they must not drift from the user-facing ones."""
    node, upstream = Config().node, Config().upstream
    dht = DhtConfig()
    assert (dht.ksize, dht.alpha, dht.rpc_timeout, dht.lookup_deadline) == (
        node.ksize,
        node.alpha,
        node.rpc_timeout,
        node.lookup_deadline,
    )
    http = UpstreamHttpConfig()
    for name in (
        "requests_per_second",
        "burst",
        "concurrency_per_host",
        "request_timeout",
        "max_retries",
        "breaker_failures",
        "breaker_cooldown",
    ):
        assert getattr(http, name) == getattr(upstream, name), name
    assert dataclasses.is_dataclass(http)
