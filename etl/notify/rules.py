"""Which events a finished run or pass raises, given what the operator switched on.

Pure functions of the configuration and the facts, so the rules are tested without a
queue, a clock or a channel.
"""

from __future__ import annotations

from etl.notify import config, events
from etl.notify.config import NotifyConfig


def for_run(
    cfg: NotifyConfig, *, url: str, status: str, error: str, streak: tuple[int, int] | None
) -> list[events.Event]:
    """Events of one source run.

    ``streak`` is the source's consecutive failures (before, after) the run, or ``None``
    when another node took the source over (its outcome counts, not ours). "failing" is
    raised once per streak, when it reaches the threshold; "recovered" ends a streak
    that had been reported.
    """
    before, after = streak if streak is not None else (None, None)
    threshold = cfg.failing_after
    raised: list[events.Event] = []
    if status == "failed":
        if config.RUN_FAILED in cfg.on:
            raised.append(events.RunFailed(url=url, error=error, failures=after))
        if config.FAILING in cfg.on and after == threshold:
            raised.append(events.SourceFailing(url=url, failures=after, error=error))
    elif config.RECOVERED in cfg.on and before is not None and before >= threshold:
        raised.append(events.SourceRecovered(url=url, failures=before, status=status))
    return raised


def for_job_failure(cfg: NotifyConfig, *, job: str, error: str) -> list[events.Event]:
    """Events of a cron job (e.g. the aggregation pass) that raised."""
    return [events.RunFailed(job=job, error=error)] if config.RUN_FAILED in cfg.on else []


def for_pass(
    cfg: NotifyConfig, *, mode: str, items: int, changed: int, removed: int, seconds: float
) -> list[events.Event]:
    """Events of an aggregation pass; a pass that found nothing to do raises none."""
    if config.AGGREGATE not in cfg.on or not (items or changed or removed):
        return []
    return [
        events.BatchComplete(
            mode=mode, items=items, changed=changed, removed=removed, seconds=seconds
        )
    ]
