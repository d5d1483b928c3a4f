"""The one configuration object, documented field by field.

Built at the edge (``whnode.cli``) from, in increasing precedence: defaults, the TOML file
(``whnode.toml`` in the data directory), environment variables ``WHNODE_<SECTION>_<FIELD>``
and command-line flags (``--set section.field=value`` and a few shortcuts). Nothing below
``whnode.cli`` reads argv or the environment: every layer receives the frozen ``Config``.

The table in docs/configuration.md is generated from the dataclasses below
(``describe_config()``), never copied by hand.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from whnode.errors import ConfigError
from whnode.version import VERSION

__all__ = [
    "ApiConfig",
    "CacheConfig",
    "Config",
    "FreshnessConfig",
    "LogConfig",
    "NodeConfig",
    "PoolConfig",
    "SeedConfig",
    "SourceOverride",
    "TrustConfig",
    "UpstreamConfig",
    "build_config",
    "check_key",
    "default_of",
    "describe_config",
    "masked",
    "resolve_data_dir",
    "values_of",
]

DEFAULT_PORT = 8468
CONFIG_FILE_NAME = "whnode.toml"
ENV_PREFIX = "WHNODE_"


class TrustMode(enum.StrEnum):
    OPEN = "open"
    ALLOWLIST = "allowlist"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


PROJECT_URL: Final = "https://github.com/whnode/whnode"
"""Where an upstream operator reading the User-Agent learns what whnode is."""


DEFAULT_USER_AGENT: Final = f"whnode/{VERSION} (+{PROJECT_URL}; peer-to-peer menu cache)"
"""Says who calls and why; never imitates a browser."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    data_dir: Path = Path("./whnode-data")
    """Directory holding the identity key, the SQLite store, the peer list and whnode.toml."""
    host: str = "127.0.0.1"
    """Address to bind the UDP (DHT) socket and the TCP (HTTP) listener to."""
    port: int = DEFAULT_PORT
    """Port number for both UDP and TCP; 0 picks a free one."""
    advertise_host: str | None = None
    """Address other nodes should use to reach this node (default: host)."""
    seeds: tuple[str, ...] = ()
    """Bootstrap seed peers as "host:port", each optionally followed by the seed's pinned
    node id (40 hex digits), as in a seeds file."""
    seeds_file: Path | None = None
    """Optional seeds list file (one "host:port [node id]" per line, # comments)."""
    replication: int = 7
    """Number of owners (r) that hold each dispensary's records."""
    ksize: int = 20
    """Kademlia bucket size k."""
    alpha: int = 3
    """Kademlia lookup concurrency."""
    rpc_timeout: float = 2.0
    """Seconds to wait for one DHT RPC reply."""
    lookup_deadline: float = 5.0
    """Overall deadline in seconds for one DHT lookup."""
    routing_only: bool = False
    """Seed mode (what ``whnode seed`` sets): route only; no store, no upstream calls, no
    menu API (menu routes answer 404 saying so); the ``[seed]`` section applies."""
    peer_timeout: float = 10.0
    """Seconds to wait for a node-to-node HTTP answer (fills may take longer upstream)."""
    request_deadline: float = 30.0
    """Overall deadline in seconds for answering one menu request."""
    hedge_delay: float = 0.2
    """Least seconds to wait for the closest owner before also asking the next one, which
    answers only from what it holds or is filling (a hedge; never a second upstream fetch).
    The wait is the 90th percentile of recent answers, at least this; 0 turns hedging off."""
    republish_interval: float = 600.0
    """Seconds between republishing held records to their current owners."""
    drain_timeout: float = 8.0
    """Seconds to let in-flight requests finish on SIGTERM/SIGINT."""


@dataclass(frozen=True, slots=True)
class CacheConfig:
    hot_cache_bytes: int = 64 * 1024 * 1024
    """Byte budget of the in-memory hot cache."""
    store_max_bytes: int = 2 * 1024 * 1024 * 1024
    """Byte quota of the SQLite store; oldest history is evicted first."""
    history_per_dispensary: int = 48
    """Snapshots kept per dispensary."""
    expire_after: float = 30 * 24 * 3600.0
    """Seconds after which snapshots are deleted from the store."""


