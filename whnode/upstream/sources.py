"""Where each dispensary's menu comes from: one ``SourceConfig`` per vendor.

A dispensary id is ``vendor:store`` (``weedmaps:ultra-health-gallup``, ``jane:1547``,
``dutchie:67068790432055b33dc37888``, ``leafly:some-slug``); the vendor part picks the source.
``SourcesConfig.default()`` points every vendor at its real API; ``from_config`` applies the
operator's ``[[upstream.sources]]`` overrides (a base URL, e.g. a proxy or the sandbox, and
credentials). Credentials are wrapped in ``Secret``, whose ``repr`` and ``str`` never show the
value; only the adapter that sends one calls ``reveal()``.

Recognised credential keys (all optional; unknown keys are kept for future sources):

==========================  =========  ==================================================
key                         vendor     meaning
==========================  =========  ==================================================
``persisted_query_hash``    dutchie    sha256 of the FilteredProducts persisted query
``pricing_type``            dutchie    ``rec`` (default) or ``med``
``algolia_app_id``          jane       ``x-algolia-application-id`` of the embedding site
``algolia_api_key``         jane       ``x-algolia-api-key`` (a public search key)
``api``                     weedmaps   ``discovery`` (default) or ``v1`` (the JSON:API menu)
``client_id``               treez,     the API client id the dispensary issued (Treez
                            flowhub    ``client_id``, Flowhub ``clientId``)
``api_key``                 treez,     the API key (Treez ``apikey`` for tokens, Flowhub
                            flowhub    ``key`` header)
``page_size``               any        items asked per page (capped by the vendor's limit)
==========================  =========  ==================================================
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

import yarl

from whnode.errors import ConfigError
from whnode.record.model import Vendor, parse_dispensary_id
from whnode.upstream.exceptions import UnknownDispensary

if TYPE_CHECKING:
    from whnode.config import UpstreamConfig

__all__ = [
    "DEFAULT_BASE_URLS",
    "DEFAULT_DUTCHIE_QUERY_HASH",
    "DUTCHIE_FILTERED_PRODUCTS_QUERY",
    "SUPPORTED_VENDORS",
    "Secret",
    "SourceConfig",
    "SourcesConfig",
    "WeedmapsApi",
]

DEFAULT_BASE_URLS: Final[Mapping[Vendor, str]] = {
    Vendor.DUTCHIE: "https://dutchie.com/graphql",
    Vendor.JANE: "https://search.iheartjane.com",
    Vendor.WEEDMAPS: "https://api-g.weedmaps.com",
    Vendor.LEAFLY: "https://consumer-api.leafly.com",
    Vendor.TREEZ: "https://api.treez.io",
    Vendor.FLOWHUB: "https://api.flowhub.co",
}
"""The real API of each supported vendor."""

SUPPORTED_VENDORS: Final = tuple(DEFAULT_BASE_URLS)
"""Vendors with an adapter."""

DUTCHIE_FILTERED_PRODUCTS_QUERY: Final = (
    "query FilteredProducts($includeEnterpriseSpecials: Boolean, "
    "$productsFilter: productsFilterInput!, $page: Int, $perPage: Int) { "
    "filteredProducts(filter: $productsFilter, page: $page, perPage: $perPage) { "
    "products { ...ProductFields } queryInfo { totalCount totalPages } } }"
)
"""The query text whose sha256 is the default persisted-query hash. The hash the real API
accepts rotates with its releases: operators set it as ``persisted_query_hash``."""

DEFAULT_DUTCHIE_QUERY_HASH: Final = hashlib.sha256(
    DUTCHIE_FILTERED_PRODUCTS_QUERY.encode()
).hexdigest()
"""Persisted-query hash sent when none is configured (the sandbox accepts it)."""

MAX_PAGE_SIZE: Final[Mapping[Vendor, int]] = {
    Vendor.DUTCHIE: 100,
    Vendor.JANE: 1000,
    Vendor.WEEDMAPS: 100,
    Vendor.LEAFLY: 50,
    Vendor.TREEZ: 50,
    Vendor.FLOWHUB: 100,
}
"""Largest page each API serves (Leafly answers 400 above 50, Weedmaps caps at 100)."""

DEFAULT_PAGE_SIZE: Final[Mapping[Vendor, int]] = {
    Vendor.DUTCHIE: 50,
    Vendor.JANE: 1000,
    Vendor.WEEDMAPS: 100,
    Vendor.LEAFLY: 50,
    Vendor.TREEZ: 50,
    Vendor.FLOWHUB: 100,
}
"""Items asked per page when the source does not say."""

DEFAULT_PAGE_CONCURRENCY: Final = 4
"""Pages of one menu requested at once (the HTTP client also caps requests per host)."""


class Secret:
    """A credential whose ``repr`` and ``str`` never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a secret is a string")
        self._value = value

    def reveal(self) -> str:
        """The value, for the one place that sends it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


class WeedmapsApi(enum.StrEnum):
    """Which Weedmaps menu API a source calls."""

    DISCOVERY = "discovery"
    """``/discovery/v1/listings/dispensaries/{slug}/menu_items`` (1-based ``page``)."""
    V1 = "v1"
    """The JSON:API menu, ``/v1/listings/dispensaries/{slug}/menu_items``."""


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """How to reach one vendor's API."""

    vendor: Vendor
    """The vendor this source serves (the ``vendor`` part of dispensary ids)."""
    base_url: str
    """Scheme, host and optional path prefix; the adapter appends the API path."""
    credentials: Mapping[str, Secret] = field(default_factory=dict)
    """Every credential given for the source, masked (including the recognised ones)."""
    page_size: int | None = None
    """Items asked per page; None means the vendor default (Dutchie 50, Jane 1000, Weedmaps
    100, Leafly 50); capped at the vendor's maximum."""
    page_concurrency: int = DEFAULT_PAGE_CONCURRENCY
    """Pages of one menu requested at once."""
    dutchie_query_hash: str = DEFAULT_DUTCHIE_QUERY_HASH
    """Dutchie: sha256 of the FilteredProducts persisted query (rotates upstream)."""
    dutchie_pricing_type: str = "rec"
    """Dutchie: the ``rec`` or ``med`` menu (which products are listed); the prices read are
    ``recPrices``, else ``Prices``."""
    jane_algolia_app_id: str | None = None
    """Jane: Algolia application id of the embedding site (sent when set)."""
    jane_algolia_api_key: Secret | None = None
    """Jane: Algolia public search key of the embedding site (sent when set)."""
    jane_index: str = "menu-products-production"
    """Jane: the Algolia index holding menu products."""
    weedmaps_api: WeedmapsApi = WeedmapsApi.DISCOVERY
    """Weedmaps: discovery API or the JSON:API v1 menu."""
    client_id: str | None = None
    """Treez and Flowhub (keyed POS APIs): the client id the dispensary issued."""
    api_key: Secret | None = None
    """Treez and Flowhub: the API key (sent only by the adapter that needs it)."""

    def __post_init__(self) -> None:
        if not isinstance(self.vendor, Vendor):
            raise ConfigError("a source's vendor must be a Vendor")
        url = yarl.URL(self.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"{self.vendor} base_url must be an absolute http(s) URL")
        if url.query_string or url.fragment:
            raise ConfigError(f"{self.vendor} base_url must not carry a query or fragment")
        if self.page_size is not None and not 1 <= self.page_size <= 10_000:
            raise ConfigError(f"{self.vendor} page_size must be between 1 and 10000")
        if not 1 <= self.page_concurrency <= 64:
            raise ConfigError(f"{self.vendor} page_concurrency must be between 1 and 64")
        if self.dutchie_pricing_type not in ("rec", "med"):
            raise ConfigError("dutchie pricing_type must be rec or med")
        if len(self.dutchie_query_hash) != 64 or any(
            c not in "0123456789abcdef" for c in self.dutchie_query_hash
        ):
            raise ConfigError("dutchie persisted_query_hash must be 64 lowercase hex digits")

    def url(self, path: str) -> str:
        """``base_url`` joined with an API path (``path`` starts with ``/``)."""
        return self.base_url.rstrip("/") + path

    @property
    def effective_page_size(self) -> int:
        """Items asked per page, within the vendor's limit."""
        size = self.page_size or DEFAULT_PAGE_SIZE.get(self.vendor, 50)
        return min(size, MAX_PAGE_SIZE.get(self.vendor, size))

    @classmethod
    def default(cls, vendor: Vendor) -> SourceConfig:
        """The real API of ``vendor``."""
        try:
            return cls(vendor=vendor, base_url=DEFAULT_BASE_URLS[vendor])
        except KeyError:
            raise ConfigError(f"no adapter for vendor {vendor}") from None

    def with_options(
        self, *, base_url: str | None = None, credentials: Mapping[str, str] | None = None
    ) -> SourceConfig:
        """A copy with another base URL and/or credentials (recognised keys applied)."""
        updated = self if base_url is None else replace(self, base_url=base_url)
        if not credentials:
            return updated
        secrets = {**updated.credentials, **{k: Secret(v) for k, v in credentials.items()}}
        changes: dict[str, object] = {"credentials": secrets}
        where = f"source {self.vendor}"
        for key, value in credentials.items():
            if key == "persisted_query_hash":
                changes["dutchie_query_hash"] = value.strip().lower()
            elif key == "pricing_type":
                changes["dutchie_pricing_type"] = value.strip().lower()
            elif key == "algolia_app_id":
                changes["jane_algolia_app_id"] = value.strip()
            elif key == "algolia_api_key":
                changes["jane_algolia_api_key"] = Secret(value.strip())
            elif key == "api":
                try:
                    changes["weedmaps_api"] = WeedmapsApi(value.strip().lower())
                except ValueError:
                    raise ConfigError(f"{where}: api must be discovery or v1") from None
            elif key == "client_id":
                changes["client_id"] = value.strip()
            elif key == "api_key":
                changes["api_key"] = Secret(value.strip())
            elif key == "page_size":
                try:
                    changes["page_size"] = int(value)
                except ValueError:
                    raise ConfigError(f"{where}: page_size must be an integer") from None
        return replace(updated, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SourcesConfig:
    """The source of every supported vendor; ``resolve`` picks one for a dispensary."""

    sources: Mapping[Vendor, SourceConfig] = field(
        default_factory=lambda: {
            vendor: SourceConfig.default(vendor) for vendor in DEFAULT_BASE_URLS
        }
    )
    """One source per vendor; vendors missing here serve no dispensary."""

    def __post_init__(self) -> None:
        for vendor, source in self.sources.items():
            if source.vendor is not vendor:
                raise ConfigError(f"the source listed under {vendor} is for {source.vendor}")

    @classmethod
    def default(cls) -> SourcesConfig:
        """Every supported vendor at its real API."""
        return cls()

    @classmethod
    def pointing_at(
        cls, base_url: str, credentials: Mapping[Vendor, Mapping[str, str]] | None = None
    ) -> SourcesConfig:
        """Every vendor at one base URL (a proxy, or the sandbox, which serves every API)."""
        credentials = credentials or {}
        return cls(
            {
                vendor: SourceConfig.default(vendor).with_options(
                    base_url=base_url, credentials=credentials.get(vendor)
                )
                for vendor in DEFAULT_BASE_URLS
            }
        )

    @classmethod
    def from_config(cls, upstream: UpstreamConfig) -> SourcesConfig:
        """The defaults with the operator's ``[[upstream.sources]]`` overrides applied."""
        sources = dict(cls().sources)
        for override in upstream.sources:
            try:
                vendor = Vendor(override.vendor.strip().lower())
            except ValueError:
                raise ConfigError(f"upstream source: unknown vendor {override.vendor!r}") from None
            if vendor not in sources:
                raise ConfigError(f"upstream source: no adapter for vendor {vendor}")
            sources[vendor] = sources[vendor].with_options(
                base_url=override.base_url, credentials=override.credentials
            )
        return cls(sources)

    def resolve(self, dispensary_id: str) -> SourceConfig:
        """The source serving ``dispensary_id``; ``UnknownDispensary`` when none does
        (``ModelError`` for a malformed id)."""
        parse_dispensary_id(dispensary_id)
        vendor_name = dispensary_id.partition(":")[0]
        try:
            vendor = Vendor(vendor_name)
        except ValueError:
            vendor = None
        source = self.sources.get(vendor) if vendor is not None else None
        if source is None:
            raise UnknownDispensary(
                f"no source is configured for vendor {vendor_name!r}",
                source=vendor_name,
                dispensary_id=dispensary_id,
            )
        return source

    def __iter__(self) -> Iterator[SourceConfig]:
        return iter(self.sources.values())


def store_of(dispensary_id: str) -> str:
    """The ``store`` part of ``vendor:store``."""
    return dispensary_id.partition(":")[2]
