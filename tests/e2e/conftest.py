"""One local cloud for the end-to-end tests: the real program, materialised on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.client import StoreClient
from localcloud.cloud import LocalCloud, running_cloud
from localcloud.runtime import quick


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    # A 1 s batching window instead of the stack's 30 s, and failed messages back after 1 s instead of
    # the visibility timeout: the same code paths, shorter waits (tests/e2e/test_retries.py checks the
    # faithful timing).
    with running_cloud(
        stack="dev",
        log_dir=tmp_path_factory.mktemp("localcloud"),
        quiet=True,
        overrides={"tbs:reportsBatchWindowSeconds": "1"},
        retries=quick(1),
    ) as local:
        yield local


@pytest.fixture
def customer(cloud: LocalCloud, request: pytest.FixtureRequest) -> StoreClient:
    """A customer of their own per test, so tests never see each other's orders."""
    return StoreClient(cloud.api_url, cloud.issuer.token(f"customer-{request.node.name}", "kiri@example.com"))


@pytest.fixture
def admin(cloud: LocalCloud) -> StoreClient:
    return StoreClient(
        cloud.api_url, cloud.issuer.token("store-admin", "admin@example.com", groups=["admin"])
    )


@pytest.fixture
def warehouse(cloud: LocalCloud) -> StoreClient:
    return StoreClient(cloud.api_url, cloud.warehouse_token())
