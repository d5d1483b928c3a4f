"""Seeds on loopback: a :class:`whnode.Node` with ``node.routing_only`` (whnode.seed), real
UDP and TCP sockets, real DHT nodes and full nodes, real HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from whnode.api.app import public_api
from whnode.cli import main as cli_main
from whnode.cli.seed import seed_config as seed_command_config
from whnode.config import DEFAULT_PORT, Config, build_config
from whnode.dht import DhtConfig, DhtNode, PublicKey
from whnode.errors import ConfigError
from whnode.node import Node
from whnode.seed import (
    DEFAULT_DATA_DIR,
    PEERS_FILE_NAME,
    ROUTING_ONLY_DETAIL,
    SeedRole,
    seed_dht_config,
)
from whnode.seeds import Seed, format_seed
from whnode.testing.clock import ManualClock, eventually

LOOPBACK = "127.0.0.1"
FLOODER = "127.0.0.2"
"""Another loopback address (Linux routes all of 127/8 to lo): a second source IP."""
BYSTANDER = "127.0.0.3"


def seed_config(data_dir: Path, **changes: object) -> Config:
    """A seed's Config on a free loopback port; ``changes`` are ``[seed]`` keys, ``host`` and
    ``peers`` (Seed values, as node.seeds lines). The test nodes' random ids solve no puzzle:
    the seed asks none of them (trust.node_id_difficulty = 0)."""
    flags: dict[str, object] = {
        "node.routing_only": "true",
        "node.data_dir": str(data_dir),
        "node.port": "0",
        "node.host": str(changes.pop("host", LOOPBACK)),
        "trust.node_id_difficulty": "0",
    }
    peers = changes.pop("peers", ())
    assert isinstance(peers, tuple)
    if peers:
        flags["node.seeds"] = [format_seed(peer) for peer in peers]
    flags.update({f"seed.{name}": str(value) for name, value in changes.items()})
    return build_config(config_file=Path(os.devnull), environ={}, flags=flags)


def role(seed: Node) -> SeedRole:
    assert seed.seed is not None, "a routing-only node has a seed role"
    return seed.seed


@asynccontextmanager
async def dht_nodes(count: int, host: str | None = None) -> AsyncIterator[list[DhtNode]]:
    """``count`` DHT nodes, each on its own loopback address unless ``host`` is given (so a
    per-IP limit at the seed meets them as distinct sources, like nodes on the internet)."""
    nodes = [DhtNode(PublicKey(os.urandom(32)), DhtConfig(rpc_timeout=1.0)) for _ in range(count)]
    try:
        for index, node in enumerate(nodes):
            await node.listen(host or f"127.0.1.{index + 1}", 0)
        yield nodes
    finally:
        await asyncio.gather(*(node.aclose() for node in nodes))


async def http_get(url: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text(), dict(response.headers)


def metric(text: str, name: str, labels: str = "", *, prefix: bool = False) -> float:
    """The value of one sample in Prometheus text (fails the test when it is missing);
    ``prefix``: ``labels`` are the first of the sample's labels."""
    wanted = name + (f"{{{labels}" if labels else "") + ("" if prefix or not labels else "}")
    pattern = "^" + re.escape(wanted) + (r"[^ ]*" if prefix else "") + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match is not None, f"{name}{labels} missing from /metrics"
    return float(match.group(1))


