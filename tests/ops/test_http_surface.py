"""CORS preflight through real HTTP: OPTIONS on a /v1/ route is answered, not refused."""

from __future__ import annotations

from tests.api.support import DISPENSARY, ApiServer, ContextDouble


async def test_cors_preflight_is_answered_and_other_options_say_allow() -> None:
    async with ApiServer(ContextDouble()) as server:
        preflight = {
            "Origin": "https://menus.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        }
        async with server.http.options(f"/v1/menus/{DISPENSARY}", headers=preflight) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert response.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
            assert "If-None-Match" in response.headers["Access-Control-Allow-Headers"]
            assert int(response.headers["Access-Control-Max-Age"]) > 0
        async with server.http.options("/healthz") as response:
            assert response.status == 204
            assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
            assert "Access-Control-Allow-Origin" not in response.headers
        async with server.http.options("/nowhere") as response:
            assert response.status == 404
            assert response.content_type == "application/problem+json"
        async with server.http.get("/metrics") as response:
            text = await response.text()
    assert 'whnode_http_requests_total{method="OPTIONS",route="unmatched",status="204"} 2.0' in text
