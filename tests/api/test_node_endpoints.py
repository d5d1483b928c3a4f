"""/v1/node, /v1/node/history, /v1/dispensaries, /healthz, /readyz, /metrics."""

from __future__ import annotations

from tests.api.support import DISPENSARY, OTHER, ApiServer, ContextDouble


async def test_node_info_history_and_dispensaries(
    server: ApiServer, context: ContextDouble
) -> None:
    context.samples.append({"time": 1.0, "requests": 3, "peers": 2})
    async with server.http.get("/v1/node") as response:
        assert response.status == 200
        info = await response.json()
    assert info["node_id"] == context.node_id
    assert len(info["peers"]) == 3
    async with server.http.get("/v1/node/history") as response:
        assert (await response.json()) == {"samples": [{"time": 1.0, "requests": 3, "peers": 2}]}
    async with server.http.get("/v1/dispensaries") as response:
        assert (await response.json()) == {"dispensaries": sorted([DISPENSARY, OTHER])}
        assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_healthz_follows_healthy_and_readyz_follows_ready(
    server: ApiServer, context: ContextDouble
) -> None:
    async with server.http.get("/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with server.http.get("/readyz") as response:
        assert response.status == 200
    context.is_healthy = False
    async with server.http.get("/healthz") as response:
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert (await response.json())["type"] == "urn:whnode:problem:node-not-ready"
    async with server.http.get("/readyz") as response:
        assert response.status == 200
    context.is_ready = False
    async with server.http.get("/readyz") as response:
        assert response.status == 503
    context.is_healthy = context.is_ready = True
    async with server.http.get("/healthz") as response:
        assert response.status == 200


async def test_metrics_read_snapshots_at_scrape_time(
    server: ApiServer, context: ContextDouble
) -> None:
    for _ in range(3):
        async with server.http.get(f"/v1/menus/{DISPENSARY}") as response:
            assert response.status == 200
    async with server.http.get("/nowhere") as response:
        assert response.status == 404
    async with server.http.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert (
        'whnode_http_requests_total{method="GET",route="/v1/menus/{dispensary}",status="200"} 3.0'
        in text
    )
    assert 'whnode_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'whnode_http_problems_total{type="not-found"} 1.0' in text
    assert (
        'whnode_http_request_duration_seconds_count{answer_path="hot",'
        'route="/v1/menus/{dispensary}"} 3.0' in text
    )
    assert 'whnode_service_answers_total{path="hot"} 3.0' in text
    assert "whnode_service_upstream_calls_saved_total 2.0" in text
    assert 'whnode_service_peer_rejections_total{reason="bad_signature"} 2.0' in text
    assert "whnode_hot_cache_max_bytes 8.388608e+06" in text
    assert "whnode_api_render_cache_hits_total 2.0" in text
    assert "whnode_node_healthy 1.0" in text
    context.is_ready = False
    async with server.http.get("/metrics") as response:
        assert "whnode_node_ready 0.0" in await response.text()
