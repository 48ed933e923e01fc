from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def make_source(transactional_db: None) -> Callable[..., Any]:
    """Create a Source row directly (registration is tested on its own)."""
    from cluster import sharding
    from ingest.models import Source

    def make(url: str, parser: str = "json", **fields: Any) -> Source:
        fields.setdefault("options", {"key": "id"} if parser == "json" else {})
        return Source.objects.create(
            url=url, parser=parser, shard_hash=sharding.stable_hash(url), **fields
        )

    return make


@pytest.fixture(autouse=True)
def _close_db_thread_connections() -> Iterator[None]:
    """Close connections opened on asgiref's shared DB thread and the load threads, so the
    test DB can be dropped."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    from etl import db

    asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())
    db.close_loads()