async def test_twelve_nodes_bootstrap_from_one_seed(tmp_path: Path) -> None:
    async with Node(seed_config(tmp_path / "seed")) as seed, dht_nodes(12) as nodes:
        assert seed.port > 0
        sizes = await asyncio.gather(*(node.bootstrap([(LOOPBACK, seed.port)]) for node in nodes))
        assert all(size >= 1 for size in sizes)
        # every node knows the seed as a routing-only contact, and learned other nodes from it
        for node in nodes:
            seeds = [c for c in node.contacts() if c.node_id == seed.node_id]
            assert len(seeds) == 1
            assert seeds[0].routing_only
        assert sum(len(node.contacts()) for node in nodes) > 4 * len(nodes)
        await eventually(lambda: len(seed.dht.contacts()) == len(nodes))
        assert {c.node_id for c in seed.dht.contacts()} == {node.node_id for node in nodes}
        # a seed routes but never owns: owner lookups on the nodes leave it out
        owners = await nodes[0].find_owners(os.urandom(20), 20)
        assert seed.node_id not in {owner.node_id for owner in owners}
        assert len(owners) == len(nodes)

        status, body, headers = await http_get(f"{seed.http_url}/healthz")
        assert status == 200
        document = json.loads(body)
        assert document["status"] == "ok"
        assert document["peers"] == len(nodes)
        assert document["node_id"] == seed.node_id.hex()
        assert headers["Cache-Control"] == "no-store"

        status, text, headers = await http_get(f"{seed.http_url}/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=")
        assert metric(text, "whnode_dht_table_size") == len(nodes)
        assert metric(text, "whnode_dht_rpcs_received_total") >= 2 * len(nodes)
        assert metric(text, "whnode_seed_contacts", 'kind="node"') == len(nodes)
        assert metric(text, "whnode_seed_contacts", 'kind="seed"') == 0
        assert metric(text, "whnode_node_healthy") == 1
        assert metric(text, "whnode_dht_rate_limited_drops_total") == 0
        assert f'node_id="{seed.node_id.hex()}"' in text
        assert "# TYPE whnode_dht_rpcs_received_total counter" in text
        assert "# TYPE whnode_dht_table_size gauge" in text
        assert (
            metric(text, "whnode_http_requests_total", 'method="GET",route="/healthz",status="200"')
            == 1
        )
        assert metric(text, "whnode_node_info", f'node_id="{seed.node_id.hex()}"', prefix=True) == 1


async def test_health_rule_grace_then_peers_then_socket(tmp_path: Path) -> None:
    clock = ManualClock()
    seed = Node(seed_config(tmp_path, health_grace=60), monotonic=clock)
    assert not role(seed).health().healthy  # not started: no socket
    await seed.start()
    try:
        clock.advance(59.9)
        status, body, _ = await http_get(f"{seed.http_url}/healthz")
        assert status == 200
        assert "grace" in json.loads(body)["reason"]
        clock.advance(0.2)
        status, body, _ = await http_get(f"{seed.http_url}/healthz")
        assert status == 503
        assert json.loads(body) == {
            "type": "urn:whnode:problem:node-not-ready",
            "title": "Node not ready",
            "status": 503,
            "detail": "no peer within 60 s of start",
            "instance": "/healthz",
            "role": "seed",
            "node_id": seed.node_id.hex(),
            "peers": 0,
            "uptime_seconds": 60.1,
        }
        _, text, _ = await http_get(f"{seed.http_url}/metrics")
        assert metric(text, "whnode_node_healthy") == 0
        async with dht_nodes(1) as nodes:
            assert await nodes[0].bootstrap([(LOOPBACK, seed.port)]) == 1
            await eventually(lambda: role(seed).health().healthy)
            status, body, _ = await http_get(f"{seed.http_url}/healthz")
            assert (status, json.loads(body)["reason"]) == (200, "1 peer")
    finally:
        await seed.aclose()
    health = role(seed).health()
    assert not health.healthy
    assert health.reason == "UDP socket not listening"
    assert not seed.healthy()