@dataclass(frozen=True, slots=True)
class FreshnessConfig:
    min_ttl: float = 60.0
    """Lower bound in seconds of the heuristic freshness lifetime."""
    max_ttl: float = 6 * 3600.0
    """Upper bound in seconds of the heuristic freshness lifetime."""
    heuristic_fraction: float = 0.1
    """Freshness lifetime = this fraction of the time since the menu last changed."""
    default_ttl: float = 900.0
    """Lifetime used before any change history exists (then clamped)."""
    stale_while_revalidate: float = 300.0
    """Seconds past expiry during which a stale record is served while one refresh runs."""
    stale_if_error: float = 24 * 3600.0
    """Seconds past expiry during which a stale record is served when upstream fails."""
    refresh_ahead_requests: int = 20
    """Requests within one lifetime that make a dispensary popular (refreshed ahead)."""
    refresh_ahead_fraction: float = 0.8
    """Popular records are refreshed after this fraction of their lifetime, with jitter."""
    negative_ttl: float = 60.0
    """Seconds an unknown dispensary or a refusing source is remembered."""


@dataclass(frozen=True, slots=True)
class SourceOverride:
    vendor: str
    """Vendor name (dutchie, jane, weedmaps, leafly, treez, flowhub)."""
    base_url: str | None = None
    """Base URL replacing the vendor's real one (a proxy or the sandbox)."""
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Per-source keys (e.g. algolia_api_key, client_id, api_key); never logged. Also from
    the environment: ``WHNODE_SOURCE_<VENDOR>_<KEY>``."""


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    user_agent: str = DEFAULT_USER_AGENT
    """User-Agent sent upstream: honest, names the project."""
    requests_per_second: float = 2.0
    """Token-bucket rate per upstream host."""
    burst: int = 4
    """Token-bucket burst per upstream host."""
    concurrency_per_host: int = 4
    """Concurrent requests per upstream host."""
    request_timeout: float = 15.0
    """Seconds for one upstream HTTP request."""
    menu_deadline: float = 60.0
    """Seconds for fetching one whole menu (all pages)."""
    max_retries: int = 3
    """Retries of one request on 5xx, timeouts and 429."""
    breaker_failures: int = 5
    """Consecutive failures that open a host's circuit breaker."""
    breaker_cooldown: float = 30.0
    """Seconds before an open breaker lets one probe through."""
    sources: tuple[SourceOverride, ...] = ()
    """Per-vendor overrides: base URL and credentials."""
    dispensaries: tuple[str, ...] = ()
    """Dispensary ids this node lists as known sources (GET /v1/dispensaries)."""


@dataclass(frozen=True, slots=True)
class PoolConfig:
    workers: int = 0
    """Parse worker processes; 0 means one per CPU core."""
    max_tasks_per_child: int = 200
    """Jobs after which a worker process is replaced."""
    queue_depth: int = 64
    """Parse jobs admitted at once; further submitters wait (back-pressure)."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    requests_per_second: float = 500.0
    """Public API request rate allowed per client address."""
    burst: int = 1000
    """Public API request burst allowed per client address."""
    status_page: bool = True
    """Serve the volunteer status page at /."""
    # connection limits of the HTTP listener (whnode/api/server.py, docs/operators.md)
    header_timeout: float = 10.0
    """Seconds to finish a request's line and headers once begun (slow clients are cut)."""
    idle_timeout: float = 30.0
    """Seconds an idle keep-alive HTTP connection stays open."""
    max_connections: int = 1024
    """HTTP connections open at most (fitted to the descriptor limit); oldest idle shed."""
    max_connections_per_ip: int = 64
    """HTTP connections open at most per IP (IPv6 /64, loopback exempt); oldest idle shed."""
    # change streams (GET /v1/menus/{id}/events; whnode/api/events.py)
    max_streams: int = 256
    """Server-Sent Events streams open at most; more are refused with 503."""
    max_streams_per_ip: int = 8
    """Event streams open at most per client address (IPv6 /64); more get 429."""
    stream_heartbeat: float = 15.0
    """Seconds between heartbeat comments on an idle event stream."""


