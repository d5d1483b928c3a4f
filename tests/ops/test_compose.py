"""docker/compose.yaml and docker/Dockerfile checked against the programs they run.

PyYAML is not a whnode dependency, so compose.yaml is kept in a strict YAML subset (block
style, quoted strings) and read with ``tests/ops/yamlsubset.py``, which refuses anything whose
meaning could differ between that reader, PyYAML and Docker Compose. What is checked:

- each service's ``command`` parses with the CLI (``whnode run ...``) or with the parser of
  the module the CLI hands it to (``whnode seed ...``, ``whnode sandbox ...``);
- each health check is a ``python -c`` probe of an endpoint the program serves, on the port
  it is configured with; the seed's probe, and the image's HEALTHCHECK, are run against a real
  seed (healthy: exit 0; unhealthy or down: not 0);
- published ports map to the configured port, UDP and TCP for DHT peers;
- every ``WHNODE_*`` variable names a configuration key, and the configuration the nodes get
  (environment + docker/whnode.toml) builds, names the seed service and points every vendor
  at the sandbox service;
- start order: nodes wait for the seed and the sandbox to be healthy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shlex
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from tests.ops.yamlsubset import parse_yaml_subset
from whnode import cli
from whnode.cli.seed import seed_config as seed_command_config
from whnode.config import (
    DEFAULT_PORT,
    ENV_PREFIX,
    SECTIONS,
    Config,
    build_config,
    parse_host_port,
)
from whnode.node import Node
from whnode.testing.clock import ManualClock

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
NODE_TOML = DOCKER / "whnode.toml"
NODES = ("node1", "node2", "node3")
PROBE_URL = re.compile(r"http://127\.0\.0\.1:(\{port\}|\d+)(/[A-Za-z0-9_/.-]*)")


def compose() -> dict[str, Any]:
    document = parse_yaml_subset(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def node_environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment with WHNODE_CONFIG pointed at the file it mounts."""
    env = {str(k): str(v) for k, v in service.get("environment", {}).items()}
    mounts = dict(_bind_mounts(service))
    env["WHNODE_CONFIG"] = str(mounts[env["WHNODE_CONFIG"]])
    return env


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, Path]]:
    """(container path, host path) of the service's bind mounts."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts.append((target, (DOCKER / source).resolve()))
    return mounts


def node_config(service: dict[str, Any]) -> Config:
    args = cli.build_parser().parse_args(service["command"])
    flags = {
        key: value
        for key, value in {
            "node.data_dir": args.data_dir,
            "node.host": args.host,
            "node.port": args.port,
        }.items()
        if value is not None
    }
    return build_config(environ=node_environment(service), flags=flags)


def seed_config() -> Config:
    command = services()["seed"]["command"]
    assert command[0] == "seed"
    return seed_command_config(command[1:], {})


def sandbox_port() -> int:
    from whnode.sandbox import cli as sandbox_cli

    command = services()["sandbox"]["command"]
    assert command[0] == "sandbox"
    port: int = sandbox_cli.build_parser().parse_args(command[1:]).port
    return port


def probe(service: dict[str, Any]) -> tuple[str, int, str]:
    """(python code, port, path) of a service's health check."""
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], "exec form, python from the image, no shell"
    assert len(test) == 4
    code = test[3]
    compile(code, "<healthcheck>", "exec")
    match = PROBE_URL.search(code)
    assert match is not None, f"no http://127.0.0.1:PORT/PATH in {code!r}"
    return code, int(match.group(1)), match.group(2)


def route_paths(app: web.Application) -> set[str]:
    return {resource.canonical for resource in app.router.resources()}


def node_app_paths(config: Config | None = None) -> set[str]:
    """The public routes of a node (of a seed: ``seed_config()``) with ``config``."""
    from whnode.api.app import add_public_routes

    app = web.Application()
    context = typing.cast(Any, type("Context", (), {"config": config or Config()})())
    add_public_routes(app, context)
    return route_paths(app)


# ---------------------------------------------------------------------------------------------


