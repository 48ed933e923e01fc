"""shardetl's configuration, read from the environment once (DESIGN.md, "Configuration").

:func:`settings` is the one typed object every layer reads the runtime knobs from; it is
built on first use and kept, so no request or run reads the environment again. Each
variable is read in exactly one place in the code base (``tests/unit/test_layers.py``
enforces it): the runtime knobs here, the database and Django's own in
``etl.database``/``etl.settings``, the notification and chat transports in their config
modules (read once, when a node starts).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from etl.exceptions import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
MEMBERSHIPS = ("static", "dynamic")


class Env:
    """Readers over one environment mapping; each names the variable in its error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str = "") -> str:
        return self.env.get(name, "").strip() or default

    def number(self, name: str, default: float, *, minimum: float) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value < minimum:
            raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def optional_integer(self, name: str, *, minimum: int | None = None) -> int | None:
        if not self.text(name):
            return None
        return self.integer(name, 0, minimum=minimum)

    def port(self, name: str) -> int | None:
        port = self.optional_integer(name, minimum=1)
        if port is not None and port > 65535:
            raise ConfigError(f"{name} must be between 1 and 65535, got {port}")
        return port

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        """One of ``choices`` (given in lower case; read case-insensitively)."""
        raw = self.text(name)
        if not raw:
            return default
        if raw.lower() in choices:
            return raw.lower()
        *first, last = choices
        allowed = f"{', '.join(first)} or {last}" if first else last
        raise ConfigError(f"{name} must be {allowed}, got {raw!r}")

    def flag(self, name: str) -> bool | None:
        raw = self.text(name).lower()
        if not raw or raw == "auto":
            return None
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigError(f"{name} must be on, off or auto, got {raw!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """shardetl's runtime knobs; :func:`settings` holds this process's copy."""

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
    load_connections: int = 2  # loads a node runs at once, each on its own connection
    hostname: str = ""  # HOSTNAME: a StatefulSet pod's name carries its slot
    aggregate_schedule: str = "* * * * *"
    # A full pass re-adds every item from scratch: it also rewrites any avg whose float
    # total drifted by a rounding under many incremental passes. "off": something else
    # runs it (the Kubernetes CronJob).
    aggregate_full_schedule: str = "0 3 * * *"

    @classmethod
    def from_env(cls) -> Settings:
        e = Env(os.environ)
        hostname = e.text("HOSTNAME")
        return cls(
            node_name=e.text("ETL_NODE_NAME")
            or f"{hostname or socket.gethostname()}-{os.getpid()}",
            server_id=e.optional_integer("ETL_SERVER_ID"),
            node_count=e.optional_integer("ETL_NODE_COUNT"),
            membership=e.choice("ETL_MEMBERSHIP", "static", MEMBERSHIPS),
            node_ttl=e.integer("ETL_NODE_TTL", 15, minimum=1),
            parse_workers=e.integer("ETL_PARSE_WORKERS", os.cpu_count() or 2, minimum=1),
            http_concurrency=e.integer("ETL_HTTP_CONCURRENCY", 16, minimum=1),
            per_host_concurrency=e.integer("ETL_PER_HOST_CONCURRENCY", 4, minimum=1),
            max_body_bytes=e.integer("ETL_MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=1),
            lease_seconds=e.integer("ETL_LEASE_SECONDS", 60, minimum=1),
            drain_seconds=e.integer("ETL_DRAIN_SECONDS", 15, minimum=1),
            load_connections=e.integer("ETL_LOAD_CONNECTIONS", 2, minimum=1),
            hostname=hostname,
            aggregate_schedule=e.text("ETL_AGGREGATE_SCHEDULE", "* * * * *"),
            aggregate_full_schedule=e.text("ETL_AGGREGATE_FULL_SCHEDULE", "0 3 * * *"),
        )


_settings: Settings | None = None


def settings() -> Settings:
    """This process's settings, read from the environment on first use and then kept.

    A bad value raises :class:`ConfigError` on that first use: a node calls this while
    it starts, so a typo stops it there rather than failing every run.
    """
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset() -> None:
    """Forget the kept settings, so the next :func:`settings` reads the environment
    again (tests that change it)."""
    global _settings
    _settings = None