async def test_peer_table_is_saved_on_stop_and_reloaded_on_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "seed"
    async with dht_nodes(10) as nodes:
        async with Node(seed_config(data_dir)) as first:
            await asyncio.gather(*(node.bootstrap([(LOOPBACK, first.port)]) for node in nodes))
            await eventually(lambda: len(first.dht.contacts()) == len(nodes))
            seed_id = first.node_id
        saved = json.loads((data_dir / PEERS_FILE_NAME).read_text(encoding="utf-8"))
        assert saved["node_id"] == seed_id.hex()
        assert {peer["node_id"] for peer in saved["peers"]} == {n.node_id.hex() for n in nodes}
        assert (data_dir.stat().st_mode & 0o077) == 0

        # a new process life: same identity, and the saved peers are pinged back into the table
        # without any node contacting the new seed (it listens on another port)
        async with Node(seed_config(data_dir)) as second:
            assert second.node_id == seed_id
            await eventually(lambda: len(second.dht.contacts()) == len(nodes))
            assert {c.node_id for c in second.dht.contacts()} == {n.node_id for n in nodes}
            status, body, _ = await http_get(f"{second.http_url}/healthz")
            assert status == 200
            assert json.loads(body)["peers"] == len(nodes)


async def test_datagram_flood_from_one_ip_is_dropped_and_counted(tmp_path: Path) -> None:
    # a refill of one datagram per 100 s: whatever the test takes, the burst is all that passes
    config = seed_config(
        tmp_path, host="0.0.0.0", datagrams_per_source_per_second=0.01, datagram_burst_per_source=10
    )
    async with Node(config) as seed:
        flood = 300
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind((FLOODER, 0))
            for _ in range(flood):
                sender.sendto(b"\x00" * 40, (LOOPBACK, seed.port))
            await eventually(lambda: seed.dht.statistics().datagrams_received >= flood)
        allowed = 10 + 1
        _, text, _ = await http_get(f"http://{LOOPBACK}:{seed.port}/metrics")
        assert metric(text, "whnode_dht_rate_limited_drops_total") >= flood - allowed
        assert metric(text, "whnode_dht_malformed_datagrams_total") <= allowed
        # another address is not affected: a node there joins at once
        async with dht_nodes(1, host=BYSTANDER) as nodes:
            assert await nodes[0].bootstrap([(LOOPBACK, seed.port)]) == 1
        _, text, _ = await http_get(f"http://{LOOPBACK}:{seed.port}/metrics")
        assert metric(text, "whnode_dht_tracked_sources") >= 2
        assert metric(text, "whnode_dht_rpcs_received_total") >= 2


async def test_http_is_rate_limited_per_client_ip(tmp_path: Path) -> None:
    async with Node(seed_config(tmp_path, http_burst=5, http_requests_per_second=1.0)) as seed:
        statuses = []
        async with aiohttp.ClientSession() as session:
            for _ in range(12):
                async with session.get(f"{seed.http_url}/healthz") as response:
                    statuses.append(response.status)
                    if response.status == 429:
                        assert response.headers["Retry-After"] == "1"
        assert statuses[:5] == [200] * 5
        assert statuses.count(429) >= 5
        text = (await seed_metrics(seed)).decode()
        assert metric(text, "whnode_http_problems_total", 'type="rate-limited"') == statuses.count(
            429
        )
        assert metric(
            text, "whnode_http_requests_total", 'method="GET",route="/healthz",status="429"'
        ) == statuses.count(429)


async def seed_metrics(seed: Node) -> bytes:
    """/metrics without HTTP (this client is rate-limited in the test above)."""
    from prometheus_client import generate_latest

    return generate_latest(public_api(seed.app).metrics.registry)


async def test_http_surface_is_small(tmp_path: Path) -> None:
    async with Node(seed_config(tmp_path)) as seed, aiohttp.ClientSession() as session:
        async with session.get(f"{seed.http_url}/v1/no/such/path") as response:
            assert response.status == 404
            assert response.headers["Content-Type"] == "application/problem+json"
            problem = await response.json(content_type=None)
            assert (problem["status"], problem["instance"]) == (404, "/v1/no/such/path")
        async with session.post(f"{seed.http_url}/healthz", data=b"x" * 10_000) as response:
            assert response.status in (405, 413)
        async with session.head(f"{seed.http_url}/healthz") as response:
            assert response.status == 200
        text = (await seed_metrics(seed)).decode()
        assert (
            metric(
                text, "whnode_http_requests_total", 'method="GET",route="unmatched",status="404"'
            )
            == 1
        )
        assert metric(text, "whnode_http_problems_total", 'type="not-found"') == 1


