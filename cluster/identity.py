"""Which slot this node holds and how many slots there are (DESIGN.md, "Cluster identity").

Static mode reads ``ETL_SERVER_ID``/``ETL_NODE_COUNT``; StatefulSet mode takes the slot
from the ordinal suffix of ``HOSTNAME``. With neither set a lone node owns everything
(slot 0 of 1), which is what a laptop wants. Dynamic membership lives in
``cluster.membership``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from etl.config import Settings
from etl.exceptions import ConfigError

_ORDINAL = re.compile(r"^(?P<base>.+)-(?P<ordinal>\d+)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    slot: int
    node_count: int
    mode: str  # "single" | "static" | "statefulset" | "dynamic"


def statefulset_ordinal(hostname: str) -> int | None:
    match = _ORDINAL.match(hostname)
    return int(match["ordinal"]) if match else None


def resolve(settings: Settings, hostname: str | None = None) -> Identity:
    """The static identity of this node, or raise ConfigError on contradictions."""
    if settings.membership == "dynamic":
        if settings.server_id is not None:
            raise ConfigError("ETL_MEMBERSHIP=dynamic and ETL_SERVER_ID are two modes at once")
        # The slot is claimed at start-up; until then the node owns nothing.
        return Identity(slot=0, node_count=1, mode="dynamic")
    n = settings.node_count
    slot = settings.server_id
    mode = "static"
    if slot is None and n is not None:
        hostname = hostname if hostname is not None else settings.hostname
        slot = statefulset_ordinal(hostname)
        mode = "statefulset"
        if slot is None:
            raise ConfigError(
                f"ETL_NODE_COUNT={n} but neither ETL_SERVER_ID nor a StatefulSet HOSTNAME "
                f"(name-<ordinal>) says which slot this node is; HOSTNAME={hostname!r}"
            )
    if slot is None and n is None:
        return Identity(slot=0, node_count=1, mode="single")
    if n is None:
        raise ConfigError("ETL_SERVER_ID is set but ETL_NODE_COUNT is not")
    assert slot is not None
    if n < 1:
        raise ConfigError(f"ETL_NODE_COUNT must be at least 1, got {n}")
    if not 0 <= slot < n:
        raise ConfigError(f"slot {slot} is outside 0..{n - 1} (ETL_NODE_COUNT={n})")
    return Identity(slot=slot, node_count=n, mode=mode)
