"""Quiet logs for what HTTP clients control: malformed requests are counted, not shouted.

aiohttp's server logs every request its parser rejects (an over-long request line, too many
headers, broken chunked framing, a TLS handshake sent to the plain port) at ERROR with a
traceback: any remote client could fill a volunteer's disk that way. ``HttpIngress`` is the
logger the node hands to aiohttp instead (``logger=`` of the runner). It tells the client's
faults from the server's own:

- an ``HttpProcessingError`` (the parser refused the request), a ``RequestPayloadError`` or a
  ``ConnectionError`` is counted by kind (``malformed_by_kind``, exported as
  ``whnode_http_ingress_malformed_total{kind=...}``), logged at DEBUG with no traceback, and
  summed up in at most one WARNING per ``summary_interval`` seconds ("N malformed HTTP
  requests in the last 60 s: line_too_long=3, bad_chunking=2");
- anything else is a server fault and is logged at ERROR with its traceback, as before.

The same object counts the connections the connection guard (``whnode.api.server``) closed
or refused, so one statistics snapshot (``http_ingress`` in the node's statistics) holds the
whole story of the HTTP edge.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import http_exceptions
from aiohttp.web_protocol import RequestPayloadError

__all__ = ["HttpIngress", "IngressStatistics", "malformed_kind"]

LOG = logging.getLogger(__name__)

PENALTY_REFUSALS: Final = 1000
"""Requests refused for their rate within one second after which a client is penalized."""
PENALTY_SECONDS: Final = 10.0
"""How long a penalized client's connections are refused."""
SUMMARY_INTERVAL: Final = 60.0
"""Seconds between two WARNING summaries of malformed requests (at most one per window)."""

_KINDS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (http_exceptions.LineTooLong, "line_too_long"),
    (http_exceptions.BadHttpMethod, "bad_method"),
    (http_exceptions.BadStatusLine, "bad_request_line"),
    (http_exceptions.InvalidHeader, "bad_header"),
    (http_exceptions.InvalidURLError, "bad_url"),
    (http_exceptions.TransferEncodingError, "bad_chunking"),
    (http_exceptions.ContentLengthError, "bad_length"),
    (http_exceptions.ContentEncodingError, "bad_encoding"),
    (http_exceptions.DecompressSizeError, "bad_encoding"),
    (RequestPayloadError, "bad_body"),
    (ConnectionError, "client_disconnect"),
)


def malformed_kind(exc: BaseException | None) -> str | None:
    """The metric kind of a client-caused error, or None for a server fault."""
    if exc is None:
        return None
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    if isinstance(exc, http_exceptions.HttpProcessingError):
        text = str(exc).lower()
        if "too many headers" in text or "too many trailers" in text:
            return "too_many_headers"
        if "chunk" in text:
            return "bad_chunking"
        return "bad_message"
    return None


@dataclass(frozen=True, slots=True)
class IngressStatistics:
    """A frozen snapshot of what the HTTP edge refused."""

    malformed_by_kind: dict[str, int]
    """Requests refused by the HTTP parser or broken off by the client, by kind."""
    connections_by_event: dict[str, int]
    """Connections closed or refused by the connection guard, by reason
    (header_timeout, shed_idle, refused_total, refused_per_ip)."""
    open_connections: int
    server_errors: int
    """Errors aiohttp reported that were not the client's (each logged at ERROR)."""