async def test_a_seed_refuses_every_menu_route_and_holds_no_store(tmp_path: Path) -> None:
    async with Node(seed_config(tmp_path)) as seed, aiohttp.ClientSession() as session:
        for path in (
            "/v1/menus/weedmaps:x",
            "/v1/menus/weedmaps:x/history",
            "/v1/menus/weedmaps:x/products",
            "/v1/search?q=gummies",
            "/v1/dispensaries",
        ):
            async with session.get(f"{seed.http_url}{path}") as response:
                assert response.status == 404, path
                assert response.headers["Content-Type"] == "application/problem+json"
                problem = await response.json(content_type=None)
                assert problem["type"] == "urn:whnode:problem:not-found"
                assert problem["detail"] == ROUTING_ONLY_DETAIL, path
        # no node-to-node routes either: a peer asking it for a record finds nothing
        async with session.post(f"{seed.http_url}/peer/v1/records/weedmaps:x", data=b"") as reply:
            assert reply.status in (404, 405)
        async with session.get(f"{seed.http_url}/v1/node") as response:
            info = await response.json()
            assert (info["routing_only"], info["node_id"]) == (True, seed.node_id.hex())
            assert "store" not in info
        async with session.get(f"{seed.http_url}/readyz") as response:
            assert response.status == 200  # within the grace period, as /healthz
        text = (await seed_metrics(seed)).decode()
        assert metric(text, "whnode_http_problems_total", 'type="not-found"') >= 5
        assert metric(text, "whnode_node_info", 'node_id="', prefix=True) == 1
        assert 'role="seed"' in text
        assert "whnode_service_requests_total" not in text
        assert not hasattr(seed, "service")
    # what a seed leaves in its data directory: its key, its peers, no store and no index
    assert not list(tmp_path.glob("*.sqlite3*"))
    assert (tmp_path / "identity.key").exists()


async def test_full_nodes_join_each_other_through_a_routing_only_node(tmp_path: Path) -> None:
    async with Node(seed_config(tmp_path / "seed")) as seed:
        flags = {
            "node.port": "0",
            "node.host": LOOPBACK,
            "node.seeds": [f"{LOOPBACK}:{seed.port} {seed.node_id.hex()}"],
            "trust.node_id_difficulty": "0",
            "pool.workers": "1",
        }

        def node_config(name: str) -> Config:
            data_dir = {"node.data_dir": str(tmp_path / name)}
            return build_config(config_file=Path(os.devnull), environ={}, flags=flags | data_dir)

        async with Node(node_config("a")) as first, Node(node_config("b")) as second:
            # each learned the other from the seed, which neither chose as an owner
            await eventually(
                lambda: (
                    first.node_id in {c.node_id for c in second.dht.contacts()}
                    and second.node_id in {c.node_id for c in first.dht.contacts()}
                )
            )
            seen = {c.node_id: c for c in first.dht.contacts()}
            assert seen[seed.node_id].routing_only
            owners = await first.dht.find_owners(os.urandom(20), 3)
            assert {owner.node_id for owner in owners} <= {first.node_id, second.node_id}
            await eventually(lambda: len(seed.dht.contacts()) == 2)
            status, body, _ = await http_get(f"{seed.http_url}/healthz")
            assert (status, json.loads(body)["reason"]) == (200, "2 peers")
            assert first.healthy()
            assert second.healthy()


