"""``whnode bench fuzz``: a million generated inputs at a node's parsers; nothing may break.

Four kinds of input, each from a generator of its own (the tests run the same generators
under hypothesis, tests/api/test_fuzz_generators.py):

- **datagrams** (most of the inputs): random bytes, valid ping/find_node/store requests
  mutated (bits flipped, cut, extended), random MessagePack in request and reply framing,
  handed to a listening DHT node's ``datagram_received`` from many source addresses (the
  rate limits are raised so that the inputs reach the decoders);
- **HTTP requests** over real TCP connections to a real node (public and node-to-node
  routes): random methods, paths, query strings, many and long headers, bodies, broken
  chunked framing, non-HTTP bytes;
- **records**: a real signed record (COSE_Sign1 over lz4 CBOR) mutated, through
  ``accept_record``;
- **upstream pages**: the real samples of docs' menu-samples, mutated at the JSON level and
  the byte level, through each adapter's parser (``parse_menu_job``).

Printed: crashes (an input that made the node stop serving or an exception escape the entry
point), unhandled exceptions (caught by a last-resort handler: ``handler_errors``, HTTP 5xx,
an exception other than the documented ones), tracebacks and ERROR lines logged, RSS growth
(goal 0 / 0 / 0 / <= 20 MB; RSS after the heap trim a node does once a minute,
``whnode.memory``, and before it); and the reflection ratio per RPC kind: bytes the node sent to
sources that never answered it, over the bytes they sent (goal <= 3x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "datagram_input",
    "http_input",
    "main",
    "page_input",
    "record_input",
]

# ---------------------------------------------------------------------- generators
_MSGPACK_ATOMS: list[Callable[[random.Random], object]] = [
    lambda r: None,
    lambda r: r.choice([True, False]),
    lambda r: r.randint(-(2**63), 2**64 - 1),
    lambda r: r.random() * 10 ** r.randint(-5, 30),
    lambda r: os.urandom(r.choice([0, 1, 19, 20, 21, 32, 33, 200])),
    lambda r: "".join(chr(r.randint(0, 0x2FFF)) for _ in range(r.randint(0, 20))),
    lambda r: r.choice(["ping", "find_node", "store", "find_value", "stun", "__init__", ""]),
]


def _value(r: random.Random, depth: int = 0) -> object:
    roll = r.random()
    if depth < 4 and roll < 0.2:
        return [_value(r, depth + 1) for _ in range(r.randint(0, 25))]
    if depth < 4 and roll < 0.27:
        return {str(_value(r, 9))[:10]: _value(r, depth + 1) for _ in range(r.randint(0, 5))}
    return r.choice(_MSGPACK_ATOMS)(r)


def _mutate(r: random.Random, data: bytes) -> bytes:
    raw = bytearray(data)
    for _ in range(r.randint(1, 4)):
        action = r.random()
        if action < 0.4 and raw:
            raw[r.randrange(len(raw))] ^= 1 << r.randrange(8)
        elif action < 0.55 and raw:
            del raw[r.randrange(len(raw)) :]
        elif action < 0.7:
            raw[r.randrange(len(raw) + 1) : 0] = os.urandom(r.randint(1, 40))
        elif action < 0.85 and raw:
            start = r.randrange(len(raw))
            raw[start : start + r.randint(1, 8)] = b"\xff" * r.randint(0, 8)
        elif raw:
            raw[r.randrange(len(raw))] = r.choice([0x00, 0x7F, 0x80, 0xC1, 0xDC, 0xDD, 0xDE, 0xDF])
    return bytes(raw)


def datagram_input(r: random.Random) -> bytes:
    """One datagram: valid requests mutated, random MessagePack, or random bytes."""
    from whnode.dht.contact import PublicKey, node_id_for
    from whnode.dht.packing import packb
    from whnode.dht.wire import Hello, RpcName, encode_request

    roll = r.random()
    msg_id = os.urandom(20)
    if roll < 0.45:
        key = PublicKey(os.urandom(32))
        hello = Hello(node_id_for(key), key).encode()
        name = r.choice([RpcName.PING, RpcName.FIND_NODE, RpcName.STORE])
        args = [*hello, os.urandom(20)] if name == RpcName.FIND_NODE else hello
        valid = encode_request(msg_id, name, args)
        return valid if r.random() < 0.2 else _mutate(r, valid)
    if roll < 0.8:
        kind = r.choice([b"\x00", b"\x01", bytes([r.randrange(256)])])
        body = [_value(r), _value(r)] if r.random() < 0.7 else _value(r)
        try:
            packed = packb(body)
        except Exception:  # a value the encoder refuses (e.g. an int out of range)
            packed = os.urandom(r.randint(0, 100))
        return kind + msg_id + packed
    return os.urandom(r.choice([0, 1, 20, 21, 22, r.randint(0, 1600)]))


_PATHS = [
    "/v1/menus/weedmaps:ultra-health-gallup",
    "/v1/menus/{x}",
    "/v1/menus/{x}/history",
    "/v1/menus/{x}/stats",
    "/v1/node",
    "/v1/dispensaries",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/",
    "/static/{x}",
    "/peer/v1/records/{x}",
    "/peer/v1/fill/{x}",
    "/peer/v1/history/{x}",
    "/peer/v1/{x}",
    "/{x}",
]


def _token(r: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789:%-._~/?#[]@!$&'()*+,;=\\\"<> \t"
    return "".join(r.choice(alphabet) for _ in range(r.randint(0, 30)))


def http_input(r: random.Random) -> bytes:
    """One raw HTTP/1.1 request, often malformed, always ending the connection."""
    method = r.choice(["GET", "GET", "PUT", "POST", "HEAD", "DELETE", "OPTIONS", "FROB", "G\x00T"])
    path = r.choice(_PATHS).replace("{x}", _token(r))
    if r.random() < 0.3:
        path += "?" + "&".join(f"{_token(r)}={_token(r)}" for _ in range(r.randint(0, 6)))
    if r.random() < 0.05:
        path = "/" + "x" * r.randint(8000, 20000)  # over the request-line limit
    version = r.choice(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/2.0", "HTTP/9", ""])
    headers = ["Host: fuzz", "Connection: close"]
    for _ in range(r.choice([0, 1, 3, 8, 200]) if r.random() < 0.1 else r.randint(0, 4)):
        headers.append(f"X-{_token(r)[:10] or 'a'}: {_token(r)}")
    if r.random() < 0.1:
        headers.append("X-Long: " + "y" * r.randint(8000, 12000))
    if r.random() < 0.3:
        headers.append(f"X-Whnode-Node: {os.urandom(20).hex()}")
    body = b""
    framing = r.random()
    if method in ("PUT", "POST") or framing < 0.1:
        size = r.choice([0, 10, 1000, 70_000])
        body = os.urandom(size)
        if framing < 0.5:
            headers.append(f"Content-Length: {r.choice([size, size + 5, max(0, size - 5), -1])}")
        else:
            headers.append("Transfer-Encoding: chunked")
            chunks = f"{len(body):x}\r\n".encode() + body + b"\r\n"
            if r.random() < 0.5:
                chunks = _mutate(r, chunks)
            body = chunks + (b"0\r\n\r\n" if r.random() < 0.7 else b"")
    request = f"{method} {path} {version}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
    raw = request.encode("utf-8", "surrogatepass") + body
    if r.random() < 0.05:
        raw = os.urandom(r.randint(1, 300))  # not HTTP at all (TLS, garbage)
    return raw


def record_input(r: random.Random, valid: bytes) -> bytes:
    """A signed record mutated (or random CBOR-looking bytes)."""
    if r.random() < 0.1:
        return os.urandom(r.randint(0, 2000))
    return _mutate(r, valid)


def _mutate_json(r: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            roll = r.random()
            if roll < 0.03:
                continue
            out[key] = _mutate_json(r, item, depth + 1) if roll < 0.5 else item
        return out
    if isinstance(value, list):
        items = [_mutate_json(r, item, depth + 1) if r.random() < 0.3 else item for item in value]
        if items and r.random() < 0.05:
            items.append(items[0])
        return items
    if r.random() < 0.1:
        return r.choice([None, "", -1, 1e308, "NaN", [], {}, "x" * 100, True, 2**70])
    return value


def page_input(r: random.Random, sample: bytes) -> bytes:
    """An upstream page mutated at the JSON level (types, missing keys) or the byte level."""
    if r.random() < 0.2:
        return _mutate(r, sample)
    try:
        document = json.loads(sample)
    except ValueError:
        return sample
    return json.dumps(_mutate_json(r, document)).encode()


# ---------------------------------------------------------------------- harness
class _LogWatch(logging.Handler):
    """Counts records with a traceback and records at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.tracebacks = 0
        self.errors = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.tracebacks += 1
        if record.levelno >= logging.ERROR:
            self.errors += 1
        if (record.exc_info or record.levelno >= logging.ERROR) and len(self.samples) < 5:
            self.samples.append(f"{record.name}: {record.getMessage()[:200]}")


