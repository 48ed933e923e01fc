"""Shared fixtures: a real PostgreSQL (DATABASE_URL or the embedded one), real HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import servers


@pytest.fixture
def upstream_url() -> Iterator[str]:
    """The sample upstream (small: 600 items, 8 shops) on 127.0.0.1."""
    from upstream import UpstreamConfig, build_app

    config = UpstreamConfig(
        items=600, shops=8, seed=7, page_size=200, items_per_shop=50, trades=450
    )
    with servers.serve(build_app(config)) as url:
        yield url


@pytest.fixture(autouse=True)
def _node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed node name: runs and leases are attributed predictably.
    monkeypatch.setenv("ETL_NODE_NAME", os.environ.get("ETL_NODE_NAME", "test-node"))
    monkeypatch.setenv("ETL_PARSE_WORKERS", os.environ.get("ETL_PARSE_WORKERS", "2"))
    # Settings are read once per process; each test starts from its own environment.
    from etl import config

    config.reset()