async def test_seeds_join_each_other_and_pins_are_checked(tmp_path: Path) -> None:
    async with Node(seed_config(tmp_path / "a")) as first:
        right = Seed(LOOPBACK, first.port, first.node_id)
        wrong = Seed(LOOPBACK, first.port, bytes(20))  # type: ignore[arg-type]
        async with Node(seed_config(tmp_path / "b", peers=(right,))) as second:
            await eventually(
                lambda: len(second.dht.contacts()) == 1 and len(first.dht.contacts()) == 1
            )
            assert first.dht.contacts()[0].node_id == second.node_id
            assert first.dht.contacts()[0].routing_only
            role(second).check_pins()
            assert role(second).pin_mismatches() == {}
            text = (await seed_metrics(second)).decode()
            assert metric(text, "whnode_seed_contacts", 'kind="seed"') == 1
        async with Node(seed_config(tmp_path / "c", peers=(wrong,))) as third:
            await eventually(lambda: bool(role(third).pin_mismatches()), timeout=5)
            assert role(third).pin_mismatches() == {(LOOPBACK, first.port): first.node_id}
            text = (await seed_metrics(third)).decode()
            assert metric(text, "whnode_seed_pin_mismatches") == 1


async def test_a_stats_line_is_logged_every_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="whnode.seed")
    async with Node(seed_config(tmp_path, stats_interval=0.2)) as seed, dht_nodes(3) as nodes:
        await asyncio.gather(*(node.bootstrap([(LOOPBACK, seed.port)]) for node in nodes))
        await eventually(lambda: len(seed.dht.contacts()) == 3)
        await eventually(
            lambda: any(getattr(r, "seed_stats", {}).get("peers") == 3 for r in caplog.records)
        )
    lines = [record for record in caplog.records if record.getMessage().startswith("seed stats:")]
    assert len(lines) >= 1
    fields = next(r.seed_stats for r in lines if r.seed_stats["peers"] == 3)  # type: ignore[attr-defined]
    assert set(fields) >= {"peers", "rpcs_received", "rpcs_sent", "drops"}
    assert "3 peers" in next(r.getMessage() for r in lines if r.seed_stats["peers"] == 3)  # type: ignore[attr-defined]
    assert any(
        record.getMessage().startswith("seed ") and "seeds line:" in record.getMessage()
        for record in caplog.records
    )


def test_seed_configuration_is_checked_under_the_keys_a_user_sets(tmp_path: Path) -> None:
    for key, value in (
        ("node.port", "70000"),
        ("seed.stats_interval", "0"),
        ("seed.health_grace", "nan"),
        ("seed.datagram_burst_per_source", "0"),
        ("seed.datagram_burst_per_ip", "0"),
    ):
        with pytest.raises(ConfigError, match=f"^{key}"):
            build_config(environ={}, flags={key: value})
    with pytest.raises(ConfigError, match=r"^node\.seeds: 'a\.example'"):
        build_config(environ={}, flags={"node.seeds": ["a.example"]})
    config = seed_config(tmp_path, datagrams_per_ip_per_second=7.5, datagram_burst_per_ip=30)
    dht = seed_dht_config(config)
    assert dht.routing_only
    assert dht.datagrams_per_source_per_second == config.seed.datagrams_per_source_per_second
    assert (dht.datagrams_per_ip_per_second, dht.datagram_burst_per_ip) == (7.5, 30)
    assert (dht.ksize, dht.rpc_timeout) == (config.node.ksize, config.node.rpc_timeout)


def test_seed_command_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = ["--data-dir", str(tmp_path)]
    assert cli_main(["seed", "--port", "x", *data_dir]) == 2
    assert "node.port" in capsys.readouterr().err
    assert cli_main(["seed", "--peer", "no-port", *data_dir]) == 2
    assert "node.seeds: 'no-port'" in capsys.readouterr().err
    assert cli_main(["seed", "--seeds-file", str(tmp_path / "missing.txt"), *data_dir]) == 2
    assert "cannot read the seeds file" in capsys.readouterr().err
    assert cli_main(["seed", "--stats-interval", "0", *data_dir]) == 2
    assert "seed.stats_interval must be > 0" in capsys.readouterr().err
    assert cli_main(["seed", "--set", "node.ksize=0", *data_dir]) == 2
    assert "node.ksize must be at least 1" in capsys.readouterr().err
    assert cli_main(["seed", "--log-level", "LOUD", *data_dir]) == 2
    assert cli_main(["seed", "--help"]) == 0
    assert "routing-only" in capsys.readouterr().out
    assert not (tmp_path / "identity.key").exists()  # refused before anything started