@dataclass
class FuzzReport:
    inputs: Counter[str] = field(default_factory=Counter)
    crashes: Counter[str] = field(default_factory=Counter)
    unhandled: Counter[str] = field(default_factory=Counter)
    reflection: dict[str, float] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _CountingTransport:
    """Wraps the DHT socket's transport: counts the bytes sent to each address."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: Counter[tuple[str, int]] = Counter()

    def sendto(self, data: bytes, address: Any) -> None:
        self.sent[(str(address[0]), int(address[1]))] += len(data)
        self.inner.sendto(data, address)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _dht_target() -> tuple[Any, Any]:
    from whnode.dht import DhtConfig, DhtNode
    from whnode.dht.contact import Contact, PublicKey, node_id_for
    from whnode.dht.protocol import RoutingNode

    config = DhtConfig(
        ip_limit_exempts_loopback=False,
        datagrams_per_source_per_second=1e9,
        datagram_burst_per_source=10**9,
        datagrams_per_ip_per_second=1e9,
        datagram_burst_per_ip=10**9,
        flood_block_seconds=0,
    )
    node = DhtNode(PublicKey(os.urandom(32)), config)
    await node.listen("127.0.0.1", 0)
    protocol = node._protocol  # the bench drives the protocol's datagram entry point
    assert protocol is not None
    for index in range(60):  # a table to answer find_node from
        key = PublicKey(os.urandom(32))
        contact = Contact(node_id_for(key), f"127.3.{index // 250}.{index % 250 + 1}", 9000)
        protocol.welcome_if_new(RoutingNode(contact))
    return node, protocol


def _source(r: random.Random) -> tuple[str, int]:
    return (f"127.{r.randint(4, 250)}.{r.randint(0, 255)}.{r.randint(1, 254)}", r.randint(1, 65535))


async def fuzz_datagrams(count: int, seed: int, report: FuzzReport) -> None:
    node, protocol = await _dht_target()
    r = random.Random(seed)
    try:
        before = node.statistics().handler_errors
        for index in range(count):
            data = datagram_input(r)
            try:
                protocol.datagram_received(data, _source(r))
            except Exception as exc:
                report.crashes["datagram"] += 1
                report.samples.append(f"datagram: {exc!r}")
            if index % 5000 == 0:
                await asyncio.sleep(0)  # let replies and probes run
        report.inputs["datagram"] += count
        report.unhandled["datagram"] += node.statistics().handler_errors - before
        await reflection(protocol, report, r)
    finally:
        await node.aclose()


async def reflection(protocol: Any, report: FuzzReport, r: random.Random) -> None:
    """Valid requests of each kind from sources that never answer: bytes out / bytes in."""
    from whnode.dht.contact import PublicKey, node_id_for
    from whnode.dht.wire import Hello, RpcName, encode_request

    counting = _CountingTransport(protocol.transport)
    protocol.transport = counting
    try:
        for name in (RpcName.PING, RpcName.FIND_NODE, RpcName.STORE):
            received = 0
            sources = []
            for _ in range(200):
                source = _source(r)
                sources.append(source)
                key = PublicKey(os.urandom(32))
                hello = Hello(node_id_for(key), key).encode()
                for _ in range(r.randint(1, 5)):
                    args = [*hello, os.urandom(20)] if name == RpcName.FIND_NODE else hello
                    datagram = encode_request(os.urandom(20), name, args)
                    received += len(datagram)
                    protocol.datagram_received(datagram, source)
            await asyncio.sleep(0.05)
            sent = sum(counting.sent[source] for source in sources)
            report.reflection[str(name)] = sent / max(1, received)
    finally:
        protocol.transport = counting.inner


def fuzz_records(count: int, seed: int, report: FuzzReport) -> None:
    from whnode.record.acceptance import TrustPolicy, accept_record
    from whnode.record.codec import content_hash, encode_menu
    from whnode.record.exceptions import RecordError
    from whnode.record.keys import SigningKey
    from whnode.record.signed import sign_record
    from whnode.testing.factories import make_menu

    menu = make_menu(n_products=20)
    valid = sign_record(
        payload=encode_menu(menu),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=SigningKey.generate(),
    ).encoded
    r = random.Random(seed)
    policy = TrustPolicy.open()
    for _ in range(count):
        data = record_input(r, valid)
        try:
            accept_record(data, now_ms=menu.fetched_at_ms, policy=policy)
        except RecordError:
            pass
        except Exception as exc:
            report.unhandled["record"] += 1
            if len(report.samples) < 10:
                report.samples.append(f"record: {exc!r}")
    report.inputs["record"] += count


async def collect_pages(sandbox_url: str, dispensaries: list[str]) -> list[tuple[str, str, bytes]]:
    """(vendor, dispensary id, page): every page of one small menu per vendor, fetched from
    the sandbox through the adapters (the real vendor shapes, docs/upstreams.md)."""
    from whnode.config import UpstreamConfig
    from whnode.record.model import Vendor
    from whnode.upstream.adapters import ADAPTERS
    from whnode.upstream.http import UpstreamHttp
    from whnode.upstream.sources import SourcesConfig

    sources = SourcesConfig.pointing_at(sandbox_url)
    http = UpstreamHttp.from_config(UpstreamConfig(requests_per_second=100.0, burst=100))
    pages: list[tuple[str, str, bytes]] = []
    try:
        for vendor in (Vendor.DUTCHIE, Vendor.JANE, Vendor.WEEDMAPS, Vendor.LEAFLY):
            dispensary = next(d for d in dispensaries if d.startswith(f"{vendor.value}:"))
            fetched = await ADAPTERS[vendor].fetch_pages(
                http, sources.resolve(dispensary), dispensary
            )
            pages.extend((vendor.value, dispensary, page) for page in fetched[:2])
    finally:
        await http.aclose()
    return pages


def fuzz_pages(
    count: int, seed: int, report: FuzzReport, samples: list[tuple[str, str, bytes]]
) -> None:
    from whnode.upstream.exceptions import UpstreamError
    from whnode.upstream.pool import parse_menu_job

    r = random.Random(seed)
    for _ in range(count):
        vendor, dispensary, sample = r.choice(samples)
        page = page_input(r, sample)
        try:
            parse_menu_job(vendor, dispensary, [page], 1_700_000_000_000)
        except UpstreamError:
            pass
        except Exception as exc:
            report.unhandled["page"] += 1
            if len(report.samples) < 10:
                report.samples.append(f"page: {exc!r}")
    report.inputs["page"] += count


async def _one_http(port: int, raw: bytes) -> int:
    """Send one raw request; the answer's status (0: no answer, the connection closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 15)
        parts = line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    except (ConnectionError, TimeoutError):
        return 0
    finally:
        writer.transport.abort()


