"""Node processes in network namespaces, with delay, jitter, loss and partitions between them.

The harness creates everything itself and removes it afterwards (root and ``ip`` needed):

```
root namespace: this process, the sandbox upstream (10.X.254.1)
    │ veth (unimpaired: requests and upstream calls)
hub namespace: forwards; packets from one node to another go through TUN tun0, read by
    │          whnode.bench.impair (delay ± jitter, loss, partition), then on
    ├── veth ── namespace n0: the seed     (10.X.0.2)
    ├── veth ── namespace n1: node 1       (10.X.1.2)
    └── ...
```

This kernel has no ``tc netem``: the impairment is done in user space by
``whnode.bench.impair`` (policy routing sends node-to-node packets into the TUN device; the
process writes them back after the delay). Traffic between the harness (or the sandbox) and
the nodes is not impaired, so latencies measured by the harness are those of the network of
nodes. X is derived from this process's pid, and every name carries the pid, so that two
harnesses on one machine do not meet.

Scenarios: ``run_netem`` (gets through an impaired network: success, latency, upstream calls
against the ideal) and ``run_partition`` (two halves for a while, then healed: what each
half serves, records kept, time until every node knows every other again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from whnode.bench.exceptions import NamespaceUnavailable
from whnode.demo import free_port
from whnode.errors import WhnodeError

__all__ = [
    "ImpairedNetwork",
    "NamespaceUnavailable",
    "NetemOptions",
    "NetemResult",
    "PartitionResult",
    "namespaces_unavailable",
    "print_netem",
    "print_partition",
    "run_netem",
    "run_partition",
]

START_TIMEOUT = 60.0
LANES = 4
"""Concurrent request loops per half during a partition."""
VENDORS = ("dutchie", "jane", "weedmaps", "leafly")
PR_SET_PDEATHSIG = 1


def namespaces_unavailable() -> str | None:
    """Why this machine cannot run the namespace scenarios, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (no TUN support)"
    name = f"whprobe{os.getpid()}"[:15]
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns add failed: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _die_with_parent() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(slots=True)
class Member:
    """The seed (index 0) or a node, in its own namespace."""

    index: int
    namespace: str
    address: str
    port: int
    data_dir: Path
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"