@dataclass(frozen=True, slots=True)
class TrustConfig:
    mode: TrustMode = TrustMode.OPEN
    """open: any valid signature; allowlist: only the publisher keys listed."""
    allowlist: tuple[str, ...] = ()
    """Hex-encoded Ed25519 public keys of trusted publishers (allowlist mode)."""
    # --- who may publish (docs/dht.md, "Who may publish a menu") ---
    owner_slack: int = 3
    """Owner ranks beyond node.replication whose nodes may still publish a dispensary's
    records (open mode): newcomers may push an honest owner a few ranks down."""
    entitlement_window: float = 3600.0
    """Seconds a node seen in the routing table or an owner lookup is still counted when
    deciding who may publish (an owner that just left keeps its records accepted)."""
    node_id_difficulty: int = 14
    """Leading zero bits required of SHA-256 over a node id (S/Kademlia's static puzzle):
    contacts and publishers with weaker ids are refused, and a new identity is ground to
    meet it. Network-wide: every node must use the same value."""
    ids_per_ip: int = 2
    """Most node ids from one IP address (IPv6: one /64) in the routing table."""
    owner_ids_per_ip: int = 1
    """Most node ids from one IP address (IPv6: one /64) in one owner list."""


@dataclass(frozen=True, slots=True)
class LogConfig:
    format: LogFormat = LogFormat.TEXT
    """Log format on stderr: text or json."""
    level: str = "INFO"
    """Log level: DEBUG, INFO, WARNING, ERROR."""


@dataclass(frozen=True, slots=True)
class SeedConfig:
    """Seeds only (``whnode seed``, or any node with ``node.routing_only``; a full node
    ignores this section): a seed is a node (``[node]``: host, port, data_dir, seeds,
    seeds_file, ksize, rpc_timeout; ``[trust]``; ``[log]``) that routes only and paces
    strangers more tightly than a node."""

    public_address: str | None = None
    """Public address (IP or DNS name) of the seed shown in the seeds line it logs at
    start-up (default: node.advertise_host, else node.host unless that is a wildcard)."""
    stats_interval: float = 60.0
    """Seconds between two stats lines in the log (peers, RPCs, drops)."""
    health_grace: float = 60.0
    """Seconds after start during which an empty routing table still counts as healthy, as
    long as no peer has ever been known."""
    datagrams_per_source_per_second: float = 25.0
    """Datagram rate allowed from one source address (a joining node needs a few); excess
    datagrams are dropped unread and counted."""
    datagram_burst_per_source: int = 100
    """Datagram burst allowed from one source address (one bootstrap lookup fits)."""
    datagrams_per_ip_per_second: float = 100.0
    """Datagram rate allowed from one IP address (IPv6: one /64), all source ports together;
    loopback sources are exempt (every local process shares 127.0.0.1)."""
    datagram_burst_per_ip: int = 400
    """Datagram burst allowed from one IP address (IPv6: one /64)."""
    http_requests_per_second: float = 5.0
    """HTTP requests per second allowed from one client IP (health checks, scrapes); excess
    gets 429."""
    http_burst: int = 30
    """HTTP request burst allowed from one client IP."""
    max_saved_peers: int = 256
    """Most contacts written to (and read back from) the persisted peer table."""
    peers_save_interval: float = 60.0
    """Seconds between saves of the peer table (it is also saved on stop)."""


