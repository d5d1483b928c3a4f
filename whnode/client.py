"""``whnode.Client``: a light client of the public HTTP API of one or more nodes.

The client asks a node for the signed record (``Accept: application/cose``) and verifies it
itself, with the same rules as a node (``whnode.record.acceptance.accept_record``: signature,
sizes, timestamps, dispensary binding, trust policy), so it need not trust the node it talks
to. It also checks that the record answers the question: no older than ``max_age`` (give or
take ``CLOCK_SKEW_ALLOWANCE_SECONDS``), not newer than ``at``.

Failover: the nodes are tried in turn, starting with the last one that answered well. A node
is skipped on a connection error or timeout, a 5xx or 429 answer, an unusable answer, or a
record that fails verification. A definite answer (400, 404) is raised at once. When every
node failed, the last failure is raised, with the others as notes.

::

    async with whnode.Client(["http://127.0.0.1:8468", "http://node2:8468"]) as client:
        verified = await client.get_menu("weedmaps:ultra-health-gallup", max_age=300)
        print(verified.menu.name, len(verified.menu.products))

Errors (besides those of ``accept_record``, ``whnode.record.exceptions``): a node's problem
document is raised as the exception the node met, where one exists (``MenuNotFound``,
``UnknownDispensary``, ``UpstreamRefused``, ``UpstreamRateLimited``, ...), else as::

    RemoteError
    └── NodeError               a node's answer could not be used (``node`` is its base URL)
        ├── NodeUnreachable     connection failed or timed out
        ├── NodeBadAnswer       wrong status, media type or size; a record that answers
        │                       another question
        └── NodeProblem         a problem document with no local exception (status, type)
            └── NodeRateLimited the node rate-limits this client (``retry_after``)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp
import cbor2
import yarl

from whnode import __version__, client_queries, limits
from whnode.errors import UsageError
from whnode.exceptions import (
    NodeBadAnswer,
    NodeError,
    NodeProblem,
    NodeRateLimited,
    NodeUnreachable,
)
from whnode.lifecycle import AsyncClosing
from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.exceptions import ModelError, RecordError
from whnode.record.model import Menu, parse_dispensary_id
from whnode.record.signed import SignedRecord
from whnode.service.exceptions import MenuNotFound, NoOwnerReachable
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamParseError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "Client",
    "ClientStatistics",
    "NodeBadAnswer",
    "NodeError",
    "NodeProblem",
    "NodeRateLimited",
    "NodeUnreachable",
    "VerifiedMenu",
]

DEFAULT_TIMEOUT: Final = 35.0
"""Seconds for one request to one node (a node's own deadline for a fill is 30 s)."""
CLOCK_SKEW_ALLOWANCE_SECONDS: Final = 30.0
"""How much older than ``max_age`` a record may look before it is refused (clock skew)."""
MAX_PROBLEM_BYTES: Final = 64 * 1024
"""Largest problem document or JSON answer read from a node."""
MAX_HISTORY_BYTES: Final = 64 * 1024 * 1024 + 1024
"""Largest CBOR history answer read from a node."""
INLINE_VERIFY_BYTES: Final = 32 * 1024
"""Records larger than this are verified and decoded in a worker thread."""
PROBLEM_PREFIX: Final = "urn:whnode:problem:"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VerifiedMenu:
    """A menu whose record passed local verification, and how it was obtained."""

    menu: Menu
    record: SignedRecord
    """The signed record (``record.encoded`` is the COSE_Sign1 bytes)."""
    node: str
    """Base URL of the node that answered."""
    path: str | None
    """How that node obtained it (hot, store, owner, fill, stale), from X-Whnode-Path."""
    fresh_until_ms: int | None
    """Until when the node considers it fresh, from X-Whnode-Fresh-Until."""


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """A frozen snapshot of the client's counters."""

    requests: int
    """HTTP requests sent."""
    failovers: int
    """Times a node failed and the next was tried."""
    rejected_records: int
    """Records that failed verification."""


_UPSTREAM_PROBLEMS: Final[dict[str, type[UpstreamError]]] = {
    "unknown-dispensary": UnknownDispensary,
    "upstream-refused": UpstreamRefused,
    "upstream-bad-response": UpstreamBadResponse,
    "upstream-parse-error": UpstreamParseError,
    "upstream-timeout": UpstreamTimeout,
    "upstream-failed": UpstreamError,
}


def _normalize(url: str) -> str:
    parsed = yarl.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"node URL {url!r} must be http(s)://host[:port]")
    return str(parsed).rstrip("/")


