"""Flattening statistics snapshots into Prometheus samples."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest

from whnode.api.metrics import SnapshotCollector, flatten


@dataclass(frozen=True, slots=True)
class Inner:
    open: bool
    failures: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    requests: int
    ratio: float
    answers_by_path: dict[str, int]
    peer_rejections: dict[str, int]
    hosts: dict[str, Inner]
    breaker: Inner
    name: str
    recent: tuple[int, ...]
    nothing: float


def snapshot() -> Snapshot:
    return Snapshot(
        requests=7,
        ratio=0.5,
        answers_by_path={"hot": 5, "fill": 2},
        peer_rejections={"bad_signature": 1},
        hosts={"api.example": Inner(open=True, failures=3)},
        breaker=Inner(open=False, failures=0),
        name="ignored",
        recent=(1, 2),
        nothing=float("nan"),
    )


def test_flatten_names_labels_and_values() -> None:
    samples = set(flatten("whnode_service", snapshot()))
    assert samples == {
        ("whnode_service_requests", (), 7.0),
        ("whnode_service_ratio", (), 0.5),
        ("whnode_service_answers", (("path", "hot"),), 5.0),
        ("whnode_service_answers", (("path", "fill"),), 2.0),
        ("whnode_service_peer_rejections", (("key", "bad_signature"),), 1.0),
        ("whnode_service_hosts_open", (("key", "api.example"),), 1.0),
        ("whnode_service_hosts_failures", (("key", "api.example"),), 3.0),
        ("whnode_service_breaker_open", (), 0.0),
        ("whnode_service_breaker_failures", (), 0.0),
    }


def test_collector_reads_at_scrape_time_and_survives_failures() -> None:
    state = {"value": 1, "fail": False}

    def sources() -> dict[str, object]:
        if state["fail"]:
            raise AttributeError("node not started")
        return {"service": snapshot(), "dht": Inner(open=True, failures=state["value"])}

    registry = CollectorRegistry()
    registry.register(SnapshotCollector(sources))
    text = generate_latest(registry).decode()
    assert 'whnode_service_answers{path="hot"} 5.0' in text
    assert "whnode_dht_failures 1.0" in text
    state["value"] = 9
    assert "whnode_dht_failures 9.0" in generate_latest(registry).decode()
    state["fail"] = True
    assert generate_latest(registry) == b""
