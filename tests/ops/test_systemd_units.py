"""The systemd units: hardening present, ExecStart commands valid for the CLI and the config."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from whnode import cli
from whnode.cli.seed import seed_config
from whnode.config import DEFAULT_PORT, NodeConfig, build_config

REPO = Path(__file__).resolve().parents[2]
SEED_UNIT = REPO / "bootstrap" / "whnode-seed.service"
NODE_UNIT = REPO / "docker" / "whnode-node.service"

Unit = dict[str, dict[str, list[str]]]

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "UMask": "0077",
}


def parse_unit(path: Path) -> Unit:
    """A strict reader of systemd unit syntax: [Section], Key=Value, comments, repeats kept."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: no continuation lines"
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: bad section header"
            name = line[1:-1]
            assert name not in unit, f"{path.name}:{number}: section [{name}] twice"
            section = unit.setdefault(name, {})
            continue
        key, sep, value = line.partition("=")
        valid = bool(sep) and key.strip() == key and key.isidentifier()
        assert valid, f"{path.name}:{number}: not Key=Value: {line}"
        assert section is not None, f"{path.name}:{number}: key outside a section"
        section.setdefault(key, []).append(value.strip())
    return unit


def single(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values is not None, f"[{section}] {key}= missing"
    assert len(values) == 1, f"[{section}] {key}= given {len(values)} times"
    return values[0]


def environment(unit: Unit) -> dict[str, str]:
    result: dict[str, str] = {}
    for line in unit["Service"].get("Environment", []):
        for item in shlex.split(line):
            key, _, value = item.partition("=")
            result[key] = value
    return result


@pytest.mark.parametrize("path", [SEED_UNIT, NODE_UNIT], ids=["seed", "node"])
def test_units_are_hardened(path: Path) -> None:
    unit = parse_unit(path)
    assert set(unit) == {"Unit", "Service", "Install"}
    for key, value in HARDENING.items():
        assert single(unit, "Service", key) == value, key
    families = single(unit, "Service", "RestrictAddressFamilies").split()
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_UNIX"]  # AF_UNIX: sd_notify
    # the programs send READY=1 and STOPPING=1 (tests/ops/test_daemon_lifecycle.py)
    assert single(unit, "Service", "Type") == "notify"
    assert single(unit, "Service", "NotifyAccess") == "main"
    filters = unit["Service"]["SystemCallFilter"]
    assert filters[0] == "@system-service"
    assert all(extra.startswith("~") for extra in filters[1:])  # only ever narrowed further
    service = unit["Service"]
    dynamic = service.get("DynamicUser", ["no"]) == ["yes"]
    user = service.get("User", [""])[0]
    assert dynamic or (user and user != "root"), "a transient or dedicated user, never root"
    assert single(unit, "Service", "StateDirectoryMode") == "0700"
    assert single(unit, "Service", "KillSignal") == "SIGTERM"
    assert single(unit, "Service", "Restart") == "on-failure"
    assert single(unit, "Unit", "After") == "network-online.target"
    assert single(unit, "Install", "WantedBy") == "multi-user.target"


def exec_start(unit: Unit) -> list[str]:
    argv = shlex.split(single(unit, "Service", "ExecStart"))
    assert Path(argv[0]).is_absolute()
    assert Path(argv[0]).name == "whnode"
    return argv[1:]


def test_seed_unit_runs_a_valid_seed_command() -> None:
    unit = parse_unit(SEED_UNIT)
    argv = exec_start(unit)
    assert argv[0] == "seed"
    assert cli.build_parser().parse_args(argv).command == "seed"
    config = seed_config(argv[1:], {})
    state = single(unit, "Service", "StateDirectory")
    assert config.node.data_dir == Path("/var/lib") / state
    assert single(unit, "Service", "WorkingDirectory") == str(config.node.data_dir)
    assert config.node.host == "0.0.0.0"
    assert config.node.port == DEFAULT_PORT
    assert single(unit, "Service", "DynamicUser") == "yes"
    # the seed saves its peer table on SIGTERM well within the stop timeout
    assert int(single(unit, "Service", "TimeoutStopSec")) >= 10


def test_node_unit_runs_a_valid_node_command() -> None:
    unit = parse_unit(NODE_UNIT)
    argv = exec_start(unit)
    args = cli.build_parser().parse_args(argv)
    assert args.command == "run"
    env = environment(unit)
    config_dir = Path("/etc") / single(unit, "Service", "ConfigurationDirectory")
    assert Path(env["WHNODE_CONFIG"]).parent == config_dir
    flags = {"node.data_dir": args.data_dir, "node.host": args.host, "node.port": args.port}
    config = build_config(config_file=Path(os.devnull), environ={}, flags=flags)
    state = single(unit, "Service", "StateDirectory")
    assert config.node.data_dir == Path("/var/lib") / state
    assert single(unit, "Service", "WorkingDirectory") == str(config.node.data_dir)
    assert config.node.port == DEFAULT_PORT
    assert config.node.host == "0.0.0.0"
    assert args.log_format == "json"
    # every environment variable the unit sets for whnode names a real configuration key
    whnode_env = {k: v for k, v in env.items() if k.startswith("WHNODE_")}
    assert set(whnode_env) == {"WHNODE_CONFIG"}
    # SIGHUP reloads the sources; SIGTERM drains within the stop timeout
    assert shlex.split(single(unit, "Service", "ExecReload"))[1:] == ["-HUP", "$MAINPID"]
    drain = NodeConfig().drain_timeout
    assert int(single(unit, "Service", "TimeoutStopSec")) > drain + 5
    assert single(unit, "Service", "User") == single(unit, "Service", "Group") == "whnode"


def test_parser_refuses_what_systemd_would_misread(tmp_path: Path) -> None:
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=/bin/true \\\n  --flag\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="continuation"):
        parse_unit(broken)
    twice = tmp_path / "twice.service"
    twice.write_text("[Service]\nUser=a\n[Service]\nUser=b\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="twice"):
        parse_unit(twice)