def test_services_and_images() -> None:
    document = compose()
    assert set(document) == {"name", "services", "volumes"}
    assert set(services()) == {"seed", "sandbox", *NODES}
    for name, service in services().items():
        build = service["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == REPO, name
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert service["image"] == "whnode:local", name
        assert service["init"] is True, name
        assert all(isinstance(item, str) for item in service["command"]), name


def test_every_command_parses_with_the_cli() -> None:
    for name in NODES:
        args = cli.build_parser().parse_args(services()[name]["command"])
        assert args.command == "run", name
    assert cli.build_parser().parse_args(services()["seed"]["command"]).command == "seed"
    command = services()["sandbox"]["command"]
    assert command[0] == "sandbox"
    assert command[0] in cli.PASSTHROUGH
    config = seed_config()
    assert config.node.host == "0.0.0.0"
    assert sandbox_port() > 0


def test_node_environment_names_real_configuration_keys() -> None:
    for name in NODES:
        service = services()[name]
        env = service["environment"]
        for key in env:
            assert key.startswith(ENV_PREFIX), key
            if key == "WHNODE_CONFIG":
                continue
            section, _, field = key[len(ENV_PREFIX) :].lower().partition("_")
            assert section in SECTIONS, key
            names = {item.name for item in dataclasses.fields(SECTIONS[section])}
            assert field in names, f"{key}: no configuration key {section}.{field}"
        config = node_config(service)
        assert config.node.host == "0.0.0.0"
        assert config.node.port == DEFAULT_PORT
        assert config.node.data_dir == Path("/data")
        assert [f"{target}" for target in _volume_targets(service)].count("/data") == 1
        assert not config.node.routing_only
        # the seed it names is the seed service, on the seed's port
        assert [parse_host_port(s) for s in config.node.seeds] == [
            ("seed", seed_config().node.port)
        ]


def _volume_targets(service: dict[str, Any]) -> list[str]:
    return [volume.split(":")[1] for volume in service.get("volumes", [])]


def test_sources_point_every_vendor_at_the_sandbox_service() -> None:
    from whnode.upstream.adapters import ADAPTERS
    from whnode.upstream.sources import SourcesConfig

    data = tomllib.loads(NODE_TOML.read_text(encoding="utf-8"))
    assert set(data) == {"upstream"}
    config = node_config(services()["node1"])
    vendors = {source.vendor for source in config.upstream.sources}
    assert vendors == {vendor.value for vendor in ADAPTERS}
    resolved = SourcesConfig.from_config(config.upstream)  # validates vendors and URLs
    for vendor in ADAPTERS:
        url = urlsplit(resolved.sources[vendor].base_url)
        assert (url.scheme, url.hostname, url.port) == ("http", "sandbox", sandbox_port())
    # the file is what the nodes mount, read-only, where WHNODE_CONFIG says
    for name in NODES:
        service = services()[name]
        mounted = dict(_bind_mounts(service))
        assert mounted[service["environment"]["WHNODE_CONFIG"]] == NODE_TOML
        assert (
            f"./{NODE_TOML.name}:{service['environment']['WHNODE_CONFIG']}:ro"
            in (service["volumes"])
        )


def test_health_checks_probe_served_endpoints_on_configured_ports() -> None:
    _, port, path = probe(services()["seed"])
    assert port == seed_config().node.port
    assert seed_config().node.routing_only
    assert path in node_app_paths(seed_config())
    node_paths = node_app_paths()
    for name in NODES:
        _, port, path = probe(services()[name])
        assert port == node_config(services()[name]).node.port
        assert path in node_paths
    _, port, path = probe(services()["sandbox"])
    assert port == sandbox_port()
    assert path in sandbox_paths()


def sandbox_paths() -> set[str]:
    from whnode.sandbox import SandboxConfig, create_app

    return route_paths(create_app(SandboxConfig()))


def test_published_ports_map_to_configured_ports() -> None:
    published: dict[str, set[str]] = {"tcp": set(), "udp": set()}
    expected = {
        "seed": (seed_config().node.port, {"udp", "tcp"}),
        "sandbox": (sandbox_port(), {"tcp"}),
        **{name: (node_config(services()[name]).node.port, {"tcp"}) for name in NODES},
    }
    for name, service in services().items():
        port, protocols = expected[name]
        seen: set[str] = set()
        for entry in service["ports"]:
            match = re.fullmatch(r"127\.0\.0\.1:(\d+):(\d+)/(tcp|udp)", entry)
            assert match is not None, f"{name}: {entry!r}: publish on loopback, name the protocol"
            host_port, container_port, protocol = match.groups()
            assert int(container_port) == port, f"{name}: {entry}"
            assert host_port not in published[protocol], f"{name}: host port {host_port} twice"
            published[protocol].add(host_port)
            seen.add(protocol)
        assert seen == protocols, name


def test_start_order_waits_for_health() -> None:
    for name in NODES:
        depends = services()[name]["depends_on"]
        assert depends == {
            "seed": {"condition": "service_healthy"},
            "sandbox": {"condition": "service_healthy"},
        }
    for name in ("seed", "sandbox"):
        assert "depends_on" not in services()[name]
    for name, service in services().items():
        check = service["healthcheck"]
        assert set(check) == {"test", "interval", "timeout", "retries", "start_period"}, name
        assert re.fullmatch(r"\d+s", check["interval"]), name


def test_volumes_are_declared_and_stop_grace_covers_the_drain() -> None:
    declared = set(compose()["volumes"])
    used = set()
    for service in services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    for _, host_path in (m for s in services().values() for m in _bind_mounts(s)):
        assert host_path.is_file()
    for name in NODES:
        grace = int(services()[name]["stop_grace_period"].removesuffix("s"))
        assert grace > node_config(services()[name]).node.drain_timeout


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending
    return instructions


def values(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile() if name == keyword]


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in values("ENV"):
        for item in shlex.split(arguments):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def dockerfile_probe() -> str:
    (healthcheck,) = values("HEALTHCHECK")
    _, _, command = healthcheck.partition(" CMD ")
    test = json.loads(command)
    assert test[:2] == ["python", "-c"]
    code: str = test[2]
    compile(code, "<HEALTHCHECK>", "exec")
    return code


def test_dockerfile_builds_a_wheel_and_runs_as_a_user() -> None:
    stages = values("FROM")
    assert len(stages) == 2
    assert stages[0].endswith(" AS builder")
    assert stages[1].endswith(" AS runtime")
    assert any("pip wheel" in run for run in values("RUN")[:1])
    assert any("from=builder" in run and "--no-index" in run for run in values("RUN")[1:])
    (user,) = values("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert values("EXPOSE") == [f"{DEFAULT_PORT}/udp {DEFAULT_PORT}/tcp"]
    assert values("VOLUME") == ['["/data"]']
    assert values("ENTRYPOINT") == ['["whnode"]']
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["whnode"] == "whnode.cli:main"
    (command,) = values("CMD")
    assert cli.build_parser().parse_args(json.loads(command)).command == "run"
    env = image_environment()
    for key in env:
        if key.startswith(ENV_PREFIX):
            section, _, field = key[len(ENV_PREFIX) :].lower().partition("_")
            assert field in {f.name for f in dataclasses.fields(SECTIONS[section])}, key
    config = build_config(config_file=Path(os.devnull), environ=env)
    assert config.node.data_dir == Path("/data")
    assert config.node.host == "0.0.0.0"
    assert config.node.port == DEFAULT_PORT
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {"*", "!pyproject.toml", "!README.md", "!whnode/"} <= set(ignore)


async def run_probe(code: str, env: dict[str, str] | None = None) -> int:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    environment.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), timeout=20)


