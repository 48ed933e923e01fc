"""What a notification says: events as frozen records, each rendered to one ``Message``.

An event knows nothing of channels; a ``Message`` is what every channel sends: a
subject line (the mail's Subject, the chat message's first line), a plain-text body and
the same facts as structured fields for machines (the webhook's JSON).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Protocol

from etl import text
from etl.notify import config

PREFIX = "[shardetl]"
# Titles go on one line: subjects become mail headers, and a URL or error holding CR/LF
# must not break them.
SUBJECT_CHARS = 200
Fields = dict[str, str | int | float | None]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    kind: str
    subject: str
    body: str
    fields: Fields
    node: str
    at: datetime

    @property
    def text(self) -> str:
        """Subject and body as one chat message."""
        return f"{self.subject}\n{self.body}"


class Event(Protocol):
    kind: ClassVar[str]

    @property
    def at(self) -> datetime: ...

    def title(self) -> str: ...

    def lines(self) -> Fields: ...


def render(event: Event, *, node: str) -> Message:
    """The message every channel sends for ``event`` raised on ``node``."""
    facts = {"node": node, **event.lines()}
    body = "\n".join(f"{name.replace('_', ' ')}: {value}" for name, value in facts.items())
    return Message(
        kind=event.kind,
        subject=f"{PREFIX} {text.one_line(event.title(), SUBJECT_CHARS)}",
        body=body + "\n",
        fields=facts,
        node=node,
        at=event.at,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFailed:
    """A source run (or a cron job, ``job`` set) ended with status ``failed``."""

    kind: ClassVar[str] = config.RUN_FAILED
    url: str = ""
    job: str = ""
    error: str
    failures: int | None = None  # consecutive failures, this one included
    at: datetime = field(default_factory=_now)

    def title(self) -> str:
        return f"job failed: {self.job}" if self.job else f"run failed: {self.url}"

    def lines(self) -> Fields:
        what: Fields = {"job": self.job} if self.job else {"source": self.url}
        if self.failures is not None:
            what["consecutive_failures"] = self.failures
        return {**what, "error": self.error}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFailing:
    """A source's consecutive failures reached the threshold (sent once per streak)."""

    kind: ClassVar[str] = config.FAILING
    url: str
    failures: int
    error: str
    at: datetime = field(default_factory=_now)

    def title(self) -> str:
        return f"source failing {self.failures} times in a row: {self.url}"

    def lines(self) -> Fields:
        return {"source": self.url, "consecutive_failures": self.failures, "error": self.error}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRecovered:
    """A source that had been reported failing ran successfully again."""

    kind: ClassVar[str] = config.RECOVERED
    url: str
    failures: int  # the streak that ended
    status: str
    at: datetime = field(default_factory=_now)

    def title(self) -> str:
        return f"source recovered: {self.url}"

    def lines(self) -> Fields:
        return {"source": self.url, "status": self.status, "failed_runs_before": self.failures}


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchComplete:
    """The talk's "Batch complete": an aggregation pass recomputed ``ItemStats``."""

    kind: ClassVar[str] = config.AGGREGATE
    mode: str
    items: int
    changed: int
    removed: int
    seconds: float
    at: datetime = field(default_factory=_now)

    def title(self) -> str:
        return (
            f"Batch complete: {self.items} items recomputed, {self.changed} changed "
            f"in {self.seconds:.2f} s"
        )

    def lines(self) -> Fields:
        return {
            "mode": self.mode,
            "items_recomputed": self.items,
            "stats_changed": self.changed,
            "stats_removed": self.removed,
            "duration_seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """``etl notify-test``: proves a channel works."""

    kind: ClassVar[str] = "test"
    at: datetime = field(default_factory=_now)

    def title(self) -> str:
        return "test notification"

    def lines(self) -> Fields:
        return {"sent_by": "etl notify-test"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Digest:
    """Events held back by the rate limit, coalesced into one message."""

    kind: ClassVar[str] = "digest"
    counts: dict[str, int]
    samples: tuple[str, ...]
    at: datetime = field(default_factory=_now)

    def title(self) -> str:
        return f"{sum(self.counts.values())} notifications coalesced by the rate limit"

    def lines(self) -> Fields:
        facts: Fields = {kind: n for kind, n in sorted(self.counts.items())}
        for i, subject in enumerate(self.samples, 1):
            facts[f"example_{i}"] = subject
        return facts


@dataclass(slots=True)
class Held:
    """Events the rate limit held back, kept as counts and a few subjects (bounded)."""

    samples_kept: int = 5
    counts: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def add(self, event: Event) -> None:
        self.counts[event.kind] += 1
        if len(self.samples) < self.samples_kept:
            self.samples.append(text.one_line(event.title(), SUBJECT_CHARS))

    def __bool__(self) -> bool:
        return bool(self.counts)

    def take(self) -> Digest:
        digest = Digest(counts=dict(self.counts), samples=tuple(self.samples))
        self.counts.clear()
        self.samples.clear()
        return digest