async def fuzz_http(count: int, seed: int, report: FuzzReport, port: int, health: str) -> None:
    import aiohttp

    r = random.Random(seed)
    statuses: Counter[int] = Counter()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

    async def worker() -> None:
        while (raw := await queue.get()) is not None:
            try:
                statuses[await _one_http(port, raw)] += 1
            except OSError as exc:
                report.crashes["http_connect"] += 1
                if len(report.samples) < 10:
                    report.samples.append(f"http: {exc!r}")

    workers = [asyncio.create_task(worker()) for _ in range(16)]
    for _ in range(count):
        await queue.put(http_input(r))
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    report.inputs["http"] += count
    report.unhandled["http"] += sum(n for status, n in statuses.items() if status >= 500)
    async with aiohttp.ClientSession() as session, session.get(health) as response:
        if response.status != 200:
            report.crashes["http"] += 1  # the node stopped serving


@dataclass(frozen=True, slots=True)
class _Plan:
    datagrams: int
    http: int
    records: int
    pages: int


async def run(plan: _Plan, seed: int) -> tuple[FuzzReport, float, tuple[float, float], _LogWatch]:
    import dataclasses

    from whnode.config import ApiConfig
    from whnode.memory import trim_heap
    from whnode.node import Node
    from whnode.sandbox import SandboxConfig, run_sandbox
    from whnode.testing.cluster import cluster_config

    report = FuzzReport()
    watch = _LogWatch()
    root = logging.getLogger()
    root.addHandler(watch)
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    for noisy in ("asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as directory:
            async with run_sandbox(SandboxConfig()) as sandbox:
                config = cluster_config(Path(directory), sandbox_url=sandbox.base_url)
                # the fuzzer is one client: raise its budget so inputs reach the handlers
                config = dataclasses.replace(
                    config, api=ApiConfig(requests_per_second=1e6, burst=10**6)
                )
                async with Node(config) as node:
                    samples = await collect_pages(sandbox.base_url, list(sandbox.dispensaries))
                    # warm up every path once before the baseline RSS
                    await fuzz_http(50, seed, FuzzReport(), node.port, f"{node.http_url}/healthz")
                    fuzz_records(200, seed, FuzzReport())
                    fuzz_pages(50, seed, FuzzReport(), samples)
                    await fuzz_datagrams(2000, seed, FuzzReport())
                    rss_before = _rss_mb()
                    await fuzz_http(
                        plan.http, seed + 1, report, node.port, f"{node.http_url}/healthz"
                    )
                    fuzz_records(plan.records, seed + 2, report)
                    fuzz_pages(plan.pages, seed + 3, report, samples)
                    await fuzz_datagrams(plan.datagrams, seed + 4, report)
                    rss_after = _rss_mb()
                    # what a running node does once a minute (whnode.memory): freed heap
                    # memory back to the OS
                    trim_heap(force=True)
                    rss_trimmed = _rss_mb()
    finally:
        root.removeHandler(watch)
        root.setLevel(previous_level)
    return report, rss_before, (rss_after, rss_trimmed), watch


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench fuzz", description=__doc__)
    parser.add_argument("--datagrams", type=int, default=900_000)
    parser.add_argument("--http", type=int, default=20_000)
    parser.add_argument("--records", type=int, default=70_000)
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stress", type=int, default=0, help="CPU burners beside the run")
    args = parser.parse_args(argv)
    from whnode.bench.cluster import cpu_burners, load_average
    from whnode.daemon import loop_factory

    plan = _Plan(args.datagrams, args.http, args.records, args.pages)
    started = time.monotonic()
    with cpu_burners(args.stress), asyncio.Runner(loop_factory=loop_factory()) as runner:
        report, rss_before, (rss_after, rss_trimmed), watch = runner.run(run(plan, args.seed))
        load = load_average()
    total = sum(report.inputs.values())
    print(
        f"fuzz: {total:,} generated inputs in {time.monotonic() - started:.0f} s"
        f" ({', '.join(f'{k} {v:,}' for k, v in sorted(report.inputs.items()))});"
        f" --stress {args.stress}; load average {load}"
    )
    crashes = sum(report.crashes.values())
    unhandled = sum(report.unhandled.values())
    print(f"  crashes: {crashes} {dict(report.crashes) or ''}")
    print(f"  unhandled exceptions: {unhandled} {dict(report.unhandled) or ''}")
    print(f"  tracebacks logged: {watch.tracebacks}; ERROR lines: {watch.errors}")
    print(
        f"  RSS growth: {rss_trimmed - rss_before:+.1f} MB ({rss_before:.0f} ->"
        f" {rss_trimmed:.0f} MB; goal <= 20 MB), after the heap trim a node does once a"
        f" minute; {rss_after - rss_before:+.1f} MB before it"
    )
    print("  reflection (bytes sent to never-answering sources / bytes they sent), goal <= 3x:")
    for kind, ratio in sorted(report.reflection.items()):
        print(f"    {kind}: {ratio:.2f}x")
    for sample in report.samples + watch.samples:
        print(f"  e.g. {sample}")
    ok = crashes == 0 and unhandled == 0 and watch.tracebacks == 0 and watch.errors == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
