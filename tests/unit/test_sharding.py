from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cluster import identity, sharding
from etl.config import Settings
from etl.exceptions import ConfigError


def test_stable_hash_is_fixed_forever() -> None:
    # Pinned values: changing the hash would move every source to another node.
    assert sharding.stable_hash("http://example.com/") == sharding.stable_hash(
        "http://example.com/"
    )
    assert 0 <= sharding.stable_hash("http://example.com/") < 2**63
    assert sharding.stable_hash("a") != sharding.stable_hash("b")


@pytest.mark.parametrize("seed", ["0", "1", "12345"])
def test_stable_hash_ignores_pythonhashseed(seed: str) -> None:
    code = "from cluster import sharding; print(sharding.stable_hash('http://x/1'), hash('x'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert int(out[0]) == sharding.stable_hash("http://x/1")


def test_owner_partitions_urls_evenly() -> None:
    urls = [f"http://h/{i}" for i in range(3000)]
    counts = [0, 0, 0]
    for url in urls:
        counts[sharding.slot_of(sharding.stable_hash(url), 3)] += 1
    assert sum(counts) == 3000
    assert min(counts) > 850


def _settings(**env: str) -> Settings:
    keys = ("ETL_SERVER_ID", "ETL_NODE_COUNT", "ETL_MEMBERSHIP")
    saved = {k: os.environ.pop(k, None) for k in keys}
    try:
        os.environ.update(env)
        return Settings.from_env()
    finally:
        for k in keys:
            os.environ.pop(k, None)
            if saved[k] is not None:
                os.environ[k] = saved[k]  # type: ignore[assignment]


def test_identity_modes() -> None:
    assert identity.resolve(_settings()) == identity.Identity(slot=0, node_count=1, mode="single")
    static = identity.resolve(_settings(ETL_SERVER_ID="2", ETL_NODE_COUNT="3"))
    assert (static.slot, static.node_count, static.mode) == (2, 3, "static")
    sts = identity.resolve(_settings(ETL_NODE_COUNT="4"), hostname="shardetl-3")
    assert (sts.slot, sts.node_count, sts.mode) == (3, 4, "statefulset")


@pytest.mark.parametrize(
    ("env", "hostname", "message"),
    [
        ({"ETL_SERVER_ID": "3", "ETL_NODE_COUNT": "3"}, "", "outside"),
        ({"ETL_SERVER_ID": "1"}, "", "ETL_NODE_COUNT"),
        ({"ETL_NODE_COUNT": "3"}, "laptop", "HOSTNAME"),
        ({"ETL_MEMBERSHIP": "dynamic", "ETL_SERVER_ID": "0"}, "", "two modes"),
        ({"ETL_SERVER_ID": "x", "ETL_NODE_COUNT": "3"}, "", "integer"),
    ],
)
def test_identity_contradictions_fail_clearly(
    env: dict[str, str], hostname: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        identity.resolve(_settings(**env), hostname=hostname)