def _retry_after(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0 <= number < 86_400 * 7 else None


async def _read(
    response: aiohttp.ClientResponse, max_bytes: int, *, truncate: bool
) -> bytes | None:
    """The body, read up to ``max_bytes``: cut there (``truncate``) or None when larger."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            if not truncate:
                return None
            chunks.append(chunk[: len(chunk) - (total - max_bytes)])
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _at_ms(at: int | dt.datetime | None) -> int | None:
    if at is None:
        return None
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            raise UsageError("at must be an aware datetime (with a timezone)")
        return int(at.timestamp() * 1000)
    if isinstance(at, bool) or not isinstance(at, int) or at < 0:
        raise UsageError("at must be epoch milliseconds (int >= 0) or an aware datetime")
    return at


class Client(AsyncClosing):
    """A light client of one or more nodes' HTTP API (see the module docstring).

    Use it as an async context manager, or call ``aclose()``. ``policy`` is the trust policy
    applied to every record (default: open, any valid signature). ``session`` lets the caller
    share an aiohttp session (the client then does not close it). ``clock`` returns epoch
    seconds (for tests).
    """

    def __init__(
        self,
        nodes: str | Sequence[str],
        *,
        policy: TrustPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        urls = [nodes] if isinstance(nodes, str) else list(nodes)
        if not urls:
            raise UsageError("a Client needs at least one node URL")
        if timeout <= 0:
            raise UsageError("timeout must be > 0")
        self._nodes = tuple(dict.fromkeys(_normalize(url) for url in urls))
        self._policy = policy if policy is not None else TrustPolicy.open()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._preferred = 0
        self._requests = 0
        self._failovers = 0
        self._rejected = 0

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node base URLs, in the order given."""
        return self._nodes

    async def aclose(self) -> None:
        """Close the HTTP session (when the client created it). Safe to call twice."""
        if self._own_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(
            requests=self._requests, failovers=self._failovers, rejected_records=self._rejected
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": f"whnode-client/{__version__}"},
                timeout=self._timeout,
            )
        return self._session

    # ------------------------------------------------------------------ public calls
    async def get_menu(
        self,
        dispensary_id: str,
        *,
        max_age: float | None = None,
        at: int | dt.datetime | None = None,
    ) -> VerifiedMenu:
        """The verified menu of ``dispensary_id``: at most ``max_age`` seconds old when given,
        or the snapshot current at ``at`` (epoch ms or aware datetime) when given."""
        dispensary_id = parse_dispensary_id(dispensary_id)
        at_value = _at_ms(at)
        if max_age is not None and (max_age < 0 or max_age != max_age):
            raise UsageError("max_age must be a number >= 0")
        if max_age is not None and at_value is not None:
            raise UsageError("max_age and at exclude each other")
        params: dict[str, str] = {}
        if max_age is not None:
            params["max_age"] = f"{max_age:.6f}".rstrip("0").rstrip(".")
        if at_value is not None:
            params["at"] = str(at_value)

        async def attempt(node: str) -> VerifiedMenu:
            response = await self._get(
                node, f"/v1/menus/{dispensary_id}", params, "application/cose", dispensary_id
            )
            data, headers = response
            record, menu = await self._verify(node, data, dispensary_id)
            self._check_answers(node, record, max_age=max_age, at_ms=at_value)
            fresh_until = headers.get("X-Whnode-Fresh-Until", "")
            return VerifiedMenu(
                menu=menu,
                record=record,
                node=node,
                path=headers.get("X-Whnode-Path"),
                fresh_until_ms=int(fresh_until) if fresh_until.isdigit() else None,
            )

        return await self._failover(attempt)

    async def history(self, dispensary_id: str, *, limit: int = 20) -> list[SignedRecord]:
        """Up to ``limit`` verified snapshots of ``dispensary_id``, newest first.

        Records are verified but not decoded; ``whnode.record.acceptance.open_record(record)``
        decodes one into a Menu.
        """
        dispensary_id = parse_dispensary_id(dispensary_id)
        if isinstance(limit, bool) or not 1 <= limit <= limits.MAX_HISTORY_ITEMS:
            raise UsageError(f"limit must be between 1 and {limits.MAX_HISTORY_ITEMS}")

        async def attempt(node: str) -> list[SignedRecord]:
            data, _ = await self._get(
                node,
                f"/v1/menus/{dispensary_id}/history",
                {"limit": str(limit)},
                "application/cbor",
                dispensary_id,
                max_bytes=MAX_HISTORY_BYTES,
            )
            try:
                items = cbor2.loads(data)
            except (cbor2.CBORDecodeError, ValueError, RecursionError) as exc:
                raise NodeBadAnswer("history is not CBOR", node=node) from exc
            if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
                raise NodeBadAnswer("history is not an array of records", node=node)
            now_ms = int(self._clock() * 1000)
            records = []
            for item in items[:limit]:
                try:
                    records.append(
                        accept_record(
                            item,
                            now_ms=now_ms,
                            policy=self._policy,
                            expected_dispensary=dispensary_id,
                        )
                    )
                except RecordError:
                    self._rejected += 1
                    raise
            records.sort(key=lambda record: record.fetched_at_ms, reverse=True)
            return records

        return await self._failover(attempt)

    async def node_info(self) -> dict[str, Any]:
        """``GET /v1/node`` of the first node that answers."""

        async def attempt(node: str) -> dict[str, Any]:
            document = await self._get_json(node, "/v1/node")
            if not isinstance(document, dict):
                raise NodeBadAnswer("node info is not an object", node=node)
            return document

        return await self._failover(attempt)

    async def dispensaries(self) -> list[str]:
        """``GET /v1/dispensaries`` of the first node that answers."""

        async def attempt(node: str) -> list[str]:
            document = await self._get_json(node, "/v1/dispensaries")
            items = document.get("dispensaries") if isinstance(document, dict) else None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise NodeBadAnswer("dispensaries is not a list of ids", node=node)
            return items

        return await self._failover(attempt)

    # ------------------------------------------------------- queries (client_queries.py)
    async def products(
        self,
        dispensary_id: str,
        *,
        max_age: float | None = None,
        verify: bool = True,
        **filters: Any,
    ) -> client_queries.ProductAnswer:
        """Every product of a menu that matches ``filters`` (``category=``, ``q=``,
        ``max_price_per_gram=``, ``sort=``, ...: the parameters of
        ``GET /v1/menus/{id}/products``), checked against the verified snapshot."""
        return await client_queries.products(
            self, dispensary_id, max_age=max_age, verify=verify, **filters
        )

    async def changes(
        self, dispensary_id: str, since: int | str, *, max_age: float | None = None
    ) -> client_queries.ChangeAnswer:
        """What changed since ``since`` (epoch ms, ISO-8601 or an ETag), from the two
        verified snapshots the node names."""
        return await client_queries.changes(self, dispensary_id, since, max_age=max_age)

    def events(self, dispensary_id: str) -> AsyncGenerator[VerifiedMenu, None]:
        """Each new snapshot of a menu, verified, as the node learns it (resumed with
        ``Last-Event-ID`` when the stream ends)."""
        return client_queries.events(self, dispensary_id)

    async def search(
        self,
        *,
        dispensaries: list[str] | None = None,
        max_age: float | None = None,
        verify: bool = True,
        limit: int = 100,
        **filters: Any,
    ) -> client_queries.SearchAnswer:
        """Products across dispensaries that match ``filters``; with ``verify``, each checked
        against the verified snapshot of its dispensary."""
        return await client_queries.search(
            self, dispensaries=dispensaries, max_age=max_age, verify=verify, limit=limit, **filters
        )

    # ------------------------------------------------------------------ machinery
    async def _failover(self, attempt: Callable[[str], Awaitable[T]]) -> T:
        order = self._nodes[self._preferred :] + self._nodes[: self._preferred]
        failures: list[BaseException] = []
        for index, node in enumerate(order):
            try:
                result: T = await attempt(node)
            except (NodeError, RecordError, UpstreamError, NoOwnerReachable) as exc:
                if not self._worth_next_node(exc):
                    raise
                failures.append(exc)
                if index + 1 < len(order):
                    self._failovers += 1
                continue
            self._preferred = self._nodes.index(node)
            return result
        last = failures[-1]
        for other in failures[:-1]:
            last.add_note(f"also failed: {type(other).__name__}: {other}")
        raise last

    @staticmethod
    def _worth_next_node(exc: BaseException) -> bool:
        """Whether another node may do better than the one that raised ``exc``."""
        if isinstance(exc, ModelError | MenuNotFound | UnknownDispensary):
            return False
        if isinstance(exc, NodeProblem) and not isinstance(exc, NodeRateLimited):
            return exc.status >= 500
        return True

    async def _get(
        self,
        node: str,
        path: str,
        params: dict[str, str],
        accept: str,
        dispensary_id: str,
        *,
        max_bytes: int = limits.MAX_RECORD_BYTES,
    ) -> tuple[bytes, dict[str, str]]:
        self._requests += 1
        try:
            async with self._http().get(
                node + path, params=params, headers={"Accept": accept}, allow_redirects=False
            ) as response:
                if response.status != 200:
                    body = await _read(response, MAX_PROBLEM_BYTES, truncate=True) or b""
                    raise self._problem(node, response, body, dispensary_id)
                media = response.content_type
                if media != accept:
                    raise NodeBadAnswer(f"answered {media!r}, not {accept!r}", node=node)
                if response.content_length is not None and response.content_length > max_bytes:
                    raise NodeBadAnswer(f"answer larger than {max_bytes} bytes", node=node)
                data = await _read(response, max_bytes, truncate=False)
                if data is None:
                    raise NodeBadAnswer(f"answer larger than {max_bytes} bytes", node=node)
                return data, dict(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NodeUnreachable(f"{type(exc).__name__}: {exc}", node=node) from exc

    async def _get_json(self, node: str, path: str) -> object:
        data, _ = await self._get(
            node, path, {}, "application/json", "", max_bytes=limits.MAX_RECORD_BYTES
        )
        try:
            return json.loads(data)
        except ValueError as exc:
            raise NodeBadAnswer("answer is not JSON", node=node) from exc

    def _problem(
        self, node: str, response: aiohttp.ClientResponse, body: bytes, dispensary_id: str
    ) -> Exception:
        """The exception for a non-200 answer (a problem document, ideally)."""
        status = response.status
        document: dict[str, Any] = {}
        if response.content_type == "application/problem+json":
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                document = parsed
        problem_type = str(document.get("type", "about:blank"))[:200]
        title = str(document.get("title", response.reason or ""))[:200]
        detail = str(document.get("detail", title))[:500]
        slug = problem_type.removeprefix(PROBLEM_PREFIX)
        retry_after = _retry_after(document.get("retry_after", response.headers.get("Retry-After")))
        source = f"node {node}"
        if slug == "menu-not-found" and dispensary_id:
            return MenuNotFound(detail, dispensary_id=dispensary_id)
        if slug == "no-owner-reachable" and dispensary_id:
            return NoOwnerReachable(detail, dispensary_id=dispensary_id)
        if slug == "invalid-dispensary-id":
            return ModelError(detail)
        if slug in ("upstream-rate-limited", "upstream-unavailable") and dispensary_id:
            cls = UpstreamRateLimited if slug == "upstream-rate-limited" else UpstreamUnavailable
            return cls(detail, source=source, dispensary_id=dispensary_id, retry_after=retry_after)
        upstream = _UPSTREAM_PROBLEMS.get(slug)
        if upstream is not None and dispensary_id:
            return upstream(detail, source=source, dispensary_id=dispensary_id, status=status)
        if status == 429:
            return NodeRateLimited(
                detail,
                node=node,
                status=status,
                problem_type=problem_type,
                title=title,
                retry_after=retry_after,
            )
        if not document:
            if status >= 500:
                return NodeProblem(
                    f"status {status}",
                    node=node,
                    status=status,
                    problem_type=problem_type,
                    title=title,
                )
            return NodeBadAnswer(f"unexpected status {status}", node=node)
        return NodeProblem(detail, node=node, status=status, problem_type=problem_type, title=title)

    async def _verify(
        self, node: str, data: bytes, dispensary_id: str
    ) -> tuple[SignedRecord, Menu]:
        now_ms = int(self._clock() * 1000)

        def verify() -> tuple[SignedRecord, Menu]:
            record = accept_record(
                data, now_ms=now_ms, policy=self._policy, expected_dispensary=dispensary_id
            )
            return record, open_record(record)

        try:
            if len(data) > INLINE_VERIFY_BYTES:
                return await asyncio.to_thread(verify)
            return verify()
        except RecordError as exc:
            self._rejected += 1
            exc.add_note(f"record served by {node}")
            raise

    def _check_answers(
        self, node: str, record: SignedRecord, *, max_age: float | None, at_ms: int | None
    ) -> None:
        if at_ms is not None and record.fetched_at_ms > at_ms:
            raise NodeBadAnswer(
                f"record fetched at {record.fetched_at_ms} is newer than at={at_ms}", node=node
            )
        if max_age is not None:
            age = self._clock() - record.fetched_at_ms / 1000
            if age > max_age + CLOCK_SKEW_ALLOWANCE_SECONDS:
                raise NodeBadAnswer(
                    f"record is {age:.0f} s old, more than max_age={max_age}", node=node
                )
