"""The pooled HTTP client every upstream adapter goes through.

One ``aiohttp.ClientSession`` per node with a pooled connector, an honest User-Agent, and per
upstream host: a token-bucket pace (``HostPace``), a concurrency cap, and a circuit breaker
(``CircuitBreaker``). Each request has a timeout; each menu has a deadline (an absolute time
on the event loop's clock, as ``asyncio.timeout_at`` takes) that no request, wait or retry
runs past. What the answers mean:

=====================================  ==========================  ========  =============
answer                                 raised when final           retried   breaker
=====================================  ==========================  ========  =============
2xx JSON (any non-HTML body)           (returned)                  -         success
2xx ``text/html`` or a body that       UpstreamRefused             no        failure
starts with ``<`` (a block page)
401, 403, 406, 451                     UpstreamRefused             no        failure
429                                    UpstreamRateLimited         yes       failure
503 with Retry-After                   UpstreamUnavailable         yes       failure
other 5xx                              UpstreamBadResponse         yes       failure
3xx (redirects are not followed:       UpstreamBadResponse         no        success
a consent or challenge page, most
often, on a host we do not pace)
other 4xx (400, 404, ...)              UpstreamBadResponse         no        success
truncated body, empty 2xx body         UpstreamBadResponse         yes       failure
body over ``max_response_bytes``       UpstreamBadResponse         no        none
request timeout                        UpstreamTimeout             yes       failure
connection refused, reset, DNS         UpstreamUnavailable         yes       failure
breaker open                           UpstreamCircuitOpen         no        (nothing sent)
menu deadline reached                  UpstreamTimeout             no        none
=====================================  ==========================  ========  =============

The answer rows are ``whnode.upstream.answers.ANSWER_RULES``, a table that classifies an
answer's status, headers and body; the other rows are transport failures (one outcome per
exception type, in ``_send``).

Retries wait with exponential back-off and full jitter (a uniform draw in
``[0, min(backoff_max, backoff_base * 2**attempt)]``), or exactly the upstream's Retry-After
(seconds or an HTTP-date), which also pauses every other request to that host. When the
Retry-After would end past the deadline (or past ``max_retry_after``), the call fails at once
with ``UpstreamRateLimited`` (``UpstreamUnavailable`` for a 503) carrying ``retry_after``
rather than sleeping. Waiting for the host's pace would end past the deadline: the same.

Request headers (where API keys live) and query strings are never logged nor put in errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import enum
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

import aiohttp
import yarl

from whnode import limits
from whnode.config import DEFAULT_USER_AGENT, check_key, default_of
from whnode.errors import ConfigError, UsageError
from whnode.lifecycle import AsyncClosing, deprecated_alias
from whnode.upstream.answers import (
    RETRY_AFTER_STATUSES,
    Answer,
    AnswerRule,
    BreakerVerdict,
    classify,
)
from whnode.upstream.breaker import Admission, BreakerState, CircuitBreaker
from whnode.upstream.exceptions import (
    UpstreamBadResponse,
    UpstreamCircuitOpen,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from whnode.upstream.ratelimit import HostPace

if TYPE_CHECKING:
    from whnode.config import UpstreamConfig

__all__ = [
    "DEFAULT_USER_AGENT",
    "HostStatistics",
    "UpstreamHttp",
    "UpstreamHttpConfig",
    "UpstreamHttpStatistics",
    "parse_retry_after",
]

LOG = logging.getLogger(__name__)

READ_CHUNK_BYTES: Final = 64 * 1024
"""Bytes read from a response body at a time (the size cap is checked after each chunk)."""
MAX_RETRY_AFTER_SECONDS: Final = 120.0
"""Longest Retry-After waited out when there is no deadline; longer ones fail at once."""

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "whnode_upstream_deadline", default=None
)


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True, slots=True)
class UpstreamHttpConfig:
    """Everything that shapes the client's traffic; the defaults are polite.

    The fields of ``USER_KEYS`` copy ``[upstream]`` keys of ``whnode.config.Config``: their
    defaults and rules are the user keys' own, and a node builds this with
    :meth:`from_config`, so a value is checked once, under the name a user sets.
    """

    USER_KEYS: ClassVar[Mapping[str, str]] = {
        "user_agent": "upstream.user_agent",
        "requests_per_second": "upstream.requests_per_second",
        "burst": "upstream.burst",
        "concurrency_per_host": "upstream.concurrency_per_host",
        "request_timeout": "upstream.request_timeout",
        "max_retries": "upstream.max_retries",
        "breaker_failures": "upstream.breaker_failures",
        "breaker_cooldown": "upstream.breaker_cooldown",
    }
    """Fields that copy a user key (field name → key)."""

    user_agent: str = default_of("upstream.user_agent")
    """User-Agent sent upstream: names the project and its URL."""
    requests_per_second: float = default_of("upstream.requests_per_second")
    """Token-bucket rate per upstream host (requests per second, retries included)."""
    burst: int = default_of("upstream.burst")
    """Token-bucket burst per upstream host."""
    concurrency_per_host: int = default_of("upstream.concurrency_per_host")
    """Requests in flight at once per upstream host."""
    connection_limit: int = 64
    """Connections held open at once by the node, all hosts together."""
    request_timeout: float = default_of("upstream.request_timeout")
    """Seconds for one request, from sending to the last byte of the body."""
    max_retries: int = default_of("upstream.max_retries")
    """Retries of one request after a retryable answer (so at most 1 + max_retries sends)."""
    backoff_base: float = 0.5
    """Seconds of the first back-off ceiling; it doubles at each retry."""
    backoff_max: float = 20.0
    """Largest back-off ceiling in seconds."""
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS
    """Longest Retry-After (seconds) waited out; a longer one fails the call at once."""
    breaker_failures: int = default_of("upstream.breaker_failures")
    """Consecutive failures that open a host's circuit breaker."""
    breaker_cooldown: float = default_of("upstream.breaker_cooldown")
    """Seconds an open breaker refuses everything before letting one probe through."""
    max_response_bytes: int = limits.MAX_UPSTREAM_RESPONSE_BYTES
    """Largest response body read; reading stops as soon as it is exceeded."""

    @classmethod
    def from_config(cls, config: UpstreamConfig, **changes: Any) -> UpstreamHttpConfig:
        """The client configuration of a node's ``[upstream]`` section (checked already)."""
        values = {
            name: getattr(config, key.partition(".")[2]) for name, key in cls.USER_KEYS.items()
        }
        return cls(**{**values, **changes})

    def __post_init__(self) -> None:
        for name, key in self.USER_KEYS.items():
            check_key(key, getattr(self, name), label=f"upstream {name}")
        positive = {
            "backoff_base": self.backoff_base,
            "backoff_max": self.backoff_max,
        }
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"upstream {name} must be a positive number, not {value!r}")
        if not (math.isfinite(self.max_retry_after) and self.max_retry_after >= 0):
            raise ConfigError("upstream max_retry_after must be >= 0")
        at_least_one = {
            "connection_limit": self.connection_limit,
            "max_response_bytes": self.max_response_bytes,
        }
        for name, count in at_least_one.items():
            if count < 1:
                raise ConfigError(f"upstream {name} must be >= 1, not {count!r}")


