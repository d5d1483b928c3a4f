"""Every JSON answer of the API conforms to the schema the OpenAPI document gives for it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.schema_check import check
from tests.api.support import DISPENSARY, ApiServer, ContextDouble
from whnode.api.openapi import openapi_document
from whnode.service.exceptions import NoOwnerReachable

DOCUMENT = openapi_document()


def _schema(path: str, status: str, media: str = "application/json") -> dict[str, Any]:
    schema: dict[str, Any] = DOCUMENT["paths"][path]["get"]["responses"][status]["content"][media][
        "schema"
    ]
    return schema


@pytest.mark.parametrize(
    ("template", "url"),
    [
        ("/v1/menus/{dispensary}", f"/v1/menus/{DISPENSARY}"),
        ("/v1/menus/{dispensary}/stats", f"/v1/menus/{DISPENSARY}/stats"),
        ("/v1/menus/{dispensary}/history", f"/v1/menus/{DISPENSARY}/history"),
        ("/v1/dispensaries", "/v1/dispensaries"),
        ("/v1/node", "/v1/node"),
        ("/v1/node/history", "/v1/node/history"),
        ("/healthz", "/healthz"),
        ("/readyz", "/readyz"),
    ],
)
async def test_answers_match_their_schema(
    server: ApiServer, context: ContextDouble, template: str, url: str
) -> None:
    context.samples.append({"time": 1.0, "requests": 1})
    async with server.http.get(url) as response:
        assert response.status == 200
        body = await response.json()
    check(body, _schema(template, "200"), DOCUMENT)


async def test_problems_match_the_problem_schema(server: ApiServer, context: ContextDouble) -> None:
    requests = [
        ("/v1/menus/bad", 400),
        (f"/v1/menus/{DISPENSARY}?max_age=x", 400),
        ("/v1/menus/jane:none", 404),
        (f"/v1/menus/{DISPENSARY}?" + "a" * 3000, 414),
    ]
    for url, status in requests:
        async with server.http.get(url) as response:
            assert response.status == status
            check(
                await response.json(),
                _schema("/v1/menus/{dispensary}", str(status), "application/problem+json"),
                DOCUMENT,
            )
    context.service.error = NoOwnerReachable("down", dispensary_id=DISPENSARY)
    async with server.http.get(f"/v1/menus/{DISPENSARY}") as response:
        assert response.status == 503
        check(
            await response.json(),
            _schema("/v1/menus/{dispensary}", "503", "application/problem+json"),
            DOCUMENT,
        )


def test_the_checker_rejects_drift() -> None:
    with pytest.raises(AssertionError, match="undocumented"):
        check({"status": "ok", "extra": 1}, {"$ref": "#/components/schemas/Status"}, DOCUMENT)
    with pytest.raises(AssertionError, match="missing"):
        check({}, {"$ref": "#/components/schemas/Dispensaries"}, DOCUMENT)
