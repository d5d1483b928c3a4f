"""Treez and Flowhub (keyed POS APIs) over real HTTP against the sandbox: the sandbox checks
the credentials, Treez tokens expire and are renewed, credentials come from configuration or
the environment and never reach a log line, ids are treez:{dispensary} and flowhub:{location}."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import pytest

from tests.sandbox.support import check_generated, upstream
from whnode.config import build_config
from whnode.record.model import Vendor
from whnode.sandbox import LARGE, SMALL, SandboxConfig, run_sandbox
from whnode.testing.clock import ManualClock, eventually
from whnode.upstream.adapters import ADAPTERS
from whnode.upstream.adapters.flowhub import split_size
from whnode.upstream.exceptions import UpstreamRefused
from whnode.upstream.fetcher import Fetcher
from whnode.upstream.http import UpstreamHttp, UpstreamHttpConfig
from whnode.upstream.pool import ParsePool
from whnode.upstream.sources import SourcesConfig

OPEN = UpstreamHttpConfig(requests_per_second=10_000.0, burst=1_000, max_retries=0)
POS = (Vendor.TREEZ, Vendor.FLOWHUB)


@pytest.mark.parametrize("vendor", POS)
async def test_pos_menus_are_exact_over_many_pages(vendor: Vendor) -> None:
    async with upstream(SandboxConfig(change_rate=0.0)) as up:
        dispensary = SMALL[vendor]
        source = dataclasses.replace(up.sources.resolve(dispensary), page_size=7)
        menu, pages = await up.menu(dispensary, source)
        assert len(pages) > 5
        check_generated(menu, up.sandbox.items(dispensary), str(vendor))
        assert dispensary.startswith(f"{vendor}:")


async def test_a_treez_token_is_kept_then_renewed_when_it_expires() -> None:
    dispensary = LARGE[Vendor.TREEZ]
    async with upstream(SandboxConfig(change_rate=0.0)) as up:
        source = up.sources.resolve(dispensary)
        first, pages = await up.menu(dispensary, source)
        assert len(pages) > 2500 // 50  # one product per size
        assert up.sandbox.tokens_issued == 1
        await up.menu(dispensary, source)
        assert up.sandbox.tokens_issued == 1, "a valid token is kept"
        up.sandbox.expire_tokens()
        again, _ = await up.menu(dispensary, source)
        assert up.sandbox.tokens_issued == 2, "one renewal, however many pages were refused"
    assert again == first


async def test_a_token_expiring_mid_walk_is_renewed_once_per_expiry() -> None:
    clock = ManualClock()  # the sandbox's: tokens expire when the test says
    config = SandboxConfig(change_rate=0.0, treez_token_seconds=0.3, latency=0.05)
    dispensary = LARGE[Vendor.TREEZ]
    async with upstream(config, clock=clock) as up:
        source = dataclasses.replace(up.sources.resolve(dispensary), page_concurrency=8)
        walk = asyncio.ensure_future(up.menu(dispensary, source))
        expiries = 0
        while not walk.done():
            # the token of the last expiry has been renewed, and 16 requests went with it
            # (the 8 refused pages retried once, then new pages): it expires now
            def renewed(issued: int = expiries + 1) -> bool:
                return walk.done() or up.sandbox.tokens_issued == issued

            await eventually(renewed)

            def progressed(mark: int = up.sandbox.calls(dispensary) + 16) -> bool:
                return walk.done() or up.sandbox.calls(dispensary) >= mark

            await eventually(progressed)
            if not walk.done():
                clock.advance(0.3)
                expiries += 1
        menu, pages = await walk
        issued = up.sandbox.tokens_issued
    assert expiries >= 2, "the walk outlived its first token"
    assert 2 <= issued <= expiries + 1, "one renewal per expiry, not one per page"
    assert len(pages) > 50
    assert len(menu.products) == 2500


@pytest.mark.parametrize("vendor", POS)
async def test_wrong_or_missing_credentials_are_refusals(vendor: Vendor) -> None:
    async with (
        run_sandbox(SandboxConfig(change_rate=0.0)) as sandbox,
        UpstreamHttp(OPEN) as http,
    ):
        wrong = {vendor: {"client_id": "someone", "api_key": "not-the-key"}}
        for credentials in (wrong, {}):
            source = SourcesConfig.pointing_at(sandbox.base_url, credentials).resolve(SMALL[vendor])
            with pytest.raises(UpstreamRefused) as caught:
                await ADAPTERS[vendor].fetch_pages(http, source, SMALL[vendor])
            assert caught.value.source == str(vendor)
            assert "not-the-key" not in str(caught.value)


async def test_credentials_come_from_the_environment_and_are_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets = SandboxConfig().credentials()
    environ = {
        f"WHNODE_SOURCE_{vendor.upper()}_{key.upper()}": value
        for vendor, keys in secrets.items()
        for key, value in keys.items()
    }
    async with run_sandbox(SandboxConfig(change_rate=0.0)) as sandbox:
        environ["WHNODE_SOURCE_TREEZ_CLIENT_ID"] = secrets[Vendor.TREEZ]["client_id"]
        config = build_config(
            config_file=None, environ=environ, flags={"node.data_dir": "/nonexistent"}
        )
        overrides = [
            dataclasses.replace(o, base_url=sandbox.base_url) for o in config.upstream.sources
        ]
        assert secrets[Vendor.TREEZ]["api_key"] not in repr(config)
        upstream_config = dataclasses.replace(config.upstream, sources=tuple(overrides))
        sources = SourcesConfig.from_config(upstream_config)
        treez = sources.resolve(LARGE[Vendor.TREEZ])
        assert treez.api_key is not None
        assert treez.api_key.reveal() == secrets[Vendor.TREEZ]["api_key"]
        assert secrets[Vendor.TREEZ]["api_key"] not in repr(treez)
        with caplog.at_level(logging.DEBUG):
            async with ParsePool(1, max_tasks_per_child=None) as pool, UpstreamHttp(OPEN) as http:
                fetcher = Fetcher(sources, http, pool)
                for vendor in POS:
                    parsed = await fetcher.fetch(SMALL[vendor], int(time.time() * 1000))
                    assert parsed.product_count > 40
                sandbox.expire_tokens()
                await fetcher.fetch(SMALL[Vendor.TREEZ], int(time.time() * 1000))
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.__dict__!r}" for record in caplog.records
    )
    assert caplog.records, "the fetches logged something at DEBUG"
    for keys in secrets.values():
        assert keys["api_key"] not in logged


@pytest.mark.parametrize(
    ("name", "base", "grams"),
    [
        ("Blue Dream 3.5g", "Blue Dream", 3.5),
        ("Blue Dream - 1/8 oz", "Blue Dream", 3.5),
        ("Wax .5g", "Wax", 0.5),
        ("Lemon Haze 1 gram", "Lemon Haze", 1.0),
        ("Watermelon Gummies 100mg", "Watermelon Gummies 100mg", None),
        ("Minis 0.5g x 5", "Minis 0.5g x 5", None),
        ("Minis 5 x 0.5g", "Minis 5 x 0.5g", None),
        ("Capsules 20pk", "Capsules 20pk", None),
    ],
)
def test_a_flowhub_name_ending_in_a_weight_gives_the_size(
    name: str, base: str, grams: float | None
) -> None:
    found, size = split_size(name)
    assert found == base
    assert (None if size is None else size.amount) == grams