# --------------------------------------------------------------------------- statistics
class Outcome(enum.StrEnum):
    """How one attempt ended (the label of the per-outcome counters)."""

    OK = "ok"
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    BAD_RESPONSE = "bad_response"
    UNAVAILABLE = "unavailable"
    CIRCUIT_OPEN = "circuit_open"


_OUTCOME_OF: Final[tuple[tuple[type[UpstreamError], Outcome], ...]] = (
    (UpstreamCircuitOpen, Outcome.CIRCUIT_OPEN),
    (UpstreamRefused, Outcome.REFUSED),
    (UpstreamRateLimited, Outcome.RATE_LIMITED),
    (UpstreamTimeout, Outcome.TIMEOUT),
    (UpstreamUnavailable, Outcome.UNAVAILABLE),
)


@dataclass(frozen=True, slots=True)
class HostStatistics:
    """One upstream host, as seen by this node."""

    host: str
    breaker: BreakerState
    """Circuit breaker state."""
    consecutive_failures: int
    breaker_opened: int
    """Times the breaker has opened."""
    requests: int
    """HTTP requests sent to the host."""
    in_flight: int
    peak_in_flight: int
    """Most requests in flight at once to the host."""


@dataclass(frozen=True, slots=True)
class UpstreamHttpStatistics:
    """A snapshot of the client's counters since it was created."""

    requests: int
    """HTTP requests sent (retries included)."""
    retries: int
    """Requests sent again after a retryable answer."""
    ok: int
    refused: int
    rate_limited: int
    """429 answers, plus calls given up because the pace or Retry-After passed the deadline."""
    timeouts: int
    bad_responses: int
    unavailable: int
    """Connection failures (refused, reset, DNS)."""
    circuit_open: int
    """Calls refused by an open breaker: nothing was sent."""
    bytes_received: int
    hosts: tuple[HostStatistics, ...]
    """Per host, sorted by host."""


