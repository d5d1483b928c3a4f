"""Test support for the API and client tests: real records, a service double, a context.

Records are real: real menus encoded by whnode.record.codec and signed with real Ed25519 keys.
``ServiceDouble`` stands in for whnode.service.core.MenuService (the read-through policy is
tested in tests/service and against real nodes in tests/api/test_node_integration.py): it
answers from records it was given, or raises the error it was told to, and records calls.
``ApiServer`` runs the real public API on a real aiohttp server on 127.0.0.1, port 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from whnode.api.app import add_public_routes
from whnode.api.server import ConnectionLimits, GuardedSite, http_runner, ingress_of
from whnode.config import ApiConfig, Config
from whnode.record.codec import content_hash, encode_menu
from whnode.record.keys import SigningKey
from whnode.record.model import (
    Category,
    CategoryStatistics,
    DispensaryId,
    Lineage,
    Menu,
    MenuStatistics,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
)
from whnode.record.signed import SignedRecord, sign_record
from whnode.service.events import SnapshotEvents
from whnode.service.exceptions import MenuNotFound
from whnode.service.types import AnswerPath, MenuAnswer, RecentFill, ServiceStatistics
from whnode.store.hot import HotCache
from whnode.store.types import StoredRecord

DISPENSARY = "weedmaps:ultra-health-gallup"
OTHER = "dutchie:green-leaf"
T0 = 1_700_000_000_000


def make_menu(
    dispensary_id: str = DISPENSARY,
    *,
    fetched_at_ms: int = T0,
    products: int = 3,
    name: str = "Ultra Health Gallup",
    price_shift: int = 0,
) -> Menu:
    """A real, valid menu with ``products`` products and statistics."""
    items = tuple(
        Product(
            source_id=f"p-{index}",
            name=f"Product {index} <b>&amp;</b> ünïcode",
            category=Category.FLOWER if index % 2 == 0 else Category.EDIBLE,
            price_options=(
                PriceOption(
                    quantity=Quantity(3.5, QuantityUnit.GRAMS),
                    price_cents=2500 + index + price_shift,
                    special_price_cents=2000 if index == 0 else None,
                    stock=7 if index == 1 else None,
                ),
            ),
            brand="Brand" if index % 3 else None,
            lineage=Lineage.HYBRID,
            thc=Potency(18.5, 22.0, PotencyUnit.PERCENT) if index % 2 == 0 else None,
            cbd=None,
            image_url="https://images.example/p.png" if index == 0 else None,
            description="A description" if index == 0 else None,
        )
        for index in range(products)
    )
    histogram = [0] * 20
    histogram[4] = (products + 1) // 2
    statistics = MenuStatistics(
        categories=(
            CategoryStatistics(
                category=Category.FLOWER,
                product_count=(products + 1) // 2,
                price_per_gram_min=714.3,
                price_per_gram_median=720.0,
                price_per_gram_max=730.0,
            ),
            CategoryStatistics(category=Category.EDIBLE, product_count=products // 2),
        ),
        thc_percent_histogram=tuple(histogram),
    )
    vendor = Vendor(dispensary_id.split(":", 1)[0])
    return Menu(
        dispensary_id=DispensaryId(dispensary_id),
        name=name,
        vendor=vendor,
        fetched_at_ms=fetched_at_ms,
        products=items,
        statistics=statistics,
    )


def make_record(menu: Menu, key: SigningKey) -> SignedRecord:
    """Sign ``menu`` with ``key`` as an owner would after a fill."""
    return sign_record(
        payload=encode_menu(menu),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=key,
    )


@dataclass
class ServiceDouble:
    """A double of MenuService (see the module docstring)."""

    records: dict[str, list[SignedRecord]] = field(default_factory=dict)
    path: AnswerPath = AnswerPath.HOT
    fresh_for_ms: int = 300_000
    stale: bool = False
    error: BaseException | None = None
    delay: float = 0.0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: SnapshotEvents = field(default_factory=SnapshotEvents)

    def add(self, record: SignedRecord) -> None:
        self.records.setdefault(record.dispensary_id, []).append(record)
        self.records[record.dispensary_id].sort(key=lambda r: r.fetched_at_ms, reverse=True)

    def answer_hot(self, dispensary_id: str, max_age: float | None = None) -> MenuAnswer | None:
        """The double has no hot cache: every request goes on to get_menu (recorded)."""
        del dispensary_id, max_age
        return None

    async def get_menu(
        self, dispensary_id: str, *, max_age: float | None = None, at_ms: int | None = None
    ) -> MenuAnswer:
        self.calls.append(
            ("get_menu", {"dispensary_id": dispensary_id, "max_age": max_age, "at_ms": at_ms})
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        held = self.records.get(dispensary_id, [])
        if at_ms is not None:
            held = [record for record in held if record.fetched_at_ms <= at_ms]
        if not held:
            raise MenuNotFound(f"no snapshot of {dispensary_id}", dispensary_id=dispensary_id)
        record = held[0]
        return MenuAnswer(
            record=record,
            path=AnswerPath.STALE if self.stale else self.path,
            fresh_until_ms=int(time.time() * 1000) + self.fresh_for_ms,
            stale=self.stale,
        )

    async def history(self, dispensary_id: str, limit: int) -> list[SignedRecord]:
        self.calls.append(("history", {"dispensary_id": dispensary_id, "limit": limit}))
        if self.error is not None:
            raise self.error
        return self.records.get(dispensary_id, [])[:limit]

    def statistics(self) -> ServiceStatistics:
        gets = [call for call in self.calls if call[0] == "get_menu"]
        return ServiceStatistics(
            requests=len(gets),
            answers_by_path={self.path.value: len(gets)},
            upstream_calls=1,
            upstream_calls_saved=max(0, len(gets) - 1),
            fills_coalesced=0,
            peer_rejections={"bad_signature": 2},
            errors_by_kind={},
            recent_fills=(
                RecentFill(
                    dispensary_id=DISPENSARY,
                    fetched_at_ms=T0,
                    duration_ms=812.5,
                    product_count=3,
                    changed=True,
                ),
            ),
        )


class ContextDouble:
    """An ApiContext built from real parts (config, hot cache) and a ServiceDouble."""

    def __init__(
        self,
        service: ServiceDouble | None = None,
        *,
        config: Config | None = None,
        node_id: str = "ab" * 20,
    ) -> None:
        self.config = config or Config(api=ApiConfig(requests_per_second=10_000.0, burst=10_000))
        self.service = service or ServiceDouble()
        self.hot = HotCache(8 * 1024 * 1024)
        self.is_healthy = True
        self.is_ready = True
        self.node_id = node_id
        self.samples: list[dict[str, Any]] = []
        self.dispensaries = [DISPENSARY, OTHER]
        self.started = time.time()

    def remember(self, record: SignedRecord) -> None:
        self.hot.put(
            StoredRecord(
                dispensary_id=record.dispensary_id,
                fetched_at_ms=record.fetched_at_ms,
                content_hash=bytes(record.content_hash),
                data=record.encoded,
            )
        )
        self.hot.newest(record.dispensary_id)

    def node_info(self) -> Mapping[str, Any]:
        stats = self.service.statistics()
        return {
            "node_id": self.node_id,
            "public_key": "cd" * 32,
            "address": "127.0.0.1:8468",
            "uptime_seconds": round(time.time() - self.started, 1),
            "routing_only": False,
            "peers": [
                {"node_id": f"{index:02x}" * 20, "host": "127.0.0.1", "port": 9000 + index}
                for index in range(3)
            ],
            "hot_cache": dataclasses.asdict(self.hot.statistics()),
            "store": {"bytes": 5_242_880, "records": 42, "dispensaries": 7, "max_bytes": 2**31},
            "service": {
                "requests": stats.requests,
                "answers_by_path": stats.answers_by_path,
                "upstream_calls": stats.upstream_calls,
                "upstream_calls_saved": stats.upstream_calls_saved,
                "fills_coalesced": stats.fills_coalesced,
                "peer_rejections": stats.peer_rejections,
                "errors_by_kind": stats.errors_by_kind,
                "recent_fills": [dataclasses.asdict(fill) for fill in stats.recent_fills],
            },
        }

    def healthy(self) -> bool:
        return self.is_healthy

    def ready(self) -> bool:
        return self.is_ready

    def statistics(self) -> Mapping[str, object]:
        return {"service": self.service.statistics(), "hot_cache": self.hot.statistics()}

    def known_dispensaries(self) -> Sequence[str]:
        return self.dispensaries

    def history_samples(self) -> Sequence[Mapping[str, Any]]:
        return self.samples


class ApiServer:
    """The public API of ``context`` on a real aiohttp server (127.0.0.1, port 0)."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.app = web.Application()
        add_public_routes(self.app, context)
        self.runner = http_runner(self.app, ConnectionLimits())
        self.url = ""
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        await self.runner.setup()
        site = GuardedSite(
            self.runner, "127.0.0.1", 0, limits=ConnectionLimits(), ingress=ingress_of(self.app)
        )
        await site.start()
        port = site.port
        self.url = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession(base_url=self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.session is not None:
            await self.session.close()
        await self.runner.cleanup()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session


def now_ms() -> int:
    return int(time.time() * 1000)
