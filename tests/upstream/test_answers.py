"""The answer table (whnode.upstream.answers), row by row: status, headers and body in, the
outcome out. tests/upstream/test_http.py sends the same answers over real HTTP."""

from __future__ import annotations

import pytest

from whnode.upstream.answers import ANSWER_RULES, Answer, BreakerVerdict, classify
from whnode.upstream.exceptions import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamUnavailable,
)

FAILURE = BreakerVerdict.FAILURE
SUCCESS = BreakerVerdict.SUCCESS
JSON = b'{"products": []}'

# answer -> (error, retryable, breaker, message); None: a usable body (or, without a body:
# read it)
TABLE: list[tuple[Answer, tuple[type[UpstreamError], bool, BreakerVerdict, str] | None]] = [
    (Answer(200, body=JSON), None),
    (Answer(200), None),
    (Answer(204, body=b'{"x": 1}'), None),
    (
        Answer(429, retry_after=7.0),
        (UpstreamRateLimited, True, FAILURE, "HTTP 429 Too Many Requests; Retry-After 7 s"),
    ),
    (Answer(429), (UpstreamRateLimited, True, FAILURE, "HTTP 429 Too Many Requests")),
    (
        Answer(403, reason="Forbidden"),
        (
            UpstreamRefused,
            False,
            FAILURE,
            "HTTP 403 Forbidden: the upstream refused the request (blocked, or credentials "
            "missing or wrong)",
        ),
    ),
    (Answer(401), (UpstreamRefused, False, FAILURE, "HTTP 401 : the upstream refused")),
    (Answer(406), (UpstreamRefused, False, FAILURE, "HTTP 406")),
    (Answer(451), (UpstreamRefused, False, FAILURE, "HTTP 451")),
    (
        Answer(503, retry_after=2.5),
        (UpstreamUnavailable, True, FAILURE, "HTTP 503 Service Unavailable; Retry-After 2.5 s"),
    ),
    (Answer(503), (UpstreamBadResponse, True, FAILURE, "HTTP 503")),
    (Answer(500), (UpstreamBadResponse, True, FAILURE, "HTTP 500")),
    (Answer(599, body=JSON), (UpstreamBadResponse, True, FAILURE, "HTTP 599")),
    (
        Answer(302, location="https://consent.example.com/ask?x=1"),
        (
            UpstreamBadResponse,
            False,
            SUCCESS,
            "HTTP 302 redirect to consent.example.com (redirects are not followed)",
        ),
    ),
    (Answer(301), (UpstreamBadResponse, False, SUCCESS, "redirect to elsewhere")),
    (Answer(404), (UpstreamBadResponse, False, SUCCESS, "HTTP 404")),
    (Answer(400), (UpstreamBadResponse, False, SUCCESS, "HTTP 400")),
    (Answer(101), (UpstreamBadResponse, False, SUCCESS, "HTTP 101")),
    (
        Answer(200, content_type="text/html"),
        (UpstreamRefused, False, FAILURE, "an HTML page (text/html) instead of JSON"),
    ),
    (
        Answer(200, content_type="application/xhtml+xml"),
        (UpstreamRefused, False, FAILURE, "application/xhtml+xml"),
    ),
    # a 404 HTML page is a client error first
    (Answer(404, content_type="text/html"), (UpstreamBadResponse, False, SUCCESS, "HTTP 404")),
    (Answer(200, body=b""), (UpstreamBadResponse, True, FAILURE, "HTTP 200 with an empty body")),
    (Answer(200, body=b" \r\n\t"), (UpstreamBadResponse, True, FAILURE, "empty body")),
    (
        Answer(200, body=b"\xef\xbb\xbf  <!doctype html><title>Just a moment</title>"),
        (UpstreamRefused, False, FAILURE, "an HTML page instead of JSON"),
    ),
    (Answer(200, body=b"<html>"), (UpstreamRefused, False, FAILURE, "HTML page")),
    (Answer(200, content_type="text/plain", body=b"[1]"), None),
]


@pytest.mark.parametrize(("answer", "expected"), TABLE)
def test_each_answer_has_one_outcome(
    answer: Answer, expected: tuple[type[UpstreamError], bool, BreakerVerdict, str] | None
) -> None:
    rule = classify(answer)
    if expected is None:
        assert rule is None
        return
    assert rule is not None
    error, retryable, breaker, message = expected
    assert (rule.error, rule.retryable, rule.breaker) == (error, retryable, breaker)
    assert message in rule.message(answer)
    # a Retry-After is carried by a 429, and by a 503 that has one
    carries = answer.status == 429 or (answer.status == 503 and answer.retry_after is not None)
    assert rule.honours_retry_after == carries


def test_every_rule_is_reached_by_some_answer() -> None:
    reached = {rule.name for answer, _ in TABLE if (rule := classify(answer)) is not None}
    assert reached == {rule.name for rule in ANSWER_RULES}


def test_the_body_is_judged_only_once_read() -> None:
    """Before the body is read, a 2xx JSON answer matches no rule (read the body); the body
    rules then decide."""
    head = Answer(200)
    assert classify(head) is None
    for body in (b"", b"<html>"):
        assert classify(Answer(200, body=body)) is not None