# --------------------------------------------------------------------------- helpers
def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date.

    ``now`` is the wall-clock time (Unix seconds) the HTTP-date is measured against. Returns
    None for a missing or malformed value; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text[:12]))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class _Named(Protocol):
    @property
    def vendor(self) -> str: ...


def _source_name(source: str | _Named) -> str:
    return source if isinstance(source, str) else str(source.vendor)


@dataclass(frozen=True, slots=True)
class _Call:
    """Who and what one ``request`` is for: everything an error or a log line names."""

    source: str
    dispensary_id: str
    host: str
    path: str

    def error(self, cls: type[UpstreamError], message: str, **extra: Any) -> UpstreamError:
        return cls(
            message, source=self.source, dispensary_id=self.dispensary_id, host=self.host, **extra
        )


@dataclass(frozen=True, slots=True)
class _Failure:
    """An attempt that did not give a body."""

    error: UpstreamError
    retryable: bool
    verdict: BreakerVerdict
    retry_after: float | None = None


class _Host:
    """Per-host state: pace, concurrency cap, breaker, counters."""

    __slots__ = (
        "breaker",
        "in_flight",
        "key",
        "pace",
        "pace_waiters",
        "peak_in_flight",
        "requests",
        "slots",
        "turn",
    )

    def __init__(self, key: str, config: UpstreamHttpConfig, now: float) -> None:
        self.key = key
        self.pace = HostPace(rate=config.requests_per_second, burst=config.burst, now=now)
        self.turn = asyncio.Lock()
        """Held while waiting for a token: requests take tokens in arrival order."""
        self.pace_waiters = 0
        self.slots = asyncio.Semaphore(config.concurrency_per_host)
        self.breaker = CircuitBreaker(
            failure_threshold=config.breaker_failures, cooldown=config.breaker_cooldown
        )
        self.in_flight = 0
        self.peak_in_flight = 0
        self.requests = 0


def _host_key(url: yarl.URL) -> str:
    port = url.port
    host = url.host or ""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return host if port is None or port == default else f"{host}:{port}"


def _backoff(attempt: int, base: float, ceiling: float, rng: random.Random) -> float:
    return rng.uniform(0.0, min(ceiling, base * (2.0**attempt)))


