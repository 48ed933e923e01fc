from __future__ import annotations

from collections.abc import Callable
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
