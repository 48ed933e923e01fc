"""Typed access to shardetl's own environment settings (DESIGN.md, "Configuration")."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from etl.exceptions import ConfigError


def _int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _positive(name: str, default: int) -> int:
    value = _int(name, default)
    assert value is not None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """shardetl's runtime knobs, read once from the environment."""

    node_name: str
    server_id: int | None
    node_count: int | None
    membership: str
    node_ttl: int
    parse_workers: int
    http_concurrency: int
    per_host_concurrency: int
    max_body_bytes: int
    lease_seconds: int
    drain_seconds: int = 15  # SIGTERM: how long in-flight runs may finish before release

    @classmethod
    def from_env(cls) -> Settings:
        membership = os.environ.get("ETL_MEMBERSHIP", "static").strip().lower() or "static"
        if membership not in {"static", "dynamic"}:
            raise ConfigError(f"ETL_MEMBERSHIP must be 'static' or 'dynamic', not {membership!r}")
        hostname = os.environ.get("HOSTNAME") or socket.gethostname()
        return cls(
            node_name=os.environ.get("ETL_NODE_NAME") or f"{hostname}-{os.getpid()}",
            server_id=_int("ETL_SERVER_ID", None),
            node_count=_int("ETL_NODE_COUNT", None),
            membership=membership,
            node_ttl=_positive("ETL_NODE_TTL", 15),
            parse_workers=_positive("ETL_PARSE_WORKERS", os.cpu_count() or 2),
            http_concurrency=_positive("ETL_HTTP_CONCURRENCY", 16),
            per_host_concurrency=_positive("ETL_PER_HOST_CONCURRENCY", 4),
            max_body_bytes=_positive("ETL_MAX_BODY_BYTES", 32 * 1024 * 1024),
            lease_seconds=_positive("ETL_LEASE_SECONDS", 60),
            drain_seconds=_positive("ETL_DRAIN_SECONDS", 15),
        )
