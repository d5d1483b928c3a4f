"""The seeds list: the bootstrap peers a node contacts first.

A seeds file is UTF-8 text, one seed per line::

    # whnode seeds (comments start with '#', blank lines are ignored)
    seed1.example.org:8468
    203.0.113.7:8468   5f1c0a2e9b7d4c3a1f0e9d8c7b6a5f4e3d2c1b0a   # pinned node id
    [2001:db8::7]:8468

- the address is ``host:port``; an IPv6 literal is written in brackets (``[2001:db8::7]:8468``);
  the host is an IP literal or a DNS name;
- an optional second field pins the seed's node id (40 hex digits, SHA-1 of its public key):
  a node that finds another id at that address does not trust it as that seed
  (``whnode seed`` logs its own pinned line at start-up);
- ``#`` starts a comment anywhere on a line;
- a line with anything else, a duplicate address, an over-long file or too many seeds is an
  error naming the file and the line (:class:`whnode.errors.ConfigError`).

:func:`parse_seeds` parses text (pure); :func:`load_seeds` reads a file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from whnode.dht.contact import NODE_ID_BYTES, NodeId
from whnode.errors import ConfigError

__all__ = [
    "MAX_SEEDS",
    "MAX_SEEDS_FILE_BYTES",
    "Seed",
    "configured_seeds",
    "format_seed",
    "load_seeds",
    "parse_seed_address",
    "parse_seeds",
]

MAX_SEEDS_FILE_BYTES: Final = 1024 * 1024
"""Largest seeds file read."""
MAX_SEEDS: Final = 1000
"""Most seeds in one list."""

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_HEX_ID = re.compile(rf"[0-9A-Fa-f]{{{2 * NODE_ID_BYTES}}}")
_MAX_HOSTNAME_CHARS = 253


def _check_host(host: str) -> str:
    """An IP literal (canonical form) or a DNS name; raise ValueError otherwise."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > _MAX_HOSTNAME_CHARS:
        raise ValueError(f"{host!r} is not an IP address or a host name")
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(f"{host!r} is not an IP address or a host name")
    return name.lower()


@dataclass(frozen=True, slots=True)
class Seed:
    """One bootstrap seed: where to reach it and, optionally, which node it must be."""

    host: str
    """An IP literal in canonical form or a lower-case DNS name (resolved when contacted)."""
    port: int
    """UDP port of the seed's DHT socket (its HTTP listener uses the same number over TCP)."""
    node_id: NodeId | None = None
    """Pinned node id (SHA-1 of the seed's public key), or None when not pinned."""
    line: int = field(default=0, compare=False)
    """Line of the seeds file it came from (0 when not from a file); not part of equality."""

    def __post_init__(self) -> None:
        try:
            canonical = _check_host(self.host)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        object.__setattr__(self, "host", canonical)
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigError(f"port {self.port!r} is not an integer")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not in 1..65535")
        if self.node_id is not None and (
            not isinstance(self.node_id, bytes) or len(self.node_id) != NODE_ID_BYTES
        ):
            raise ConfigError(f"a pinned node id is {NODE_ID_BYTES} bytes")

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, as ``DhtNode.bootstrap`` takes it."""
        return (self.host, self.port)

    def __str__(self) -> str:
        return format_seed(self)


def format_seed(seed: Seed) -> str:
    """The seeds-file line for ``seed`` (``host:port`` and the pinned id when there is one)."""
    host = f"[{seed.host}]" if ":" in seed.host else seed.host
    text = f"{host}:{seed.port}"
    return f"{text} {seed.node_id.hex()}" if seed.node_id is not None else text


def parse_seed_address(text: str) -> tuple[str, int]:
    """Parse ``host:port`` or ``[ipv6]:port``; raise ConfigError with the reason."""
    value = text.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"{text!r}: expected [IPv6]:PORT")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{text!r}: {host!r} is not an IPv6 address") from None
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"{text!r}: expected HOST:PORT")
        if ":" in host:
            raise ConfigError(f"{text!r}: write an IPv6 address in brackets, [{host}]:{port_text}")
    if not port_text.isascii() or not port_text.isdigit():
        raise ConfigError(f"{text!r}: the port {port_text!r} is not a number")
    seed = Seed(host, int(port_text))
    return seed.address


def _parse_line(text: str, number: int) -> Seed | None:
    content = text.split("#", 1)[0].strip()
    if not content:
        return None
    fields = content.split()
    if len(fields) > 2:
        raise ConfigError(
            f"expected HOST:PORT [NODE_ID_HEX], found {len(fields)} fields ({content!r})"
        )
    host, port = parse_seed_address(fields[0])
    node_id: NodeId | None = None
    if len(fields) == 2:
        if not _HEX_ID.fullmatch(fields[1]):
            raise ConfigError(
                f"the pinned node id {fields[1]!r} is not {2 * NODE_ID_BYTES} hex digits"
            )
        node_id = NodeId(bytes.fromhex(fields[1]))
    return Seed(host, port, node_id, line=number)


def parse_seeds(text: str, *, source: str = "<seeds>") -> list[Seed]:
    """Parse a seeds list; errors name ``source`` and the line (``source:LINE: reason``)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SEEDS_FILE_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_SEEDS_FILE_BYTES} bytes")
    seeds: list[Seed] = []
    first_line: dict[tuple[str, int], int] = {}
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        try:
            seed = _parse_line(line, number)
        except ConfigError as exc:
            raise ConfigError(f"{source}:{number}: {exc}") from None
        if seed is None:
            continue
        if seed.address in first_line:
            raise ConfigError(
                f"{source}:{number}: {format_seed(Seed(*seed.address))} is already listed "
                f"on line {first_line[seed.address]}"
            )
        if len(seeds) >= MAX_SEEDS:
            raise ConfigError(f"{source}:{number}: more than {MAX_SEEDS} seeds")
        first_line[seed.address] = number
        seeds.append(seed)
    return seeds


def load_seeds(path: Path) -> list[Seed]:
    """Read and parse a seeds file; unreadable or malformed files raise ConfigError."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_SEEDS_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the seeds file: {exc.strerror or exc}") from exc
    if len(data) > MAX_SEEDS_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_SEEDS_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text") from exc
    return parse_seeds(text, source=str(path))


def configured_seeds(seeds: Sequence[str], seeds_file: Path | None) -> list[Seed]:
    """Whom to join: each of ``seeds`` (``node.seeds``: seeds-file lines, ``host:port`` with
    an optional pinned node id), then the seeds file; an address listed twice counts once
    (its first listing wins). Reads the file: call it off the event loop."""
    found: list[Seed] = []
    for index, text in enumerate(seeds, start=1):
        found.extend(parse_seeds(text, source=f"node.seeds[{index}]"))
    if seeds_file is not None:
        found.extend(load_seeds(seeds_file))
    unique: dict[tuple[str, int], Seed] = {}
    for seed in found:
        unique.setdefault(seed.address, seed)
    return list(unique.values())