def test_seed_command_reports_a_port_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOOPBACK, 0))
        port = taken.getsockname()[1]
        argv = ["seed", "--port", str(port), "--host", LOOPBACK, "--data-dir", str(tmp_path)]
        code = cli_main([*argv, "--set", "trust.node_id_difficulty=0"])
    assert code == 1
    assert f"cannot listen on UDP {LOOPBACK}:{port}" in capsys.readouterr().err


def test_seed_command_defaults_and_flags_become_one_config(tmp_path: Path) -> None:
    default = seed_command_config([], {})
    assert (default.node.port, default.node.host) == (DEFAULT_PORT, "127.0.0.1")
    assert default.node.data_dir == DEFAULT_DATA_DIR  # not a node's ./whnode-data
    assert default.seed.stats_interval == Config().seed.stats_interval
    assert seed_command_config([], {"WHNODE_NODE_DATA_DIR": str(tmp_path)}).node.data_dir == (
        tmp_path
    )
    argv = [
        "--data-dir",
        str(tmp_path),
        "--peer",
        f"127.0.0.1:9 {'ab' * 20}",
        "--seed",
        "127.0.0.1:10",
        "--rate-per-ip",
        "7.5",
        "--burst-per-ip",
        "30",
        "--advertise-host",
        "seed1.example.org",
    ]
    config = seed_command_config(argv, {"WHNODE_SEED_HEALTH_GRACE": "5"})
    assert config.node.seeds == ("127.0.0.1:10", f"127.0.0.1:9 {'ab' * 20}")
    assert config.seed.public_address == "seed1.example.org"
    assert config.seed.health_grace == 5.0
    dht = seed_dht_config(config)
    assert (dht.datagrams_per_ip_per_second, dht.datagram_burst_per_ip) == (7.5, 30)


async def read_line_matching(stream: asyncio.StreamReader, pattern: str, timeout: float) -> str:
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"the seed exited before logging {pattern!r}")
            if re.search(pattern, line):
                return line


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_whnode_seed_process_stops_cleanly_on_signal_and_saves_peers(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    data_dir = tmp_path / "seed"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WHNODE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "whnode",
        "seed",
        "--host",
        LOOPBACK,
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--stats-interval",
        "0.3",
        "--log-format",
        "json",
        "--set",
        "trust.node_id_difficulty=0",
        stderr=subprocess.PIPE,
        env=environment,
    )
    assert process.stderr is not None
    try:
        line = await read_line_matching(process.stderr, "serving UDP\\+TCP", timeout=20)
        document = json.loads(line)
        port = int(re.search(r":(\d+) \(routing only\)", document["message"]).group(1))  # type: ignore[union-attr]
        async with dht_nodes(3) as nodes:
            await asyncio.gather(*(node.bootstrap([(LOOPBACK, port)]) for node in nodes))
            stats = json.loads(await read_line_matching(process.stderr, '"peers": 3', timeout=10))
            assert stats["seed_stats"]["peers"] == 3
            process.send_signal(stop_signal)
            rest = (await asyncio.wait_for(process.stderr.read(), timeout=15)).decode()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "saving the peer table" in rest
    assert "Traceback" not in rest
    saved = json.loads((data_dir / PEERS_FILE_NAME).read_text(encoding="utf-8"))
    assert {peer["node_id"] for peer in saved["peers"]} == {n.node_id.hex() for n in nodes}
