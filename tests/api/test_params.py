"""Query parameters and content negotiation: exact forms accepted, everything else refused."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from whnode import limits
from whnode.api.exceptions import InvalidParameter, NotAcceptable
from whnode.api.params import (
    MAX_AGE_LIMIT_SECONDS,
    MediaType,
    negotiate,
    parse_at,
    parse_limit,
    parse_max_age,
    single_values,
)

JSON = MediaType("application/json", "application/json")
CBOR = MediaType("application/cbor", "application/cbor")
COSE = MediaType("application/cose", 'application/cose; cose-type="cose-sign1"')
OFFERED = (JSON, CBOR, COSE)


@pytest.mark.parametrize(
    ("text", "expected"), [("0", 0.0), ("300", 300.0), ("0.5", 0.5), ("12.000001", 12.000001)]
)
def test_max_age_accepts_plain_decimals(text: str, expected: float) -> None:
    assert parse_max_age(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "nan",
        "inf",
        "1e3",
        "0x10",
        " 5",
        "5 ",
        "1.",
        ".5",
        "1,5",
        "١٢",
        "9" * 13,
        str(MAX_AGE_LIMIT_SECONDS + 1),
    ],
)
def test_max_age_refuses_everything_else(text: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_max_age(text)
    assert caught.value.parameter == "max_age"


def test_at_accepts_epoch_ms_and_iso_with_offset() -> None:
    assert parse_at("1700000000123") == 1_700_000_000_123
    assert parse_at("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_at("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500
    assert parse_at("0") == 0


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-14T22:13:20",  # no offset: ambiguous
        "2023-11-14",
        "1969-12-31T23:59:59Z",
        "yesterday",
        "-5",
        "1e12",
        "2023-13-01T00:00:00Z",
        "9" * 17,
        str(2**53 + 1),
        "2023-11-14T22:13:20Z" + "0" * 30,
    ],
)
def test_at_refuses_ambiguous_or_malformed_times(text: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_at(text)
    assert caught.value.parameter == "at"


def test_limit_bounds() -> None:
    assert parse_limit(None, default=20) == 20
    assert parse_limit("1", default=20) == 1
    assert parse_limit(str(limits.MAX_HISTORY_ITEMS), default=20) == limits.MAX_HISTORY_ITEMS
    for text in ("0", str(limits.MAX_HISTORY_ITEMS + 1), "-1", "1.5", "ten", ""):
        with pytest.raises(InvalidParameter):
            parse_limit(text, default=20)


def test_single_values_refuses_unknown_and_repeated() -> None:
    assert single_values(MultiDict([("max_age", "5")]), ("max_age", "at")) == {"max_age": "5"}
    with pytest.raises(InvalidParameter, match="unknown"):
        single_values(MultiDict([("maxage", "5")]), ("max_age",))
    with pytest.raises(InvalidParameter, match="more than once"):
        single_values(MultiDict([("max_age", "5"), ("max_age", "6")]), ("max_age",))


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/cbor", CBOR),
        ("application/cose", COSE),
        ('application/cose; cose-type="cose-sign1"', COSE),
        ("application/json;q=0.5, application/cbor", CBOR),
        ("application/cbor;q=0.2, */*;q=0.1", CBOR),
        ("text/html, application/xhtml+xml, */*;q=0.8", JSON),
        ("APPLICATION/COSE", COSE),
        ("*/*;q=0.1, application/json;q=0", CBOR),
    ],
)
def test_negotiate_picks_the_preferred_representation(
    accept: str | None, expected: MediaType
) -> None:
    assert negotiate(accept, OFFERED) is expected


@pytest.mark.parametrize(
    "accept", ["text/html", "application/json;q=0", "image/*", "application/cose;q=0, text/*"]
)
def test_negotiate_refuses_when_nothing_is_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        negotiate(accept, (JSON, COSE) if "cose" in accept else (JSON,))
    assert "application/json" in caught.value.available


@given(st.text(max_size=300))
def test_parsers_raise_only_invalid_parameter(text: str) -> None:
    for parser in (parse_max_age, parse_at):
        try:
            value = parser(text)
        except InvalidParameter:
            continue
        assert value >= 0
    try:
        negotiate(text, OFFERED)
    except NotAcceptable:
        pass


def test_iso_and_epoch_agree_at_the_millisecond() -> None:
    moment = dt.datetime(2024, 5, 1, 12, 30, 15, 250_000, tzinfo=dt.UTC)
    assert parse_at(moment.isoformat()) == parse_at(str(int(moment.timestamp() * 1000)))