class HttpIngress(logging.Logger):
    """The logger handed to aiohttp's server, and the counters of the HTTP edge."""

    def __init__(
        self,
        name: str = "whnode.api.ingress",
        *,
        summary_interval: float = SUMMARY_INTERVAL,
        clock: Any = time.monotonic,
    ) -> None:
        super().__init__(name)
        # not registered with logging's manager: propagate through the package's logger
        self.parent = logging.getLogger("whnode.api")
        self.malformed: Counter[str] = Counter()
        self.connection_events: Counter[str] = Counter()
        self.open_connections = 0
        self.server_errors = 0
        self._summary_interval = summary_interval
        self._clock = clock
        self._window_start = clock()
        self._window: Counter[str] = Counter()
        self._refusals: Counter[str] = Counter()
        self._refusal_window = clock()
        self.penalized: dict[str, float] = {}
        """Client keys whose connections are refused until the given monotonic time."""
        self.penalty_threshold = PENALTY_REFUSALS
        self.penalty_seconds = PENALTY_SECONDS
        self.on_penalty: list[Any] = []
        """Callables(key) run when a client is penalized (the guard closes its connections)."""

    def note_refusal(self, key: str) -> None:
        """A request of client ``key`` was refused for its rate. A client refused
        ``penalty_threshold`` times within one second is flooding: its open connections are
        closed and new ones refused for ``penalty_seconds`` (a 429 costs the node as much as
        an answer; a refused connection costs it almost nothing)."""
        now = self._clock()
        if now - self._refusal_window >= 1.0:
            self._refusal_window = now
            self._refusals.clear()
        self._refusals[key] += 1
        if self._refusals[key] < self.penalty_threshold:
            return
        del self._refusals[key]
        self.penalized[key] = now + self.penalty_seconds
        self.count_connection("penalized")
        LOG.warning(
            "HTTP client %s floods (%d requests refused within 1 s): its connections are"
            " refused for %.0f s",
            key,
            self.penalty_threshold,
            self.penalty_seconds,
        )
        for callback in self.on_penalty:
            callback(key)

    def now(self) -> float:
        return float(self._clock())

    def is_penalized(self, key: str) -> bool:
        until = self.penalized.get(key)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self.penalized[key]
        return False

    def count(self, kind: str) -> None:
        """Count one malformed request (or broken-off body) of ``kind``."""
        self._maybe_summarize()
        self.malformed[kind] += 1
        self._window[kind] += 1

    def count_connection(self, event: str) -> None:
        self._maybe_summarize()
        self.connection_events[event] += 1
        self._window[f"connection_{event}"] += 1

    def _maybe_summarize(self) -> None:
        now = self._clock()
        if now - self._window_start < self._summary_interval:
            return
        self.flush_summary(now)

    def flush_summary(self, now: float | None = None) -> None:
        """Log the WARNING summary of the current window (if anything happened) and reset."""
        now = self._clock() if now is None else now
        if self._window:
            seconds = max(1.0, now - self._window_start)
            parts = ", ".join(f"{kind}={n}" for kind, n in sorted(self._window.items()))
            super().log(
                logging.WARNING,
                "HTTP clients: %d malformed or refused in the last %.0f s (%s)",
                sum(self._window.values()),
                seconds,
                parts,
            )
            self._window.clear()
        self._window_start = now

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        # aiohttp reports a bad method at DEBUG: counted even when DEBUG is off
        if kwargs.get("exc_info") is not None or self.isEnabledFor(logging.DEBUG):
            self._log(logging.DEBUG, msg, args, **kwargs)

    def _log(
        self,
        level: int,
        msg: object,
        args: Any,
        exc_info: Any = None,
        extra: Any = None,
        stack_info: bool = False,
        stacklevel: int = 1,
    ) -> None:
        exc = _exception_of(exc_info)
        kind = malformed_kind(exc)
        if kind is not None:  # at whatever level aiohttp chose (DEBUG for a bad method)
            self.count(kind)
            if self.isEnabledFor(logging.DEBUG):
                text = str(msg) % args if args else str(msg)
                detail = " ".join(str(exc).split())[:200]
                super()._log(logging.DEBUG, "%s (%s: %s)", (text, kind, detail))
            return
        if not self.isEnabledFor(level):
            return
        if level >= logging.ERROR:
            self.server_errors += 1
        super()._log(level, msg, args, exc_info, extra, stack_info, stacklevel)

    def statistics(self) -> IngressStatistics:
        return IngressStatistics(
            malformed_by_kind=dict(self.malformed),
            connections_by_event=dict(self.connection_events),
            open_connections=self.open_connections,
            server_errors=self.server_errors,
        )


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        value = exc_info[1]
        return value if isinstance(value, BaseException) else None
    if exc_info is True:
        import sys

        return sys.exc_info()[1]
    return None
