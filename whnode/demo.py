"""``whnode demo``: a whole local network as real processes, a workload and its figures.

:class:`LocalNetwork` starts the simulated upstream (``whnode sandbox``), one bootstrap seed
(``whnode seed``) and N nodes (``whnode run``) as child processes on free loopback ports, each
node with its own data directory and a whnode.toml that points every vendor at the sandbox.
It stops them all (SIGTERM, wait, SIGKILL after a timeout) however the demo ends, and asks
Linux to SIGTERM the children should this process die without cleaning up.

:func:`run_workload` sends a Zipf-distributed request trace over the nodes' HTTP API and
:func:`render_report` compares the upstream calls the network made with the ideal (one
central cache fed the same trace) and with no cache at all, and breaks latency down by the
path each answer took (the ``X-Whnode-Path`` header).

The multi-process tests use :class:`LocalNetwork` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import aiohttp

from whnode.config import Config, FreshnessConfig
from whnode.errors import RemoteError, UsageError
from whnode.exceptions import DemoError, DemoInterrupted
from whnode.sandbox.config import SandboxConfig
from whnode.service.freshness import heuristic_lifetime
from whnode.testing.replay import Request, central_cache_calls, zipf_trace

__all__ = [
    "DemoOptions",
    "LocalNetwork",
    "WorkloadResult",
    "free_port",
    "main",
    "render_report",
    "run_workload",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
VENDORS = ("dutchie", "jane", "weedmaps", "leafly", "treez", "flowhub")
START_TIMEOUT = 30.0
"""Seconds a child may take to answer on HTTP after it is started."""
STOP_TIMEOUT = 12.0
"""Seconds a child may take to exit after SIGTERM before it is killed."""
START_ATTEMPTS = 4
"""Attempts at starting a child on a fresh port when its port was taken meanwhile."""
PORT_ATTEMPTS = 200
"""Attempts at finding a port free for both TCP and UDP."""
UPSTREAM_BOUND_FACTOR = 2.0
"""``--once`` fails when upstream menu fetches exceed this multiple of the ideal."""
ZIPF_EXPONENT = 1.0
DEMO_REQUESTS = 2000
ONCE_REQUESTS = 300
REQUEST_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1
CANCEL_GRACE = 2.0
"""Seconds interrupted start-up or workload work gets to unwind before processes stop."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``whnode demo`` was asked to do."""

    nodes: int = 5
    requests: int | None = None
    """Requests in the workload (default DEMO_REQUESTS, or ONCE_REQUESTS with ``once``)."""
    dispensaries: int | None = None
    """Dispensaries the sandbox serves (default: the sandbox's own)."""
    once: bool = False
    """Run the workload, print the figures and exit instead of serving until Ctrl-C."""
    concurrency: int = 16
    python: str = sys.executable
    """Interpreter that runs the children (``python -m whnode ...``)."""
    environ: Mapping[str, str] = field(default_factory=dict)
    """Environment of the children (the CLI passes its own, without WHNODE_* variables)."""
    seed: int = 1
    """Random seed of the workload."""


# ---------------------------------------------------------------------------------------------
# Processes


