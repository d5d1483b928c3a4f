"""What one upstream HTTP answer means: the classification table.

Every rule that turns an answer (status, headers, body) into an outcome lives in
``ANSWER_RULES``, read top to bottom; the first rule that matches decides. An answer no rule
matches is a usable body. The table is pure: ``UpstreamHttp`` reads the status line and
headers, asks ``classify`` (a refusal or an error needs no body), reads the body under its
size cap, and asks again with the body. The retries and the circuit breaker then follow the
rule's ``retryable`` and ``breaker`` columns (the table in ``whnode.upstream.http``'s
docstring shows them with the transport failures, which need no table: each exception type
has one outcome).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import yarl

from whnode.upstream.exceptions import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamUnavailable,
)

__all__ = [
    "ANSWER_RULES",
    "HTML_CONTENT_TYPES",
    "REFUSAL_STATUSES",
    "RETRY_AFTER_STATUSES",
    "Answer",
    "AnswerRule",
    "BreakerVerdict",
    "classify",
    "looks_like_html",
]

REFUSAL_STATUSES: Final = frozenset({401, 403, 406, 451})
"""Statuses that mean "not you, not this way": never retried in a loop."""
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
"""Statuses whose Retry-After header is honoured."""
HTML_CONTENT_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
"""Content types of a block or challenge page."""


class BreakerVerdict(enum.Enum):
    """What an attempt tells the host's circuit breaker."""

    SUCCESS = "success"
    """The host works (even if this answer is not usable: a 404 is the caller's problem)."""
    FAILURE = "failure"
    """The host fails or refuses us: counts towards opening the breaker."""
    NONE = "none"
    """Says nothing about the host (our own deadline or size cap ended the attempt)."""


def looks_like_html(body: bytes) -> bool:
    """Whether ``body`` starts (after a BOM and blanks) like an HTML page."""
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


@dataclass(frozen=True, slots=True)
class Answer:
    """One upstream answer, as far as it has been read."""

    status: int
    reason: str = ""
    content_type: str = "application/json"
    location: str = ""
    """The Location header ("" when absent)."""
    retry_after: float | None = None
    """Seconds from the Retry-After header of a 429 or 503 (None when absent or malformed)."""
    body: bytes | None = None
    """None until the body is read (the status line and headers decide first)."""


@dataclass(frozen=True, slots=True)
class AnswerRule:
    """One row of the table: when it matches, the error it raises and how it counts."""

    name: str
    matches: Callable[[Answer], bool]
    error: type[UpstreamError]
    message: Callable[[Answer], str]
    retryable: bool
    breaker: BreakerVerdict
    honours_retry_after: bool = False
    """The error (and the retry) carries the answer's Retry-After."""


def _wait(answer: Answer) -> str:
    return "" if answer.retry_after is None else f"; Retry-After {answer.retry_after:g} s"


def _redirect_target(answer: Answer) -> str:
    return yarl.URL(answer.location).host or "elsewhere"


_FAILURE: Final = BreakerVerdict.FAILURE
_SUCCESS: Final = BreakerVerdict.SUCCESS

ANSWER_RULES: Final[tuple[AnswerRule, ...]] = (
    AnswerRule(
        "rate limited",
        lambda answer: answer.status == 429,
        UpstreamRateLimited,
        lambda answer: f"HTTP 429 Too Many Requests{_wait(answer)}",
        retryable=True,
        breaker=_FAILURE,
        honours_retry_after=True,
    ),
    AnswerRule(
        "refused",
        lambda answer: answer.status in REFUSAL_STATUSES,
        UpstreamRefused,
        lambda answer: (
            f"HTTP {answer.status} {answer.reason}: the upstream refused the request "
            "(blocked, or credentials missing or wrong)"
        ),
        retryable=False,
        breaker=_FAILURE,
    ),
    AnswerRule(
        "unavailable for a while",
        lambda answer: answer.status == 503 and answer.retry_after is not None,
        UpstreamUnavailable,
        lambda answer: f"HTTP 503 Service Unavailable{_wait(answer)}",
        retryable=True,
        breaker=_FAILURE,
        honours_retry_after=True,
    ),
    AnswerRule(
        "server error",
        lambda answer: answer.status >= 500,
        UpstreamBadResponse,
        lambda answer: f"HTTP {answer.status}",
        retryable=True,
        breaker=_FAILURE,
    ),
    AnswerRule(
        "redirect",
        lambda answer: 300 <= answer.status < 400,
        UpstreamBadResponse,
        lambda answer: (
            f"HTTP {answer.status} redirect to {_redirect_target(answer)} "
            "(redirects are not followed)"
        ),
        retryable=False,
        breaker=_SUCCESS,
    ),
    AnswerRule(
        "client error",
        lambda answer: not 200 <= answer.status < 300,
        UpstreamBadResponse,
        lambda answer: f"HTTP {answer.status}",
        retryable=False,
        breaker=_SUCCESS,
    ),
    AnswerRule(
        "HTML content type",
        lambda answer: answer.content_type in HTML_CONTENT_TYPES,
        UpstreamRefused,
        lambda answer: (
            f"an HTML page ({answer.content_type}) instead of JSON: a block or challenge page"
        ),
        retryable=False,
        breaker=_FAILURE,
    ),
    AnswerRule(
        "empty body",
        lambda answer: answer.body is not None and not answer.body.strip(),
        UpstreamBadResponse,
        lambda answer: f"HTTP {answer.status} with an empty body",
        retryable=True,
        breaker=_FAILURE,
    ),
    AnswerRule(
        "HTML body",
        lambda answer: answer.body is not None and looks_like_html(answer.body),
        UpstreamRefused,
        lambda answer: "an HTML page instead of JSON: a block or challenge page",
        retryable=False,
        breaker=_FAILURE,
    ),
)
"""The answer table, first match wins (see the module docstring)."""


def classify(answer: Answer) -> AnswerRule | None:
    """The first rule of ``ANSWER_RULES`` that ``answer`` matches; None when it matches none
    (before the body is read: read it; after: the body is usable)."""
    for rule in ANSWER_RULES:
        if rule.matches(answer):
            return rule
    return None
