"""Fixtures of the API tests: a real signing key, real records, a real server on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api.support import (
    DISPENSARY,
    ApiServer,
    ContextDouble,
    ServiceDouble,
    make_menu,
    make_record,
    now_ms,
)
from whnode.record.keys import SigningKey
from whnode.record.signed import SignedRecord


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def record(signing_key: SigningKey) -> SignedRecord:
    return make_record(make_menu(fetched_at_ms=now_ms() - 60_000), signing_key)


@pytest.fixture
def service(record: SignedRecord) -> ServiceDouble:
    double = ServiceDouble()
    double.add(record)
    return double


@pytest.fixture
def context(service: ServiceDouble) -> ContextDouble:
    return ContextDouble(service)


@pytest.fixture
async def server(context: ContextDouble) -> AsyncIterator[ApiServer]:
    async with ApiServer(context) as running:
        yield running


__all__ = ["DISPENSARY"]
