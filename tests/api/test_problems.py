"""The error → problem mapping: one status and one type per class, generated docs table."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from whnode.api.exceptions import ClientRateLimited, InvalidParameter, NotAcceptable
from whnode.api.problems import (
    ERROR_PROBLEMS,
    HTTP_PROBLEMS,
    INTERNAL_ERROR,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPES,
    describe_problems,
    problem_for,
    problem_response,
)
from whnode.errors import ConfigError, RemoteError, UsageError
from whnode.record.exceptions import BadSignature, ModelError
from whnode.service.exceptions import MenuNotFound, NoOwnerReachable
from whnode.store.exceptions import StoreFull
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamCircuitOpen,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)

D = "weedmaps:x1"


def test_each_class_is_listed_once_and_slugs_are_unique() -> None:
    classes = [cls for cls, _ in ERROR_PROBLEMS]
    assert len(classes) == len(set(classes))
    slugs = [problem_type.slug for problem_type in PROBLEM_TYPES]
    assert len(slugs) == len(set(slugs))
    for problem_type in PROBLEM_TYPES:
        assert 400 <= problem_type.status <= 599
        assert problem_type.uri.startswith("urn:whnode:problem:")


def test_more_specific_classes_come_first() -> None:
    """A listed class never follows one of its own base classes (it would be unreachable)."""
    for index, (cls, _) in enumerate(ERROR_PROBLEMS):
        for earlier, _ in ERROR_PROBLEMS[:index]:
            assert not issubclass(cls, earlier), f"{cls} is shadowed by {earlier}"


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (ModelError("bad id"), 400, "invalid-dispensary-id"),
        (InvalidParameter("max_age", "bad"), 400, "invalid-parameter"),
        (MenuNotFound("none", dispensary_id=D), 404, "menu-not-found"),
        (
            UnknownDispensary("no source", source="weedmaps", dispensary_id=D),
            404,
            "unknown-dispensary",
        ),
        (UpstreamRefused("403", source="weedmaps", dispensary_id=D), 502, "upstream-refused"),
        (
            UpstreamRateLimited("429", source="weedmaps", dispensary_id=D, retry_after=12.2),
            503,
            "upstream-rate-limited",
        ),
        (
            UpstreamCircuitOpen("open", source="weedmaps", dispensary_id=D),
            503,
            "upstream-unavailable",
        ),
        (UpstreamTimeout("slow", source="weedmaps", dispensary_id=D), 504, "upstream-timeout"),
        (NoOwnerReachable("none", dispensary_id=D), 503, "no-owner-reachable"),
        (TimeoutError(), 504, "deadline-exceeded"),
        (BadSignature("bad"), 502, "record-rejected"),
        (StoreFull("disk", operation="put"), 503, "store-unavailable"),
        (RemoteError("something"), 502, "remote-failed"),
        (UsageError("our bug"), 500, "internal-error"),
        (ConfigError("our bug"), 500, "internal-error"),
        (KeyError("x"), 500, "internal-error"),
    ],
)
def test_problem_for(exc: BaseException, status: int, slug: str) -> None:
    problem = problem_for(exc)
    assert problem.status == status
    assert problem.type is not None
    assert problem.type.slug == slug


def test_internal_errors_do_not_leak_details() -> None:
    problem = problem_for(KeyError("/etc/secret-path"))
    assert problem.type is INTERNAL_ERROR
    assert "secret" not in json.dumps(problem.document("/x"))


def test_retry_after_members_and_headers() -> None:
    upstream = problem_for(
        UpstreamRateLimited("429", source="jane", dispensary_id=D, retry_after=12.2)
    )
    assert upstream.headers["Retry-After"] == "13"
    assert upstream.extensions == {"dispensary_id": D, "retry_after": 13}
    unknown_delay = problem_for(UpstreamRateLimited("429", source="jane", dispensary_id=D))
    assert int(unknown_delay.headers["Retry-After"]) > 0
    client = problem_for(ClientRateLimited("slow down", retry_after=0.01))
    assert client.headers["Retry-After"] == "1"
    circuit = problem_for(UpstreamUnavailable("down", source="jane", dispensary_id=D))
    assert "Retry-After" not in circuit.headers


def test_http_errors_keep_their_status_and_allow_header() -> None:
    problem = problem_for(web.HTTPMethodNotAllowed("POST", ["GET", "HEAD"]))
    assert problem.status == 405
    assert problem.type is not None
    assert problem.type.slug == "method-not-allowed"
    assert problem.headers["Allow"] == "GET,HEAD"
    assert problem.extensions["allowed"] == ["GET", "HEAD"]
    teapot = problem_for(web.HTTPRequestRangeNotSatisfiable())
    assert teapot.status == 416
    assert teapot.type_uri == "about:blank"
    assert teapot.title == "Requested Range Not Satisfiable"
    assert {cls for cls, _ in HTTP_PROBLEMS} >= {web.HTTPNotFound, web.HTTPMethodNotAllowed}


def test_problem_response_is_rfc9457() -> None:
    exc = NotAcceptable("no", available=("application/json",))
    response = problem_response(problem_for(exc), instance="/v1/menus/a:b")
    assert response.status == 406
    assert response.content_type == PROBLEM_MEDIA_TYPE
    assert isinstance(response.body, bytes)
    body = json.loads(response.body)
    assert body == {
        "type": "urn:whnode:problem:not-acceptable",
        "title": "Not acceptable",
        "status": 406,
        "detail": "no",
        "instance": "/v1/menus/a:b",
        "available": ["application/json"],
    }


def test_describe_problems_covers_every_type() -> None:
    rows = describe_problems()
    assert [row[0] for row in rows] == [problem_type.uri for problem_type in PROBLEM_TYPES]
    by_uri = {row[0]: row for row in rows}
    assert (
        "whnode.service.exceptions.MenuNotFound" in by_uri["urn:whnode:problem:menu-not-found"][3]
    )