# --------------------------------------------------------------------------- the client
class UpstreamHttp(AsyncClosing):
    """The node's one HTTP client for upstream menu APIs.

    ``request`` returns the raw body of a usable answer or raises an ``UpstreamError``
    (see the module docstring). Create it anywhere; the session is made on first use inside
    the event loop. ``await close()`` when done.
    """

    def __init__(
        self,
        config: UpstreamHttpConfig | None = None,
        *,
        rng: random.Random | None = None,
        breaker_clock: Callable[[], float] | None = None,
    ) -> None:
        """``breaker_clock`` is the time the circuit breakers read (cooldowns), by default
        the running loop's clock; tests pass a hand-driven one."""
        self.config = config or UpstreamHttpConfig()
        self._rng = rng or random.Random()
        self._breaker_clock = breaker_clock
        self._session: aiohttp.ClientSession | None = None
        self._hosts: dict[str, _Host] = {}
        self._closed = False
        self._requests = 0
        self._retries = 0
        self._bytes = 0
        self._outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)

    @classmethod
    def from_config(cls, config: UpstreamConfig) -> UpstreamHttp:
        """A client from the node's ``[upstream]`` configuration section."""
        return cls(UpstreamHttpConfig.from_config(config))

    async def aclose(self) -> None:
        """Close the session and its connections; later requests raise UsageError."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    close = deprecated_alias(aclose, "close")
    """Deprecated name of :meth:`aclose`, kept for a release."""

    @staticmethod
    @contextlib.contextmanager
    def deadline_scope(deadline: float) -> Iterator[None]:
        """Bound every request made in this context (and tasks it creates) by ``deadline``.

        ``deadline`` is an absolute time on the running loop's clock (``loop.time()``). Nested
        scopes keep the earliest deadline. Adapters fetch pages inside such a scope, so they
        need not pass ``deadline=`` themselves.
        """
        outer = _DEADLINE.get()
        token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
        try:
            yield
        finally:
            _DEADLINE.reset(token)

    def statistics(self) -> UpstreamHttpStatistics:
        counts = self._outcomes
        return UpstreamHttpStatistics(
            requests=self._requests,
            retries=self._retries,
            ok=counts[Outcome.OK],
            refused=counts[Outcome.REFUSED],
            rate_limited=counts[Outcome.RATE_LIMITED],
            timeouts=counts[Outcome.TIMEOUT],
            bad_responses=counts[Outcome.BAD_RESPONSE],
            unavailable=counts[Outcome.UNAVAILABLE],
            circuit_open=counts[Outcome.CIRCUIT_OPEN],
            bytes_received=self._bytes,
            hosts=tuple(
                HostStatistics(
                    host=host.key,
                    breaker=host.breaker.state,
                    consecutive_failures=host.breaker.consecutive_failures,
                    breaker_opened=host.breaker.opened,
                    requests=host.requests,
                    in_flight=host.in_flight,
                    peak_in_flight=host.peak_in_flight,
                )
                for _, host in sorted(self._hosts.items())
            ),
        )

    async def get_json_bytes(
        self,
        url: str,
        *,
        source: str | _Named,
        dispensary_id: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> bytes:
        """``request("GET", ...)``: the raw body of a JSON answer."""
        return await self.request(
            "GET",
            url,
            source=source,
            dispensary_id=dispensary_id,
            params=params,
            headers=headers,
            deadline=deadline,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        source: str | _Named,
        dispensary_id: str,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> bytes:
        """Send one request (retrying as the module docstring says); return the raw body.

        ``source`` names the vendor (a string, or anything with a ``vendor`` attribute such as
        a source configuration). ``headers`` are added to the defaults (User-Agent, Accept)
        and never logged. ``deadline`` is an absolute ``loop.time()``; the earliest of it and
        the enclosing ``deadline_scope`` applies.
        """
        if self._closed:
            raise UsageError("the upstream HTTP client is closed")
        parsed = yarl.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UsageError(f"upstream URL must be absolute http(s), not {url[:80]!r}")
        call = _Call(
            source=_source_name(source),
            dispensary_id=dispensary_id,
            host=_host_key(parsed),
            path=parsed.path,
        )
        scoped = _DEADLINE.get()
        if deadline is None or (scoped is not None and scoped < deadline):
            deadline = scoped
        loop = asyncio.get_running_loop()
        host = self._host(call.host, loop.time())
        attempt = 0
        previous: UpstreamError | None = None
        while True:
            try:
                outcome = await self._attempt(
                    host, call, method, parsed, params, json, headers, deadline
                )
            except UpstreamError as exc:
                if previous is None:
                    raise
                raise exc from previous  # e.g. the breaker opened on this call's own failures
            if not isinstance(outcome, _Failure):
                return outcome
            if not outcome.retryable or attempt >= self.config.max_retries:
                raise outcome.error
            remaining = math.inf if deadline is None else deadline - loop.time()
            if outcome.retry_after is not None:
                if outcome.retry_after > min(remaining, self.config.max_retry_after):
                    raise outcome.error
                delay = outcome.retry_after
            else:
                delay = _backoff(
                    attempt, self.config.backoff_base, self.config.backoff_max, self._rng
                )
                if delay >= remaining:
                    raise outcome.error
            attempt += 1
            self._retries += 1
            previous = outcome.error
            LOG.info(
                "%s %s%s: %s; retry %d in %.2f s",
                method,
                call.host,
                call.path,
                outcome.error.message,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ one attempt
    def _host(self, key: str, now: float) -> _Host:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(key, self.config, now)
        return host

    def _breaker_now(self) -> float:
        if self._breaker_clock is not None:
            return self._breaker_clock()
        return asyncio.get_running_loop().time()

    def _count(self, outcome: Outcome) -> None:
        self._outcomes[outcome] += 1

    def _refuse_open(self, call: _Call, admission: Admission) -> UpstreamError:
        self._count(Outcome.CIRCUIT_OPEN)
        if admission.retry_after is None:
            detail = "half-open, its probe request is in flight"
        else:
            detail = f"open for {admission.retry_after:.1f} s more"
        return call.error(
            UpstreamCircuitOpen,
            f"circuit breaker {detail}; request not sent",
            retry_after=admission.retry_after,
        )

    async def _attempt(
        self,
        host: _Host,
        call: _Call,
        method: str,
        url: yarl.URL,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        deadline: float | None,
    ) -> bytes | _Failure:
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() >= deadline:
            self._count(Outcome.TIMEOUT)
            raise call.error(UpstreamTimeout, "menu deadline reached before the request")
        ahead = host.breaker.peek(self._breaker_now())
        if not ahead.allowed:
            raise self._refuse_open(call, ahead)
        await self._acquire_slot(host, call, deadline)
        try:
            await self._wait_turn(host, call, deadline)
            admission = host.breaker.admit(self._breaker_now())
            if not admission.allowed:
                raise self._refuse_open(call, admission)
            result = await self._send(
                host, call, admission, method, url, params, json, headers, deadline
            )
        finally:
            host.slots.release()
        if isinstance(result, _Failure):
            for cls, outcome in _OUTCOME_OF:
                if isinstance(result.error, cls):
                    self._count(outcome)
                    break
            else:
                self._count(Outcome.BAD_RESPONSE)
        else:
            self._count(Outcome.OK)
            self._bytes += len(result)
        return result

    async def _acquire_slot(self, host: _Host, call: _Call, deadline: float | None) -> None:
        if deadline is None:
            await host.slots.acquire()
            return
        try:
            async with asyncio.timeout_at(deadline):
                await host.slots.acquire()
        except TimeoutError as exc:
            self._count(Outcome.TIMEOUT)
            raise call.error(
                UpstreamTimeout, "menu deadline reached waiting for a free request slot"
            ) from exc

    async def _wait_turn(self, host: _Host, call: _Call, deadline: float | None) -> None:
        """Take a token of the host's pace (waiting out any Retry-After pause), in arrival
        order; give up at once when the wait would pass the deadline.

        The token is taken when it is there, right before sending, not booked ahead: a late
        wake-up (a busy loop) then cannot release a burst of booked requests at once.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        estimate = host.pace.delay(now) + host.pace_waiters / self.config.requests_per_second
        if deadline is not None and now + estimate > deadline:
            raise self._paced_out(call, estimate)
        host.pace_waiters += 1
        queued = True
        try:
            if deadline is None:
                await host.turn.acquire()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        await host.turn.acquire()
                except TimeoutError:
                    raise self._paced_out(call, host.pace.delay(loop.time())) from None
            host.pace_waiters -= 1
            queued = False
            try:
                while (wait := host.pace.delay(now := loop.time())) > 0:
                    if deadline is not None and now + wait > deadline:
                        raise self._paced_out(call, wait)
                    await asyncio.sleep(wait)
                host.pace.take(now)
            finally:
                host.turn.release()
        finally:
            if queued:
                host.pace_waiters -= 1

    def _paced_out(self, call: _Call, wait: float) -> UpstreamError:
        self._count(Outcome.RATE_LIMITED)
        return call.error(
            UpstreamRateLimited,
            f"the next request to this host may go in {wait:.2f} s (its pace, or a "
            "Retry-After), past the menu deadline",
            retry_after=wait,
        )

    async def _send(
        self,
        host: _Host,
        call: _Call,
        admission: Admission,
        method: str,
        url: yarl.URL,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        deadline: float | None,
    ) -> bytes | _Failure:
        loop = asyncio.get_running_loop()
        limit = loop.time() + self.config.request_timeout
        deadline_bound = deadline is not None and deadline < limit
        if deadline is not None:
            limit = min(limit, deadline)
        host.in_flight += 1
        host.peak_in_flight = max(host.peak_in_flight, host.in_flight)
        host.requests += 1
        self._requests += 1
        try:
            async with asyncio.timeout_at(limit):
                result = await self._exchange(host, call, method, url, params, json, headers)
        except TimeoutError:
            if deadline_bound:
                result = _Failure(
                    call.error(UpstreamTimeout, "menu deadline reached during the request"),
                    retryable=False,
                    verdict=BreakerVerdict.NONE,
                )
            else:
                result = _Failure(
                    call.error(
                        UpstreamTimeout,
                        f"no complete answer within {self.config.request_timeout:g} s",
                    ),
                    retryable=True,
                    verdict=BreakerVerdict.FAILURE,
                )
        except aiohttp.ClientPayloadError as exc:
            result = _Failure(
                call.error(UpstreamBadResponse, f"the body was cut short ({exc})"),
                retryable=True,
                verdict=BreakerVerdict.FAILURE,
            )
        except aiohttp.ClientConnectionError as exc:
            result = _Failure(
                call.error(UpstreamUnavailable, f"connection failed: {type(exc).__name__} {exc}"),
                retryable=True,
                verdict=BreakerVerdict.FAILURE,
            )
        except aiohttp.ClientResponseError as exc:
            # str(exc) would show the URL and its query string: name the problem only.
            result = _Failure(
                call.error(UpstreamBadResponse, f"malformed HTTP answer: {exc.message}"),
                retryable=False,
                verdict=BreakerVerdict.FAILURE,
            )
        except aiohttp.ClientError as exc:
            result = _Failure(
                call.error(UpstreamBadResponse, f"HTTP client error: {type(exc).__name__}"),
                retryable=False,
                verdict=BreakerVerdict.FAILURE,
            )
        except OSError as exc:
            result = _Failure(
                call.error(UpstreamUnavailable, f"connection failed: {type(exc).__name__}"),
                retryable=True,
                verdict=BreakerVerdict.FAILURE,
            )
        except BaseException:
            host.breaker.abandon(admission)
            raise
        finally:
            host.in_flight -= 1
        verdict = result.verdict if isinstance(result, _Failure) else BreakerVerdict.SUCCESS
        if verdict is BreakerVerdict.SUCCESS:
            host.breaker.success(admission)
        elif verdict is BreakerVerdict.FAILURE:
            host.breaker.failure(admission, self._breaker_now())
        else:
            host.breaker.abandon(admission)
        return result

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.config.connection_limit,
                limit_per_host=self.config.concurrency_per_host,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.config.user_agent, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
                raise_for_status=False,
            )
        return self._session

    async def _exchange(
        self,
        host: _Host,
        call: _Call,
        method: str,
        url: yarl.URL,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> bytes | _Failure:
        """Send once and classify the answer (``whnode.upstream.answers``'s table)."""
        loop = asyncio.get_running_loop()
        cap = self.config.max_response_bytes
        async with self._client().request(
            method,
            url,
            params=params,
            json=json,
            headers=headers,
            allow_redirects=False,
        ) as response:
            status = response.status
            retry_after: float | None = None
            if status in RETRY_AFTER_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                if retry_after is not None:
                    host.pace.pause(loop.time() + retry_after)
            answer = Answer(
                status=status,
                reason=response.reason or "",
                content_type=response.content_type,
                location=response.headers.get("Location", ""),
                retry_after=retry_after,
            )
            rule = classify(answer)
            if rule is not None:
                return self._failure(call, rule, answer)
            declared = response.content_length
            if declared is not None and declared > cap:
                return self._too_large(call, status, declared)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
                size += len(chunk)
                if size > cap:
                    response.close()
                    return self._too_large(call, status, size)
                chunks.append(chunk)
            body = b"".join(chunks)
        answer = replace(answer, body=body)
        rule = classify(answer)
        if rule is not None:
            return self._failure(call, rule, answer)
        return body

    @staticmethod
    def _failure(call: _Call, rule: AnswerRule, answer: Answer) -> _Failure:
        retry_after = answer.retry_after if rule.honours_retry_after else None
        extra: dict[str, Any] = {"status": answer.status}
        if rule.honours_retry_after:
            extra["retry_after"] = retry_after
        return _Failure(
            call.error(rule.error, rule.message(answer), **extra),
            retryable=rule.retryable,
            verdict=rule.breaker,
            retry_after=retry_after,
        )

    def _too_large(self, call: _Call, status: int, size: int) -> _Failure:
        return _Failure(
            call.error(
                UpstreamBadResponse,
                f"body of {size}+ bytes is over the {self.config.max_response_bytes}-byte cap",
                status=status,
            ),
            retryable=False,
            verdict=BreakerVerdict.NONE,
        )
