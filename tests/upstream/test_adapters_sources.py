"""Source configuration: real defaults, operator overrides, masked credentials, resolution."""

from __future__ import annotations

import pickle

import pytest

from whnode.config import SourceOverride, UpstreamConfig
from whnode.errors import ConfigError
from whnode.record.exceptions import ModelError
from whnode.record.model import Vendor
from whnode.upstream.adapters import ADAPTERS, dutchie
from whnode.upstream.exceptions import UnknownDispensary
from whnode.upstream.sources import (
    DEFAULT_DUTCHIE_QUERY_HASH,
    Secret,
    SourceConfig,
    SourcesConfig,
    WeedmapsApi,
)


def test_defaults_are_the_real_apis() -> None:
    sources = SourcesConfig.default()
    assert {str(v): s.base_url for v, s in sources.sources.items()} == {
        "dutchie": "https://dutchie.com/graphql",
        "jane": "https://search.iheartjane.com",
        "weedmaps": "https://api-g.weedmaps.com",
        "leafly": "https://consumer-api.leafly.com",
        "treez": "https://api.treez.io",
        "flowhub": "https://api.flowhub.co",
    }
    assert set(sources.sources) == set(ADAPTERS)
    assert dutchie.endpoint(sources.resolve("dutchie:67068790432055b33dc37888")) == (
        "https://dutchie.com/graphql"
    )
    assert sources.resolve("jane:1547").jane_algolia_api_key is None
    assert sources.resolve("weedmaps:x").weedmaps_api is WeedmapsApi.DISCOVERY


def test_operator_overrides_and_credentials() -> None:
    upstream = UpstreamConfig(
        sources=(
            SourceOverride(
                vendor="jane",
                base_url="http://127.0.0.1:9000",
                credentials={"algolia_app_id": "APPID", "algolia_api_key": "s3cr3t-value"},
            ),
            SourceOverride(
                vendor="Dutchie",
                credentials={"persisted_query_hash": "AB" * 32, "pricing_type": "med"},
            ),
            SourceOverride(vendor="weedmaps", credentials={"api": "v1", "page_size": "25"}),
        )
    )
    sources = SourcesConfig.from_config(upstream)
    jane = sources.resolve("jane:1547")
    assert jane.base_url == "http://127.0.0.1:9000"
    assert jane.jane_algolia_app_id == "APPID"
    assert jane.jane_algolia_api_key == Secret("s3cr3t-value")
    assert jane.jane_algolia_api_key is not None
    assert jane.jane_algolia_api_key.reveal() == "s3cr3t-value"
    for text in (repr(jane), str(jane), repr(sources), str(jane.credentials)):
        assert "s3cr3t-value" not in text
    dutchie_source = sources.resolve("dutchie:67068790432055b33dc37888")
    assert dutchie_source.base_url == "https://dutchie.com/graphql"
    assert dutchie_source.dutchie_query_hash == "ab" * 32
    assert dutchie_source.dutchie_pricing_type == "med"
    weedmaps = sources.resolve("weedmaps:x")
    assert (weedmaps.weedmaps_api, weedmaps.effective_page_size) == (WeedmapsApi.V1, 25)
    assert sources.resolve("leafly:x") == SourceConfig.default(Vendor.LEAFLY)


def test_one_base_url_for_every_vendor() -> None:
    sources = SourcesConfig.pointing_at("http://127.0.0.1:8600/")
    assert {s.base_url for s in sources} == {"http://127.0.0.1:8600/"}
    assert dutchie.endpoint(sources.resolve("dutchie:x")) == "http://127.0.0.1:8600/graphql"
    assert sources.resolve("leafly:x").url("/api") == "http://127.0.0.1:8600/api"
    assert sources.resolve("dutchie:x").dutchie_query_hash == DEFAULT_DUTCHIE_QUERY_HASH


@pytest.mark.parametrize(
    "override",
    [
        SourceOverride(vendor="posabit"),
        SourceOverride(vendor="nobody"),
        SourceOverride(vendor="jane", base_url="ftp://example.com"),
        SourceOverride(vendor="jane", base_url="https://example.com/?key=1"),
        SourceOverride(vendor="dutchie", credentials={"persisted_query_hash": "abc"}),
        SourceOverride(vendor="dutchie", credentials={"pricing_type": "wholesale"}),
        SourceOverride(vendor="weedmaps", credentials={"api": "v9"}),
        SourceOverride(vendor="leafly", credentials={"page_size": "many"}),
        SourceOverride(vendor="leafly", credentials={"page_size": "0"}),
    ],
)
def test_invalid_overrides_are_config_errors(override: SourceOverride) -> None:
    with pytest.raises(ConfigError):
        SourcesConfig.from_config(UpstreamConfig(sources=(override,)))


def test_resolution() -> None:
    sources = SourcesConfig.default()
    assert sources.resolve("leafly:some-slug").vendor is Vendor.LEAFLY
    with pytest.raises(UnknownDispensary) as caught:
        sources.resolve("posabit:store-1")
    assert (caught.value.source, caught.value.dispensary_id) == ("posabit", "posabit:store-1")
    with pytest.raises(UnknownDispensary):
        SourcesConfig({Vendor.JANE: SourceConfig.default(Vendor.JANE)}).resolve("leafly:x")
    with pytest.raises(ModelError):
        sources.resolve("not an id")
    with pytest.raises(ConfigError):
        SourcesConfig({Vendor.JANE: SourceConfig.default(Vendor.LEAFLY)})


def test_secrets_never_show() -> None:
    secret = Secret("hunter2")
    assert (repr(secret), str(secret), f"{secret}") == ("Secret('***')", "***", "***")
    assert secret == Secret("hunter2") != Secret("other")
    assert hash(secret) == hash(Secret("hunter2"))
    assert pickle.loads(pickle.dumps(secret)).reveal() == "hunter2"
