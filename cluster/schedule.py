"""Schedule maths: when is a cron spec next due (``H`` spread by a stable name)."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter
from croniter.croniter import CroniterError


def next_run(spec: str, now: datetime, name: str) -> datetime:
    """The first time strictly after ``now`` matching ``spec``; ``H`` hashed by ``name``."""
    nxt: datetime = croniter(spec, now, hash_id=name.encode("utf-8")).get_next(datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)


def validate(spec: str) -> str:
    """Return ``spec`` if croniter accepts it (``H`` included), else raise ValueError."""
    try:
        croniter(spec, datetime.now(UTC), hash_id=b"validate").get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"invalid cron schedule {spec!r}: {exc}") from None
    return spec