async def test_health_probes_pass_on_a_healthy_seed_and_fail_otherwise(tmp_path: Path) -> None:
    compose_code, compose_port, _ = probe(services()["seed"])
    image_code = dockerfile_probe()
    flags = {
        "node.data_dir": str(tmp_path),
        "node.host": "127.0.0.1",
        "node.port": "0",
        "seed.health_grace": "3",
        "node.routing_only": "true",
    }
    config = build_config(config_file=Path(os.devnull), environ={}, flags=flags)
    clock = ManualClock()
    async with Node(config, monotonic=clock) as running:
        own_port = compose_code.replace(f":{compose_port}/", f":{running.port}/")
        port_env = {"WHNODE_NODE_PORT": str(running.port)}
        healthy = await asyncio.gather(run_probe(own_port), run_probe(image_code, port_env))
        assert running.healthy(), "the probes run within the grace period"
        assert list(healthy) == [0, 0]
        clock.advance(3.1)  # no peer within the grace period: /healthz answers 503
        assert not running.healthy()
        assert await run_probe(own_port) != 0
        assert await run_probe(image_code, port_env) != 0
    assert await run_probe(own_port) != 0  # nothing listening
    # the image's probe defaults to the default port when the variable is unset or empty
    assert f"'{DEFAULT_PORT}'" in image_code
    assert image_environment()["WHNODE_NODE_PORT"] == str(DEFAULT_PORT)