@dataclass(frozen=True, slots=True)
class Config:
    node: NodeConfig = field(default_factory=NodeConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    freshness: FreshnessConfig = field(default_factory=FreshnessConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    log: LogConfig = field(default_factory=LogConfig)
    seed: SeedConfig = field(default_factory=SeedConfig)

    def __post_init__(self) -> None:
        _validate(self)


SECTIONS: dict[str, type[Any]] = {
    "node": NodeConfig,
    "cache": CacheConfig,
    "freshness": FreshnessConfig,
    "upstream": UpstreamConfig,
    "pool": PoolConfig,
    "api": ApiConfig,
    "trust": TrustConfig,
    "log": LogConfig,
    "seed": SeedConfig,
}

SECRET_WORDS = ("key", "secret", "token", "password", "credential")


_RANGES: Final[dict[str, tuple[float, float | None, bool]]] = {
    # key: (lowest, highest or None, lowest allowed itself)
    "node.port": (0, 65535, True),
    "node.replication": (1, 20, True),
    "node.ksize": (1, None, True),
    "node.alpha": (1, None, True),
    "node.rpc_timeout": (0, None, False),
    "node.lookup_deadline": (0, None, False),
    "node.peer_timeout": (0, None, False),
    "node.request_deadline": (0, None, False),
    "node.republish_interval": (0, None, False),
    "node.drain_timeout": (0, None, True),
    "node.hedge_delay": (0, None, True),
    "cache.hot_cache_bytes": (1024 * 1024, None, True),
    "cache.store_max_bytes": (1024 * 1024, None, True),
    "cache.history_per_dispensary": (1, None, True),
    "cache.expire_after": (0, None, False),
    "freshness.min_ttl": (0, None, False),
    "freshness.heuristic_fraction": (0, 1, False),
    "freshness.default_ttl": (0, None, False),
    "freshness.stale_while_revalidate": (0, None, True),
    "freshness.stale_if_error": (0, None, True),
    "freshness.refresh_ahead_requests": (1, None, True),
    "freshness.refresh_ahead_fraction": (0, 1, False),
    "freshness.negative_ttl": (0, None, True),
    "upstream.requests_per_second": (0, None, False),
    "upstream.burst": (1, None, True),
    "upstream.concurrency_per_host": (1, None, True),
    "upstream.request_timeout": (0, None, False),
    "upstream.menu_deadline": (0, None, False),
    "upstream.max_retries": (0, None, True),
    "upstream.breaker_failures": (1, None, True),
    "upstream.breaker_cooldown": (0, None, True),
    "pool.workers": (0, None, True),
    "pool.max_tasks_per_child": (1, None, True),
    "pool.queue_depth": (1, None, True),
    "api.requests_per_second": (0, None, False),
    "api.burst": (1, None, True),
    "api.header_timeout": (0, None, False),
    "api.idle_timeout": (0, None, False),
    "api.max_connections": (16, None, True),
    "api.max_connections_per_ip": (1, None, True),
    "api.max_streams": (1, None, True),
    "api.max_streams_per_ip": (1, None, True),
    "api.stream_heartbeat": (0, None, False),
    "trust.owner_slack": (0, None, True),
    "trust.entitlement_window": (0, None, False),
    "trust.node_id_difficulty": (0, 32, True),
    "seed.stats_interval": (0, None, False),
    "seed.health_grace": (0, None, False),
    "seed.datagrams_per_source_per_second": (0, None, False),
    "seed.datagram_burst_per_source": (1, None, True),
    "seed.datagrams_per_ip_per_second": (0, None, False),
    "seed.datagram_burst_per_ip": (1, None, True),
    "seed.http_requests_per_second": (0, None, False),
    "seed.http_burst": (1, None, True),
    "seed.max_saved_peers": (1, None, True),
    "seed.peers_save_interval": (0, None, False),
    "trust.ids_per_ip": (1, None, True),
    "trust.owner_ids_per_ip": (1, None, True),
}
"""Allowed ranges of numeric keys: every rule about one value lives here (with ``_CHECKS``),
under the name a user sets. The DHT and upstream layers check their copies of these keys
with the same rules (``check_key``), so a built Config never fails below it."""


def _range_text(low: float, high: float | None, inclusive: bool) -> str:
    if high is not None:
        return f"{low:g}..{high:g}" if inclusive else f"in ({low:g}, {high:g}]"
    return f"at least {low:g}" if inclusive else f"> {low:g}"


def _ip_address(value: Any) -> str | None:
    if value is None:
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"must be an IP address, not {value!r}"
    return None


def _printable(value: Any) -> str | None:
    text = str(value)
    return None if text.strip() and text.isprintable() else "must be printable and not empty"


_CHECKS: Final[dict[str, typing.Callable[[Any], str | None]]] = {
    "node.advertise_host": _ip_address,
    "upstream.user_agent": _printable,
}
"""Rules of keys that are not numeric ranges: what is wrong with a value, or None."""


def check_key(key: str, value: Any, *, label: str | None = None) -> None:
    """Check one value against the rule of the user key ``key`` (``_RANGES``, ``_CHECKS``).

    ``label`` names the value in the message when it is not ``key`` itself: the DHT and
    upstream layers check their copies of a user key with the key's own rule, under their
    own names, so that a rule is written once.
    """
    name = label or key
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {value!r}")
    rule = _RANGES.get(key)
    if rule is not None:
        low, high, inclusive = rule
        too_low = value < low if inclusive else value <= low
        if too_low or (high is not None and value > high):
            raise ConfigError(f"{name} must be {_range_text(low, high, inclusive)}, not {value!r}")
    check = _CHECKS.get(key)
    problem = None if check is None else check(value)
    if problem is not None:
        raise ConfigError(f"{name} {problem}")


def default_of(key: str) -> Any:
    """The default of a user key (``"node.ksize"``): layers that keep a copy of a key take
    its default from here instead of repeating it."""
    section, _, name = key.partition(".")
    for item in dataclasses.fields(SECTIONS[section]):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
    raise KeyError(key)


def values_of(config: Config, keys: Mapping[str, str]) -> dict[str, Any]:
    """``{name: value of the user key}`` for ``keys`` mapping a layer's field name to the
    user key it copies (the way an inner configuration is derived from a Config)."""
    values: dict[str, Any] = {}
    for name, key in keys.items():
        section, _, field_name = key.partition(".")
        values[name] = getattr(getattr(config, section), field_name)
    return values


def _check_ranges(config: Config) -> None:
    for section, cls in SECTIONS.items():
        values = getattr(config, section)
        for item in dataclasses.fields(cls):
            check_key(f"{section}.{item.name}", getattr(values, item.name))


def _validate(config: Config) -> None:
    """Every rule about the configuration, naming the key a user sets (see _RANGES)."""
    _check_ranges(config)
    node = config.node
    from whnode.seeds import parse_seeds

    for seed in node.seeds:  # seeds-file lines: host:port and an optional pinned node id
        try:
            parsed = parse_seeds(seed, source="node.seeds")
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("node.seeds:1:", "node.seeds:", 1)) from None
        if len(parsed) != 1:
            raise ConfigError(f"node.seeds: {seed!r} is not one HOST:PORT [NODE_ID]")
    if node.hedge_delay > node.request_deadline:
        raise ConfigError("node.hedge_delay must be <= node.request_deadline")
    fresh = config.freshness
    if fresh.max_ttl < fresh.min_ttl:
        raise ConfigError("freshness.max_ttl must be >= freshness.min_ttl")
    for index, source in enumerate(config.upstream.sources):
        _validate_source(source, f"upstream.sources[{index}]")
    if config.log.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"log.level {config.log.level!r} is not a log level")
    for key in config.trust.allowlist:
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"trust.allowlist entry {key[:16]!r}... is not 64 hex digits")
    if config.trust.mode is TrustMode.ALLOWLIST and not config.trust.allowlist:
        raise ConfigError("trust.mode = allowlist needs at least one trust.allowlist key")


