"""``etl sources add|import|list``."""

from __future__ import annotations

import asyncio
from argparse import ArgumentParser
from typing import IO, Any, cast

import orjson
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.table import Table

from cluster import identity, membership, sharding
from etl import config
from ingest import sources
from ingest.exceptions import FetchError, InvalidSource
from ingest.models import Source


class Command(BaseCommand):
    help = "Register, import and list sources."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="register one source")
        add.add_argument("url")
        add.add_argument("--parser", required=True)
        add.add_argument("--schedule", default=sources.DEFAULT_SCHEDULE)
        add.add_argument("--options", default="{}", help="parser options as a JSON object")
        imp = sub.add_parser("import", help="bulk register from JSON lines or CSV (file or URL)")
        imp.add_argument("location")
        lst = sub.add_parser("list", help="sources with shard, lease and last status")
        lst.add_argument("--limit", type=int, default=200)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "add":
                self._add(options)
            elif options["action"] == "import":
                self._import(options["location"])
            else:
                self._list(options["limit"])
        except InvalidSource as exc:
            raise CommandError(str(exc)) from None

    def _add(self, options: dict[str, Any]) -> None:
        try:
            parsed = orjson.loads(options["options"])
        except orjson.JSONDecodeError as exc:
            raise CommandError(f"--options is not valid JSON: {exc}") from None
        spec = sources.SourceSpec(
            url=options["url"],
            parser=options["parser"],
            schedule=options["schedule"],
            options=parsed,
        )
        created, updated = sources.register([spec])
        verb = "added" if created else ("updated" if updated else "unchanged")
        self.stdout.write(f"{verb}: {spec.url} ({spec.parser}, {spec.schedule})")

    def _import(self, location: str) -> None:
        try:
            text = asyncio.run(sources.read_text(location))
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {location}: {exc}") from None
        except FetchError as exc:
            raise CommandError(f"cannot fetch {location}: {exc}") from None
        specs = list(sources.parse_specs(text, name=location))
        created, updated = sources.register(specs)
        unchanged = len({s.url for s in specs}) - created - updated
        self.stdout.write(
            f"imported {len(specs)} sources from {location}: "
            f"{created} new, {updated} updated, {unchanged} unchanged"
        )

    def _list(self, limit: int) -> None:
        settings = config.settings()
        # N as the live nodes see it; with none alive, as this machine's settings say.
        live = membership.cluster_size(ttl=settings.node_ttl)
        count = max(live, identity.resolve(settings).node_count)
        table = Table(title=f"sources (shards of N={count})")
        for column in ("url", "parser", "schedule", "shard", "lease", "last", "rows", "next run"):
            table.add_column(column)
        for src in Source.objects.order_by("id")[:limit]:
            lease = src.lease_owner if src.lease_owner else ""
            table.add_row(
                src.url,
                src.parser,
                src.schedule,
                str(sharding.slot_of(src.shard_hash, count)),
                lease,
                (src.last_status or "never")
                + (f": {src.last_error[:60]}" if src.last_error else ""),
                str(src.rows_loaded),
                src.next_run_at.isoformat(timespec="seconds") if src.next_run_at else "due",
            )
        Console(file=cast(IO[str], self.stdout), width=200).print(table)
        total = Source.objects.count()
        if total > limit:
            self.stdout.write(f"… {total - limit} more (use --limit)")