class ImpairedNetwork:
    """A seed and ``nodes`` nodes, each in a namespace, impaired between them (see module
    docstring). Use as ``async with``; everything is removed on exit."""

    def __init__(
        self,
        root: Path,
        nodes: int,
        *,
        delay_ms: float,
        jitter_ms: float,
        loss: float,
        dispensaries: int,
        seed: int = 1,
        python: str = sys.executable,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not 1 <= nodes <= 100:
            raise ValueError("1 to 100 nodes")
        pid = os.getpid()
        self.prefix = f"wh{pid % 100000}"
        self.octet = 100 + pid % 150
        self.root = root
        self.node_count = nodes
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.loss = loss
        self.dispensary_count = dispensaries
        self.seed = seed
        self.python = python
        self.environ = {
            k: v for k, v in (environ or os.environ).items() if not k.startswith("WHNODE_")
        }
        self.hub = f"{self.prefix}h"
        self.uplink = f"{self.prefix}r"
        self.port = free_port()
        self.members: list[Member] = []
        self.impairer: asyncio.subprocess.Process | None = None
        self.sandbox: Any = None
        self._sandbox_cm: Any = None
        self.dispensaries: list[str] = []
        self.session: aiohttp.ClientSession | None = None
        self._namespaces: list[str] = []
        self._uplink_made = False

    def address(self, index: int) -> str:
        return f"10.{self.octet}.{index}.2"

    @property
    def subnet(self) -> str:
        return f"10.{self.octet}.0.0/17"

    @property
    def controller_address(self) -> str:
        return f"10.{self.octet}.254.1"

    @property
    def nodes(self) -> list[Member]:
        return self.members[1:]

    # ------------------------------------------------------------------ lifetime
    async def __aenter__(self) -> ImpairedNetwork:
        try:
            await asyncio.to_thread(self._build)
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _ip(self, *argv: str) -> None:
        done = subprocess.run(["ip", *argv], capture_output=True, text=True)
        if done.returncode != 0:
            raise NamespaceUnavailable(f"ip {' '.join(argv)}: {done.stderr.strip()}")

    def _build(self) -> None:
        hub, octet = self.hub, self.octet
        self._ip("netns", "add", hub)
        self._namespaces.append(hub)
        self._ip("-n", hub, "link", "set", "lo", "up")
        self._ip("link", "add", self.uplink, "type", "veth", "peer", "name", "up0", "netns", hub)
        self._uplink_made = True
        self._ip("addr", "add", f"{self.controller_address}/24", "dev", self.uplink)
        self._ip("link", "set", self.uplink, "up")
        self._ip("-n", hub, "addr", "add", f"10.{octet}.254.2/24", "dev", "up0")
        self._ip("-n", hub, "link", "set", "up0", "up")
        self._ip("route", "add", self.subnet, "via", f"10.{octet}.254.2")
        sysctl = subprocess.run(
            ["ip", "netns", "exec", hub, "sysctl", "-qw", "net.ipv4.ip_forward=1",
             "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"],
            capture_output=True, text=True,
        )  # fmt: skip
        if sysctl.returncode != 0:
            raise NamespaceUnavailable(f"sysctl in {hub}: {sysctl.stderr.strip()}")
        self._ip("-n", hub, "tuntap", "add", "dev", "tun0", "mode", "tun")
        self._ip("-n", hub, "link", "set", "tun0", "up")
        self._ip("-n", hub, "route", "add", "default", "dev", "tun0", "table", "100")
        for index in range(self.node_count + 1):
            namespace = f"{self.prefix}n{index}"
            self._ip("netns", "add", namespace)
            self._namespaces.append(namespace)
            self._ip("-n", namespace, "link", "set", "lo", "up")
            link = f"n{index}"
            self._ip("-n", hub, "link", "add", link, "type", "veth", "peer", "name", "eth0",
                     "netns", namespace)  # fmt: skip
            self._ip("-n", hub, "addr", "add", f"10.{octet}.{index}.1/24", "dev", link)
            self._ip("-n", hub, "link", "set", link, "up")
            self._ip("-n", namespace, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            self._ip("-n", namespace, "link", "set", "eth0", "up")
            self._ip("-n", namespace, "route", "add", "default", "via", f"10.{octet}.{index}.1")
            self._ip("-n", hub, "rule", "add", "iif", link, "to", self.subnet, "lookup", "100")
            name = "seed" if index == 0 else f"node{index}"
            data_dir = self.root / name
            data_dir.mkdir(parents=True, exist_ok=True)
            self.members.append(
                Member(index, namespace, self.address(index), self.port, data_dir,
                       self.root / f"{name}.log")
            )  # fmt: skip

    async def _start(self) -> None:
        from whnode.sandbox import SandboxConfig, run_sandbox

        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._sandbox_cm = run_sandbox(
            SandboxConfig(host=self.controller_address, population=self.dispensary_count,
                          max_items=60)
        )  # fmt: skip
        self.sandbox = await self._sandbox_cm.__aenter__()
        self.dispensaries = sorted(d for d in self.sandbox.dispensaries if ":store-" in d)[
            : self.dispensary_count
        ]
        self.impairer = await self._spawn_in(
            self.hub,
            ["-m", "whnode.bench.impair", "--tun", "tun0", "--delay-ms", str(self.delay_ms),
             "--jitter-ms", str(self.jitter_ms), "--loss", str(self.loss),
             "--subnet", self.subnet, "--seed", str(self.seed),
             "--partition", ",".join(self.address(i) for i in self.half())],
            self.root / "impair.log",
        )  # fmt: skip
        await self._wait_log(self.root / "impair.log", "ready", self.impairer)
        seed = self.members[0]
        seed.process = await self._spawn_in(
            seed.namespace,
            ["-m", "whnode", "seed", "--data-dir", str(seed.data_dir), "--host", seed.address,
             "--port", str(seed.port)],
            seed.log_path,
        )  # fmt: skip
        await self._wait_healthy(seed)
        for member in self.nodes:
            (member.data_dir / "whnode.toml").write_text(self._config(member), encoding="utf-8")
        for member in self.nodes:
            member.process = await self._spawn_in(
                member.namespace,
                ["-m", "whnode", "run", "--data-dir", str(member.data_dir)],
                member.log_path,
            )
        await asyncio.gather(*(self._wait_healthy(member) for member in self.nodes))

    def half(self) -> list[int]:
        """Indices of the first half (the seed and nodes 1..n/2): one side of a partition."""
        return list(range(self.node_count // 2 + 1))

    def _config(self, member: Member) -> str:
        seed = self.members[0]
        lines = [
            "[node]",
            f'host = "{member.address}"',
            f"port = {member.port}",
            f'seeds = ["{seed.address}:{seed.port}"]',
            "drain_timeout = 2.0",
            "",
            "[pool]",
            "workers = 1",
            "",
            "[upstream]",
            "requests_per_second = 200.0",
            "burst = 50",
            "concurrency_per_host = 8",
            "request_timeout = 5.0",
            f"dispensaries = {json.dumps(self.dispensaries)}",
        ]
        for vendor in VENDORS:
            lines += ["", "[[upstream.sources]]", f'vendor = "{vendor}"',
                      f'base_url = "{self.sandbox.base_url}"']  # fmt: skip
        return "\n".join(lines) + "\n"

    async def _spawn_in(
        self, namespace: str, argv: list[str], log_path: Path
    ) -> asyncio.subprocess.Process:
        log = log_path.open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", namespace, self.python, *argv,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env={**self.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        finally:
            log.close()

    async def _wait_log(self, path: Path, text: str, process: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.returncode is not None:
                break
            with contextlib.suppress(OSError):
                if text in await asyncio.to_thread(path.read_text, errors="replace"):
                    return
            await asyncio.sleep(0.05)
        raise NamespaceUnavailable(f"{path.name}: {_tail(path)}")

    async def _wait_healthy(self, member: Member) -> None:
        assert self.session is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if member.process is not None and member.process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(member.url + "/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise WhnodeError(f"{member.log_path.name} did not start: {_tail(member.log_path)}")

    async def aclose(self) -> None:
        processes = [m.process for m in self.members if m.process is not None]
        if self.impairer is not None:
            processes.append(self.impairer)
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self.session is not None:
            await self.session.close()
        if self._sandbox_cm is not None:
            await self._sandbox_cm.__aexit__(None, None, None)
            self._sandbox_cm = None
        await asyncio.to_thread(self._teardown)

    def _teardown(self) -> None:
        for namespace in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self._namespaces.clear()
        if self._uplink_made:  # normally gone with the hub namespace
            subprocess.run(["ip", "link", "del", self.uplink], capture_output=True)
            self._uplink_made = False

    # ------------------------------------------------------------------ controls and queries
    def partition(self, on: bool) -> None:
        assert self.impairer is not None
        self.impairer.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    async def peers_of(self, member: Member) -> set[str]:
        assert self.session is not None
        async with self.session.get(member.url + "/v1/node") as response:
            document = await response.json()
        return {str(peer.get("host")) for peer in document.get("peers", ())}

    async def meshed(self) -> bool:
        """Whether every node has every other node in its routing table."""
        wanted = {member.address for member in self.nodes}
        try:
            views = await asyncio.gather(*(self.peers_of(member) for member in self.nodes))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        return all(
            wanted - {member.address} <= view
            for member, view in zip(self.nodes, views, strict=True)
        )

    async def get(self, member: Member, dispensary_id: str) -> tuple[int, float, str]:
        """(status, seconds, answer path) of a public get; status 0 when no answer."""
        assert self.session is not None
        started = time.monotonic()
        try:
            async with self.session.get(f"{member.url}/v1/menus/{dispensary_id}") as response:
                await response.read()
                return (
                    response.status,
                    time.monotonic() - started,
                    response.headers.get("X-Whnode-Path", ""),
                )
        except (aiohttp.ClientError, TimeoutError):
            return 0, time.monotonic() - started, ""

    async def holders(self, dispensary_id: str) -> int:
        """How many nodes hold a record of ``dispensary_id`` (peer GET)."""
        session = self.session
        assert session is not None

        async def held(member: Member) -> bool:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{member.url}/peer/v1/records/{dispensary_id}") as response:
                    await response.read()
                    return response.status == 200
            return False

        return sum(await asyncio.gather(*(held(member) for member in self.nodes)))


def _tail(path: Path, lines: int = 8) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True, slots=True)
class NetemOptions:
    nodes: int = 8
    dispensaries: int = 40
    requests: int = 400
    duration: float = 40.0
    """Seconds over which the requests are spread."""
    delay_ms: float = 100.0
    jitter_ms: float = 20.0
    loss: float = 0.02
    partition_seconds: float = 30.0
    seed: int = 1


@dataclass(slots=True)
class NetemResult:
    nodes: int
    requests: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    by_path: dict[str, list[float]] = field(default_factory=dict)
    upstream: int = 0
    ideal: int = 0
    start_seconds: float = 0.0
    mesh_seconds: float = 0.0


@dataclass(slots=True)
class PartitionResult:
    seconds: float
    requests: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    upstream_during: int = 0
    lost: int = 0
    """Dispensaries filled before the partition that no node holds after it healed."""
    copies_min: int = 0
    converged_after: float | None = None
    """Seconds after healing until every node had every other in its routing table."""
    evicted_during: bool = False
    """Whether the halves had dropped each other from their tables during the partition."""


async def run_netem(
    options: NetemOptions, root: Path, *, network: ImpairedNetwork | None = None
) -> NetemResult:
    """Gets for random dispensaries at random nodes through the impaired network."""
    rng = random.Random(options.seed)
    result = NetemResult(nodes=options.nodes)
    before = network.sandbox.menu_fetches() if network is not None else 0
    assert network is not None
    plan = [
        (index * options.duration / options.requests, rng.choice(network.dispensaries))
        for index in range(options.requests)
    ]
    started = time.monotonic()

    async def one(offset: float, dispensary_id: str) -> None:
        await asyncio.sleep(max(0.0, started + offset - time.monotonic()))
        status, seconds, path = await network.get(rng.choice(network.nodes), dispensary_id)
        result.requests += 1
        if status != 200:
            result.failures += 1
            return
        result.latencies.append(seconds)
        result.by_path.setdefault(path, []).append(seconds)

    await asyncio.gather(*(one(offset, d) for offset, d in plan))
    result.upstream = network.sandbox.menu_fetches() - before
    result.ideal = len({d for _, d in plan})
    return result


async def run_partition(options: NetemOptions, network: ImpairedNetwork) -> PartitionResult:
    """Fill every dispensary, split the network in two halves for a while, heal it."""
    rng = random.Random(options.seed + 1)
    await asyncio.gather(*(network.get(rng.choice(network.nodes), d) for d in network.dispensaries))
    await asyncio.sleep(3.0)  # replication settles
    result = PartitionResult(seconds=options.partition_seconds)
    side = set(network.half())
    halves = {
        "first half": [m for m in network.nodes if m.index in side],
        "second half": [m for m in network.nodes if m.index not in side],
    }
    fetches = network.sandbox.menu_fetches()
    network.partition(True)
    started = time.monotonic()
    counts: Counter[str] = Counter()
    answered: Counter[str] = Counter()

    async def load(name: str, members: list[Member]) -> None:
        while time.monotonic() - started < options.partition_seconds:
            status, _, _ = await network.get(rng.choice(members), rng.choice(network.dispensaries))
            counts[name] += 1
            answered[name] += status == 200
            await asyncio.sleep(0.05)

    await asyncio.gather(
        *(load(name, members) for name, members in halves.items() for _ in range(LANES))
    )
    first = halves["first half"][0]
    others = {m.address for m in halves["second half"]}
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
        result.evicted_during = not (others & await network.peers_of(first))
    result.upstream_during = network.sandbox.menu_fetches() - fetches
    network.partition(False)
    healed = time.monotonic()
    while time.monotonic() - healed < 180:
        if await network.meshed():
            result.converged_after = time.monotonic() - healed
            break
        await asyncio.sleep(0.5)
    copies = await asyncio.gather(*(network.holders(d) for d in network.dispensaries))
    result.lost = sum(1 for count in copies if count == 0)
    result.copies_min = min(copies, default=0)
    result.requests = dict(counts)
    result.answered = dict(answered)
    return result


async def run_network_scenarios(
    options: NetemOptions, root: Path, *, partition: bool, netem: bool
) -> tuple[NetemResult | None, PartitionResult | None]:
    started = time.monotonic()
    async with ImpairedNetwork(
        root,
        options.nodes,
        delay_ms=options.delay_ms,
        jitter_ms=options.jitter_ms,
        loss=options.loss,
        dispensaries=options.dispensaries,
        seed=options.seed,
    ) as network:
        start_seconds = time.monotonic() - started
        meshed = time.monotonic()
        while not await network.meshed() and time.monotonic() - meshed < 60:
            await asyncio.sleep(0.5)
        mesh_seconds = time.monotonic() - meshed
        netem_result = None
        if netem:
            netem_result = await run_netem(options, root, network=network)
            netem_result.start_seconds = start_seconds
            netem_result.mesh_seconds = mesh_seconds
        partition_result = await run_partition(options, network) if partition else None
    return netem_result, partition_result


def print_netem(result: NetemResult, options: NetemOptions) -> None:
    print(
        f"netem: {result.nodes} node processes and a seed in network namespaces, "
        f"{options.delay_ms:g} ms ± {options.jitter_ms:g} ms one way and {options.loss:.0%} "
        "loss between them (user-space impairment through a TUN device: no tc netem here); "
        f"started in {result.start_seconds:.1f} s, meshed {result.mesh_seconds:.1f} s later"
    )
    print(f"  gets                        {result.requests}, {result.failures} failed (goal 0)")
    lat = result.latencies
    print(
        f"  latency ms                  p50 {percentile(lat, 0.5) * 1000:.0f}  "
        f"p95 {percentile(lat, 0.95) * 1000:.0f}  max {max(lat, default=0) * 1000:.0f} "
        "(goal p95 <= 2000)"
    )
    for path, values in sorted(result.by_path.items()):
        print(
            f"    {path or '?':10s} {len(values):5d}  p50 {percentile(values, 0.5) * 1000:6.0f}  "
            f"p95 {percentile(values, 0.95) * 1000:6.0f}"
        )
    ratio = result.upstream / result.ideal if result.ideal else float("nan")
    print(
        f"  upstream fetches            {result.upstream} against an ideal of {result.ideal} "
        f"({ratio:.3f}x; goal <= 1.05x)"
    )


def print_partition(result: PartitionResult) -> None:
    print(f"partition: two halves for {result.seconds:.0f} s, then healed")
    for name, count in result.requests.items():
        print(f"  {name:12s} served {result.answered.get(name, 0)}/{count} gets")
    print(f"  upstream fetches during it  {result.upstream_during}")
    print(f"  halves dropped each other   {'yes' if result.evicted_during else 'no'}")
    converged = "never" if result.converged_after is None else f"{result.converged_after:.1f} s"
    print(f"  owner sets converged        {converged} after healing (every table complete)")
    print(
        f"  records lost                {result.lost} "
        f"(fewest copies of a record: {result.copies_min})"
    )