def _validate_source(source: SourceOverride, where: str) -> None:
    """What the upstream layer checks when it applies a source, checked now (vendor, base
    URL, credentials), with the message naming the table."""
    from whnode.record.model import Vendor

    vendors = [vendor.value for vendor in Vendor]
    if source.vendor.strip().lower() not in vendors:
        raise ConfigError(
            f"{where}.vendor: unknown vendor {source.vendor!r} (one of {', '.join(vendors)})"
        )
    if source.base_url is not None:
        url = urllib.parse.urlsplit(source.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"{where}.base_url must be an absolute http(s) URL")
        if url.query or url.fragment:
            raise ConfigError(f"{where}.base_url must not carry a query or fragment")
    from whnode.upstream.sources import SourcesConfig

    try:  # the credentials as the upstream layer reads them (the same code at run time)
        SourcesConfig.from_config(UpstreamConfig(sources=(source,)))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_host_port(value: str) -> tuple[str, int]:
    """Parse "host:port" (IPv6 as "[::1]:8468")."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{value!r} is not host:port")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{value!r}: port must be 1..65535")
    return host.strip("[]"), port


def _coerce(annotation: Any, value: Any, where: str, *, typed: bool = False) -> Any:
    """Turn a TOML/env/flag value into the field's type, or raise ConfigError.

    ``typed``: the value comes from the TOML file, which has types of its own: it must
    already be of the field's type (``port = "9000"`` and ``seeds = "a:1"`` are refused).
    Environment variables and flags are text and are parsed.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        non_none = [arg for arg in args if arg is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(non_none[0], value, where, typed=typed)
    if typed and not _has_toml_type(annotation, value):
        raise ConfigError(f"{where}: expected {_type_words(annotation)}, got {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool | float):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if annotation is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            choices = ", ".join(str(member.value) for member in annotation)
            raise ConfigError(f"{where}: expected one of {choices}, got {value!r}") from None
    if origin is tuple:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0]
        if item_type is SourceOverride:
            return tuple(_source_override(item, f"{where}[{i}]") for i, item in enumerate(value))
        return tuple(
            _coerce(item_type, item, f"{where}[{i}]", typed=typed) for i, item in enumerate(value)
        )
    if origin in (Mapping, dict) or annotation is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    raise ConfigError(f"{where}: unsupported type {annotation!r}")


def _has_toml_type(annotation: Any, value: Any) -> bool:
    """True when a TOML value is of the type a field of ``annotation`` holds."""
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str or annotation is Path:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return isinstance(value, str)
    if typing.get_origin(annotation) is tuple:
        return isinstance(value, list)
    return True


def _type_words(annotation: Any) -> str:
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if typing.get_origin(annotation) is tuple:
        return "a list"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(str(member.value) for member in annotation)
    return "a string"


def _source_override(value: Any, where: str) -> SourceOverride:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: a source must be a table with vendor, base_url")
    unknown = set(value) - {"vendor", "base_url", "credentials"}
    if unknown:
        raise ConfigError(f"{where}: unknown source keys {sorted(unknown)}")
    if "vendor" not in value:
        raise ConfigError(f"{where}: a source needs a vendor")
    credentials = value.get("credentials", {})
    if not isinstance(credentials, Mapping):
        raise ConfigError(f"{where}.credentials must be a table")
    return SourceOverride(
        vendor=str(value["vendor"]),
        base_url=_coerce(str | None, value.get("base_url"), f"{where}.base_url"),
        credentials={str(k): str(v) for k, v in credentials.items()},
    )


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(layers: dict[str, dict[str, Any]], section: str, name: str, value: Any) -> None:
    if section not in SECTIONS:
        raise ConfigError(f"unknown configuration section {section!r}")
    if name not in _hints(SECTIONS[section]):
        raise ConfigError(f"unknown configuration key {section}.{name}")
    layers.setdefault(section, {})[name] = value


def _from_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    layers: dict[str, dict[str, Any]] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
        for name, value in table.items():
            _apply(layers, section, name, value)
    return layers


def _from_env(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    layers: dict[str, dict[str, Any]] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "WHNODE_CONFIG":
            continue
        rest = key[len(ENV_PREFIX) :].lower()
        section, _, name = rest.partition("_")
        if section not in SECTIONS:
            continue
        _apply(layers, section, name, value)
    return layers


def _from_assignments(assignments: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    layers: dict[str, dict[str, Any]] = {}
    for dotted, value in assignments.items():
        section, sep, name = dotted.partition(".")
        if not sep:
            raise ConfigError(f"{dotted!r}: expected section.key")
        _apply(layers, section, name, value)
    return layers


def _data_dir(
    env_layers: dict[str, dict[str, Any]], flag_layers: dict[str, dict[str, Any]]
) -> Path:
    data_dir = flag_layers.get("node", {}).get("data_dir") or env_layers.get("node", {}).get(
        "data_dir"
    )
    return Path(data_dir) if data_dir else NodeConfig().data_dir


def resolve_data_dir(
    *, environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> Path:
    """The data directory named by flags, else the environment, else the default.

    The file cannot name it (``whnode.toml`` lives there); ``build_config`` looks for the
    file in this directory, and ``whnode init`` writes it there.
    """
    return _data_dir(_from_env(dict(environ or {})), _from_assignments(flags or {}))


def build_config(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Config:
    """Build the Config: flags > environment > file > defaults.

    ``flags`` maps "section.key" to a value. When ``config_file`` is None, the file is
    ``whnode.toml`` in the data directory given by flags, environment or default, if present.
    """
    env = dict(environ or {})
    env_layers = _from_env(env)
    flag_layers = _from_assignments(flags or {})
    if config_file is None:
        base = _data_dir(env_layers, flag_layers)
        candidate = Path(env["WHNODE_CONFIG"]) if "WHNODE_CONFIG" in env else None
        config_file = candidate or base / CONFIG_FILE_NAME
        file_layers = _from_toml(config_file) if config_file.exists() else {}
    else:
        file_layers = _from_toml(config_file)
    merged: dict[str, dict[str, Any]] = {}
    for layer, typed in ((file_layers, True), (env_layers, False), (flag_layers, False)):
        for section, values in layer.items():
            hints = _hints(SECTIONS[section])
            merged.setdefault(section, {}).update(
                (name, _coerce(hints[name], value, f"{section}.{name}", typed=typed))
                for name, value in values.items()
            )
    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        values = merged.get(section, {})
        try:
            sections[section] = cls(**values)
        except TypeError as exc:
            raise ConfigError(f"[{section}]: {exc}") from exc
    sections["upstream"] = _with_env_credentials(sections["upstream"], env)
    return Config(**sections)


SOURCE_ENV_PREFIX = "WHNODE_SOURCE_"
"""``WHNODE_SOURCE_<VENDOR>_<KEY>=value`` sets one credential of a source (e.g.
``WHNODE_SOURCE_TREEZ_API_KEY``), over the file's ``[[upstream.sources]]`` credentials."""


def _with_env_credentials(upstream: UpstreamConfig, environ: Mapping[str, str]) -> UpstreamConfig:
    """Source credentials from the environment, so that keys need not sit in a file."""
    found: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        if key.startswith(SOURCE_ENV_PREFIX):
            vendor, _, name = key[len(SOURCE_ENV_PREFIX) :].lower().partition("_")
            if not vendor or not name:
                raise ConfigError(f"{key}: expected {SOURCE_ENV_PREFIX}<VENDOR>_<KEY>")
            found.setdefault(vendor, {})[name] = value
    if not found:
        return upstream
    sources = list(upstream.sources)
    for vendor, credentials in found.items():
        index = next((i for i, s in enumerate(sources) if s.vendor.lower() == vendor), None)
        if index is None:
            sources.append(SourceOverride(vendor=vendor, credentials=credentials))
        else:
            held = sources[index]
            merged = {**held.credentials, **credentials}
            sources[index] = dataclasses.replace(held, credentials=merged)
    return dataclasses.replace(upstream, sources=tuple(sources))


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def masked(config: Config) -> dict[str, dict[str, Any]]:
    """The effective configuration as plain data, secrets replaced by '***'."""

    def plain(value: Any, name: str = "") -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: plain(getattr(value, f.name), f.name) for f in dataclasses.fields(value)
            }
        if isinstance(value, Mapping):
            return {
                str(k): ("***" if _is_secret(str(k)) or name == "credentials" else plain(v, str(k)))
                for k, v in value.items()
            }
        if isinstance(value, (tuple, list)):
            return [plain(item, name) for item in value]
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, str) and _is_secret(name):
            return "***"
        return value

    result: dict[str, dict[str, Any]] = plain(config)
    return result


def describe_config() -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every field, for docs/configuration.md."""
    from whnode.docstrings import attribute_docs

    rows: list[tuple[str, str, str, str]] = []
    for section, cls in SECTIONS.items():
        docs = attribute_docs(cls)
        default = cls()
        for f in dataclasses.fields(cls):
            value = getattr(default, f.name)
            shown = value.value if isinstance(value, enum.Enum) else value
            if isinstance(shown, Path):
                shown = str(shown)
            rows.append((f"{section}.{f.name}", str(f.type), repr(shown), docs.get(f.name, "")))
    return rows
