"""The browser tests drive a real cluster: the cluster tests' fixtures, shared."""

from __future__ import annotations

from tests.cluster.conftest import cluster as cluster