def free_port(host: str = HOST, *, taken: set[int] | None = None) -> int:
    """A port number free for both TCP and UDP on ``host`` right now, not in ``taken``."""
    taken = taken if taken is not None else set()
    for _ in range(PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            if port in taken:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                try:
                    datagram.bind((host, port))
                except OSError:
                    continue
        taken.add(port)
        return port
    raise DemoError(f"no free port on {host} after {PORT_ATTEMPTS} attempts")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the demo dies (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(slots=True)
class Child:
    """One child process of the local network."""

    name: str
    argv: list[str]
    log_path: Path
    url: str
    port: int
    data_dir: Path | None = None
    process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class LocalNetwork:
    """A sandbox, a seed and nodes as real processes under ``root`` (see module docstring)."""

    def __init__(
        self,
        root: Path,
        *,
        python: str = sys.executable,
        environ: Mapping[str, str] | None = None,
        dispensaries: int | None = None,
        node_settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.root = root
        self.python = python
        self.environ = {k: v for k, v in (environ or {}).items() if not k.startswith("WHNODE_")}
        self.environ.setdefault("PYTHONUNBUFFERED", "1")
        self.sandbox_dispensaries = dispensaries
        self.node_settings = node_settings or {}
        self.taken_ports: set[int] = set()
        self.sandbox: Child | None = None
        self.seed: Child | None = None
        self.nodes: list[Child] = []
        self.dispensaries: list[str] = []
        self._node_count = 0
        self._session: aiohttp.ClientSession | None = None

    # -------------------------------------------------------------------------- lifetime
    async def __aenter__(self) -> LocalNetwork:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use LocalNetwork as an async context manager"
        return self._session

    def children(self) -> list[Child]:
        return [*self.nodes, *(c for c in (self.seed, self.sandbox) if c is not None)]

    async def aclose(self) -> None:
        """Stop nodes, then the seed, then the sandbox; kill what does not stop in time."""
        try:
            await asyncio.gather(*(self.stop(node) for node in self.nodes))
            for child in (self.seed, self.sandbox):
                if child is not None:
                    await self.stop(child)
        finally:
            for child in self.children():  # even when cancelled half-way
                if child.running and child.process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        child.process.kill()
            if self._session is not None:
                await self._session.close()
                self._session = None

    # -------------------------------------------------------------------------- starting
    async def start(self, nodes: int) -> None:
        """Start the sandbox, the seed and ``nodes`` nodes and wait until all answer."""
        await self.start_sandbox()
        await self.start_seed()
        await asyncio.gather(*(self.start_node() for _ in range(nodes)))
        self.nodes.sort(key=lambda child: int(child.name.removeprefix("node")))

    async def _spawn(self, child: Child) -> None:
        log_file = child.log_path.open("ab")
        try:
            child.process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "whnode",
                *child.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=self.environ,
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops the children
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            log_file.close()

    async def _start_with_retries(self, make: Callable[[int], Child], health_path: str) -> Child:
        """Start the child ``make(port)`` returns; on an early exit retry on another port."""
        last: Child | None = None
        for _ in range(START_ATTEMPTS):
            child = make(free_port(taken=self.taken_ports))
            last = child
            await self._spawn(child)
            if await self._wait_healthy(child, health_path):
                return child
            if child.running:  # alive but not answering: no retry would help
                break
        assert last is not None
        await self.stop(last)
        raise DemoError(f"{last.name} did not start; its log ({last.log_path}):\n{last.log_tail()}")

    async def _wait_healthy(self, child: Child, path: str) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not child.running:
                return False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(child.url + path) as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(0.1)
        return False

    async def start_sandbox(self) -> Child:
        def make(port: int) -> Child:
            argv = ["sandbox", "--host", HOST, "--port", str(port)]
            if self.sandbox_dispensaries is not None:
                argv += ["--dispensaries", str(self.sandbox_dispensaries)]
            return Child("sandbox", argv, self.root / "sandbox.log", f"http://{HOST}:{port}", port)

        self.sandbox = await self._start_with_retries(make, "/healthz")
        self.dispensaries = await self._sandbox_dispensaries()
        return self.sandbox

    async def _sandbox_dispensaries(self) -> list[str]:
        document = await self.sandbox_stats()
        ids = document.get("dispensaries")
        if isinstance(ids, dict):
            ids = list(ids)
        if not isinstance(ids, list) or not ids:
            raise DemoError("the sandbox lists no dispensaries at /_sandbox/stats")
        return [str(item["id"] if isinstance(item, dict) else item) for item in ids]

    async def sandbox_stats(self) -> dict[str, Any]:
        assert self.sandbox is not None
        async with self.session.get(self.sandbox.url + "/_sandbox/stats") as response:
            response.raise_for_status()
            document: dict[str, Any] = await response.json()
        return document

    async def start_seed(self) -> Child:
        data_dir = self.root / "seed"
        data_dir.mkdir(parents=True, exist_ok=True)

        def make(port: int) -> Child:
            argv = ["seed", "--data-dir", str(data_dir), "--host", HOST, "--port", str(port)]
            url = f"http://{HOST}:{port}"
            return Child("seed", argv, self.root / "seed.log", url, port, data_dir)

        self.seed = await self._start_with_retries(make, "/healthz")
        return self.seed

    def node_config_text(self, port: int) -> str:
        """The whnode.toml of a demo node: loopback, the seed, every vendor at the sandbox."""
        assert self.sandbox is not None
        assert self.seed is not None
        lines = [
            "# whnode demo node: every vendor is served by the local sandbox.",
            "[node]",
            f'host = "{HOST}"',
            f"port = {port}",
            f'seeds = ["{HOST}:{self.seed.port}"]',
            "# loopback answers in microseconds: fail over quickly",
            "rpc_timeout = 0.5",
            "lookup_deadline = 3.0",
            "drain_timeout = 5.0",
            "",
            "[pool]",
            "workers = 1",
            "",
            "[upstream]",
            "# the sandbox is local and not rate-limited like the real APIs",
            "requests_per_second = 200.0",
            "burst = 50",
            "concurrency_per_host = 8",
            "request_timeout = 5.0",
            "breaker_failures = 50",
            "breaker_cooldown = 1.0",
            f"dispensaries = {json.dumps(self.dispensaries)}",
        ]
        for section, values in self.node_settings.items():
            lines += ["", f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
        keys = {str(v): k for v, k in SandboxConfig().credentials().items()}  # the keyed POS APIs
        for vendor in VENDORS:
            lines += [
                "",
                "[[upstream.sources]]",
                f'vendor = "{vendor}"',
                f'base_url = "{self.sandbox.url}"',
            ]
            if vendor in keys:
                pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in keys[vendor].items())
                lines.append(f"credentials = {{ {pairs} }}")
        return "\n".join(lines) + "\n"

    async def start_node(self, data_dir: Path | None = None) -> Child:
        """Start a node (a new one, or again on ``data_dir`` with its previous port)."""
        index, self._node_count = self._node_count, self._node_count + 1
        name = f"node{index}"
        if data_dir is None:
            data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)

        def make(port: int) -> Child:
            (data_dir / "whnode.toml").write_text(self.node_config_text(port), encoding="utf-8")
            url = f"http://{HOST}:{port}"
            argv = ["run", "--data-dir", str(data_dir)]
            return Child(name, argv, self.root / f"{name}.log", url, port, data_dir)

        child = await self._start_with_retries(make, "/healthz")
        self.nodes.append(child)
        return child

    async def restart(self, child: Child) -> Child:
        """Start ``child`` again with its data directory and port (it must have exited)."""
        assert not child.running
        assert child.data_dir is not None
        await self._spawn(child)
        if not await self._wait_healthy(child, "/healthz"):
            raise DemoError(f"{child.name} did not restart:\n{child.log_tail()}")
        return child

    # -------------------------------------------------------------------------- stopping
    async def stop(self, child: Child, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM ``child``, wait up to ``timeout`` seconds, then SIGKILL; its exit code."""
        process = child.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                log.warning("%s did not stop within %.0f s: killing it", child.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return process.returncode

    # -------------------------------------------------------------------------- queries
    async def node_info(self, child: Child) -> dict[str, Any]:
        async with self.session.get(child.url + "/v1/node") as response:
            response.raise_for_status()
            document: dict[str, Any] = await response.json()
        return document

    async def wait_meshed(self, timeout: float = 10.0) -> bool:
        """Wait until every node knows every other node (and the seed); False on timeout."""
        wanted = len(self.nodes)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = await asyncio.gather(*(self.node_info(n) for n in self.nodes))
            if all(len(info.get("peers", ())) >= wanted for info in infos):
                return True
            await asyncio.sleep(0.2)
        return False


# ---------------------------------------------------------------------------------------------
# Workload


@dataclass(frozen=True, slots=True)
class Answer:
    dispensary_id: str
    node: int
    started: float
    latency: float
    status: int
    path: str


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    answers: tuple[Answer, ...]
    elapsed: float
    ideal_upstream_calls: int
    upstream_calls: int
    """Upstream menu fetches the sandbox counted during the workload."""
    upstream_requests: int
    """Upstream HTTP requests (pages) the sandbox counted during the workload."""

    @property
    def failed(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.status != 200]


class ProgressBar:
    """A dependency-free progress bar on stderr (\\r-redrawn on a terminal)."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.done == self.total or (self.interactive and now - self._drawn > 0.1):
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = self.done / self.total
        filled = int(self.WIDTH * fraction)
        rate = self.done / max(now - self.started, 1e-6)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"[{bar}] {self.done}/{self.total} {fraction:4.0%} {rate:6.0f} req/s"
        end = "\n" if self.done == self.total else ""
        self.stream.write(("\r" if self.interactive else "") + line + end)
        self.stream.flush()


def _sandbox_totals(stats: Mapping[str, Any]) -> tuple[int, int]:
    """(menu fetches, HTTP requests) from the sandbox's /_sandbox/stats document."""
    menus = stats.get("menu_fetches", stats.get("menus", 0))
    requests = stats.get("requests", stats.get("http_requests", 0))
    return int(menus), int(requests)


async def run_workload(
    network: LocalNetwork,
    requests: int,
    *,
    concurrency: int,
    freshness: FreshnessConfig,
    seed: int = 1,
    progress: ProgressBar | None = None,
    stop: asyncio.Event | None = None,
) -> WorkloadResult:
    """Send a Zipf trace over the nodes; record status, path and latency of every request.

    Setting ``stop`` ends the workload early (the requests in flight finish).
    """
    trace = zipf_trace(
        network.dispensaries,
        requests,
        nodes=len(network.nodes),
        duration_ms=1,
        exponent=ZIPF_EXPONENT,
        seed=seed,
    )
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in trace:
        queue.put_nowait(request)
    before = _sandbox_totals(await network.sandbox_stats())
    answers: list[Answer] = []
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async def worker() -> None:
        while not queue.empty() and not (stop is not None and stop.is_set()):
            request = queue.get_nowait()
            node = network.nodes[request.node]
            url = f"{node.url}/v1/menus/{request.dispensary_id}"
            sent = time.monotonic()
            try:
                async with network.session.get(url, timeout=timeout) as response:
                    await response.read()
                    status, path = response.status, response.headers.get("X-Whnode-Path", "-")
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, path = 0, type(exc).__name__
            answers.append(
                Answer(
                    request.dispensary_id,
                    request.node,
                    sent - started,
                    time.monotonic() - sent,
                    status,
                    path,
                )
            )
            if progress is not None:
                progress.advance()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    after = _sandbox_totals(await network.sandbox_stats())
    lifetime_ms = int(heuristic_lifetime([], 0, freshness) * 1000)
    replay = [
        Request(int(answer.started * 1000), answer.dispensary_id, answer.node)
        for answer in sorted(answers, key=lambda a: a.started)
    ]
    return WorkloadResult(
        answers=tuple(answers),
        elapsed=elapsed,
        ideal_upstream_calls=central_cache_calls(replay, lifetime_ms),
        upstream_calls=after[0] - before[0],
        upstream_requests=after[1] - before[1],
    )


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def render_report(result: WorkloadResult) -> str:
    """The figures of one workload as plain-text tables."""
    total = len(result.answers)
    ideal = result.ideal_upstream_calls
    calls = result.upstream_calls
    lines = [
        f"{total} requests in {result.elapsed:.1f} s"
        f" ({total / max(result.elapsed, 1e-6):.0f} req/s), {len(result.failed)} failed",
        "",
        f"{'upstream menu fetches':<34}{'calls':>8}{'per request':>13}",
        f"{'  whnode network (sandbox count)':<34}{calls:>8}{calls / max(total, 1):>13.3f}",
        f"{'  ideal: one central cache':<34}{ideal:>8}{ideal / max(total, 1):>13.3f}",
        f"{'  no cache (one per request)':<34}{total:>8}{1:>13.3f}",
        f"network / ideal = {calls / max(ideal, 1):.2f}x;"
        f" upstream calls saved against no cache: {1 - calls / max(total, 1):.1%}"
        f" ({result.upstream_requests} upstream HTTP requests, pages included)",
        "",
        f"{'path':<10}{'answers':>9}{'share':>8}{'p50 ms':>10}{'p99 ms':>10}",
    ]
    by_path: dict[str, list[float]] = {}
    for answer in result.answers:
        by_path.setdefault(answer.path if answer.status == 200 else "failed", []).append(
            answer.latency * 1000
        )
    order = ["hot", "store", "owner", "fill", "stale"]
    for path in sorted(by_path, key=lambda p: (order.index(p) if p in order else 99, p)):
        latencies = by_path[path]
        lines.append(
            f"{path:<10}{len(latencies):>9}{len(latencies) / max(total, 1):>8.1%}"
            f"{_percentile(latencies, 0.5):>10.1f}{_percentile(latencies, 0.99):>10.1f}"
        )
    everything = [answer.latency * 1000 for answer in result.answers]
    lines.append(
        f"{'all':<10}{total:>9}{1:>8.0%}"
        f"{_percentile(everything, 0.5):>10.1f}{_percentile(everything, 0.99):>10.1f}"
    )
    return "\n".join(lines) + "\n"


def judge(result: WorkloadResult) -> list[str]:
    """Why a ``--once`` run fails (empty when it passes)."""
    problems: list[str] = []
    if result.failed:
        kinds = sorted({f"{a.status or a.path}" for a in result.failed})
        problems.append(f"{len(result.failed)} request(s) failed ({', '.join(kinds)})")
    bound = max(1, int(UPSTREAM_BOUND_FACTOR * result.ideal_upstream_calls))
    if result.upstream_calls > bound:
        problems.append(
            f"{result.upstream_calls} upstream menu fetches exceed {bound}"
            f" ({UPSTREAM_BOUND_FACTOR:g}x the ideal {result.ideal_upstream_calls})"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# The command


def main(options: DemoOptions) -> int:
    """Run the demo; the exit code is 0 unless something failed."""
    if options.nodes < 1 or options.concurrency < 1:
        raise UsageError("the demo needs at least one node and a concurrency of 1")
    # The default loop, not uvloop: uvloop's process spawning puts back a SIGINT disposition
    # inherited as "ignored" (shell background jobs), and Ctrl-C must reach the demo.
    with asyncio.Runner() as runner:
        return runner.run(_demo(options))


async def _demo(options: DemoOptions) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    root = Path(tempfile.mkdtemp(prefix="whnode-demo-"))
    out = sys.stdout
    try:
        async with LocalNetwork(
            root, python=options.python, environ=options.environ, dispensaries=options.dispensaries
        ) as network:
            _say(f"starting a sandbox, a seed and {options.nodes} nodes (logs in {root})")
            result = await _unless_stopped(stop, _start_and_measure(network, options, stop))
            out.write("\n" + render_report(result) + "\n")
            first = network.nodes[0]
            sample = network.dispensaries[0]
            await _show_queries(first.url, sample, out)
            out.write(
                f"status page  {first.url}/\n"
                f"API          {first.url}/v1/menus/{sample}\n"
                f"             {first.url}/v1/menus/{sample}/products?category=flower&sort=price\n"
                f"             {first.url}/v1/search?q=kush&sort=price_per_gram\n"
                f"             {first.url}/v1/node\n"
                f"CLI          whnode status --node {first.url}\n"
                f"             whnode get {sample} --node {first.url} --format summary\n"
            )
            out.flush()
            problems = judge(result)
            for problem in problems:
                _say(f"problem: {problem}")
            if options.once:
                return 1 if problems else 0
            _say("serving until Ctrl-C")
            await _serve_until(stop, network)
            _say("stopping")
            return 0
    except DemoInterrupted:
        _say("interrupted; stopped every process")
        return 130
    except (RemoteError, aiohttp.ClientError) as exc:
        raise DemoError(f"the demo network failed: {exc}") from exc
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        shutil.rmtree(root, ignore_errors=True)


async def _start_and_measure(
    network: LocalNetwork, options: DemoOptions, stop: asyncio.Event
) -> WorkloadResult:
    await network.start(options.nodes)
    if not await network.wait_meshed():
        _say("warning: not every node sees every other node yet; starting anyway")
    requests = options.requests or (ONCE_REQUESTS if options.once else DEMO_REQUESTS)
    _say(
        f"{len(network.dispensaries)} dispensaries, {requests} requests (Zipf),"
        f" {options.concurrency} in flight, spread over {options.nodes} nodes"
    )
    return await run_workload(
        network,
        requests,
        concurrency=options.concurrency,
        freshness=Config().freshness,
        seed=options.seed,
        progress=ProgressBar(requests),
        stop=stop,
    )


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T:
    """The result of ``work``, or DemoInterrupted as soon as ``stop`` is set.

    On ``stop`` the work is cancelled and given CANCEL_GRACE seconds to unwind; the caller
    then stops the processes whatever the work still does (a library may turn a
    cancellation into a timeout and carry on, so the cancellation alone is not relied on).
    """
    task = asyncio.ensure_future(work)
    task.add_done_callback(_consume)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE)
    if task.done() and not task.cancelled() and not stop.is_set():
        return task.result()
    raise DemoInterrupted("interrupted")


def _consume(task: asyncio.Future[Any]) -> None:
    """Mark an abandoned task's exception as retrieved (it is reported elsewhere or moot)."""
    if not task.cancelled():
        task.exception()


async def _serve_until(stop: asyncio.Event, network: LocalNetwork) -> None:
    """Wait for Ctrl-C; a child that dies meanwhile ends the demo with an error."""
    while not stop.is_set():
        for child in network.children():
            if not child.running:
                raise DemoError(f"{child.name} exited unexpectedly:\n{child.log_tail()}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _show_queries(url: str, sample: str, out: TextIO) -> None:
    """One search and one change, through ``whnode.Client`` (checked against the records)."""
    from whnode.client import Client

    try:
        async with Client(url) as client:
            found = await client.search(limit=3, sort="price_per_gram", category="flower")
            total = f"{found.total}{'' if found.total_exact else '+'}"
            out.write(f"search       cheapest flower per gram on {url} ({total} matches):\n")
            for dispensary_id, product in found.results:
                per_gram = [
                    ((o["special_price_cents"] or o["price_cents"]) / o["quantity"]["amount"], o)
                    for o in product["price_options"]
                    if o["quantity"]["unit"] == "g"
                ]
                cents, option = min(per_gram, key=lambda item: item[0])
                out.write(
                    f"             {dispensary_id}  {product['name'][:40]}  "
                    f"{option['quantity']['amount']:g} g at ${cents / 100:.2f}/g\n"
                )
            history = await client.history(sample, limit=20)
            oldest = min(record.fetched_at_ms for record in history)
            changed = await client.changes(sample, oldest)
            summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in changed.summary.items())
            out.write(f"changes      {sample} over {len(history)} snapshot(s): {summary}\n")
    except (RemoteError, aiohttp.ClientError, ValueError) as exc:
        out.write(f"queries      not shown: {exc}\n")


def _say(text: str) -> None:
    sys.stderr.write(f"whnode demo: {text}\n")
    sys.stderr.flush()
