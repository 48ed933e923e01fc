"""Registering sources: one at a time, or in bulk from JSON lines or CSV.

Registration validates everything it can before a row exists: the URL is absolute
http(s), the parser exists and accepts its options, the schedule parses. Import is
idempotent: a URL already registered is updated, not duplicated.

Where a source belongs in the cluster is not ingest's business: the cluster app installs
its placement function (:func:`set_placement`, from ``cluster.apps``), which gives each
new source its ``shard_hash``.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ingest import fetch, parsers, schedule
from ingest.exceptions import InvalidSource, ParseError
from ingest.models import Source

DEFAULT_SCHEDULE = "H * * * *"

Placement = Callable[[str], int]  # URL -> Source.shard_hash
_placement: Placement | None = None


def set_placement(placement: Placement) -> None:
    """Install the function that computes a new source's ``shard_hash`` from its URL."""
    global _placement
    _placement = placement


def shard_hash(url: str) -> int:
    """``url``'s shard hash, by the installed placement function."""
    if _placement is None:
        raise RuntimeError("no placement function installed (is the cluster app installed?)")
    return _placement(url)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSpec:
    url: str
    parser: str
    schedule: str = DEFAULT_SCHEDULE
    options: dict[str, Any] = field(default_factory=dict)


def validate(spec: SourceSpec) -> SourceSpec:
    """Return ``spec`` if it can be registered, else raise InvalidSource with the reason."""
    fetch.validate_url(spec.url)
    try:
        parsers.get(spec.parser)
        if not isinstance(spec.options, dict):
            raise InvalidSource(f"options must be a JSON object, got {type(spec.options).__name__}")
        parsers.validate_options(spec.parser, spec.options)
    except ParseError as exc:
        raise InvalidSource(str(exc)) from None
    try:
        schedule.validate(spec.schedule)
    except ValueError as exc:
        raise InvalidSource(str(exc)) from None
    return spec


def _upsert(specs: list[SourceSpec]) -> tuple[int, int]:
    existing = {s.url: s for s in Source.objects.filter(url__in=[spec.url for spec in specs])}
    created: list[Source] = []
    changed: list[Source] = []
    for spec in specs:
        row = existing.get(spec.url)
        if row is None:
            created.append(
                Source(
                    url=spec.url,
                    parser=spec.parser,
                    schedule=spec.schedule,
                    options=spec.options,
                    shard_hash=shard_hash(spec.url),
                )
            )
        elif (row.parser, row.schedule, row.options) != (spec.parser, spec.schedule, spec.options):
            row.parser, row.schedule, row.options = spec.parser, spec.schedule, spec.options
            # A changed parser or options must re-parse even an unchanged body.
            row.etag, row.last_modified, row.next_run_at = "", "", None
            changed.append(row)
    Source.objects.bulk_create(created, batch_size=1000)
    Source.objects.bulk_update(
        changed,
        ["parser", "schedule", "options", "etag", "last_modified", "next_run_at"],
        batch_size=1000,
    )
    return len(created), len(changed)


def register(specs: Iterable[SourceSpec]) -> tuple[int, int]:
    """Validate all, then create or update; return (created, updated). Sync (ORM)."""
    valid = [validate(spec) for spec in specs]
    unique = list({spec.url: spec for spec in valid}.values())  # last line for a URL wins
    return _upsert(unique)


def _spec(obj: Any, where: str) -> SourceSpec:
    if not isinstance(obj, dict):
        raise InvalidSource(f"{where}: expected an object with url and parser")
    unknown = set(obj) - {"url", "parser", "schedule", "options"}
    if unknown:
        raise InvalidSource(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        options = obj.get("options") or {}
        if isinstance(options, str):
            options = orjson.loads(options) if options.strip() else {}
        return SourceSpec(
            url=str(obj["url"]).strip(),
            parser=str(obj["parser"]).strip(),
            schedule=str(obj.get("schedule") or DEFAULT_SCHEDULE).strip(),
            options=options,
        )
    except KeyError as exc:
        raise InvalidSource(f"{where}: missing {exc.args[0]!r}") from None
    except orjson.JSONDecodeError as exc:
        raise InvalidSource(f"{where}: options are not valid JSON: {exc}") from None


def parse_specs(text: str, *, name: str = "input") -> Iterator[SourceSpec]:
    """Specs from JSON lines, or from CSV with a header row (url,parser,schedule,options)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidSource(f"{name}:{number}: not valid JSON: {exc}") from None
            yield _spec(obj, f"{name}:{number}")
        return
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "url" not in reader.fieldnames:
        raise InvalidSource(f"{name}: expected JSON lines or CSV with a 'url,parser,…' header")
    for number, row in enumerate(reader, start=2):
        cleaned = {k: v for k, v in row.items() if k and v not in (None, "")}
        yield _spec(cleaned, f"{name}:{number}")


async def read_text(location: str, fetcher: fetch.Fetcher | None = None) -> str:
    """The text of a local file or of an http(s) URL."""
    if location.startswith(("http://", "https://")):
        import etl

        client = fetcher or fetch.Fetcher(
            limits=fetch.FetchLimits(), user_agent=fetch.user_agent(etl.__version__, "cli")
        )
        try:
            result = await client.fetch(location)
        finally:
            if fetcher is None:
                await client.aclose()
        return result.body.decode("utf-8")
    return await asyncio.to_thread(Path(location).read_text, encoding="utf-8")
