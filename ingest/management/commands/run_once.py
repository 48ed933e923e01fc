"""``etl run-once [--all-shards]``: fetch every due source of this node's shard, then exit."""

from __future__ import annotations

import asyncio
from argparse import ArgumentParser
from typing import IO, Any, cast

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cluster import batch, identity, membership
from etl import config
from ingest import runs


class Command(BaseCommand):
    help = "Fetch every due source of this node's shard now, with a progress bar, then exit."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--all-shards", action="store_true", help="ignore sharding")

    def handle(self, *args: Any, **options: Any) -> None:
        settings = config.settings()
        ident = identity.resolve(settings)
        # Dynamic slots exist only while nodes heartbeat; a one-shot pass takes everything
        # (leases still keep it from fetching what a running node is fetching).
        view: membership.Ownership = (
            membership.Everything()
            if options["all_shards"] or ident.mode == "dynamic"
            else membership.Static(slot=ident.slot, count=ident.node_count, ttl=settings.node_ttl)
        )
        console = Console(file=cast(IO[str], self.stdout))
        total = batch.count_due(view)
        with Progress(
            TextColumn("[bold]run-once"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]} rows"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("sources", total=total, rows=0)

            def done(url: str, tally: runs.RunTally) -> None:
                rows = progress.tasks[0].fields["rows"] + tally.rows_in
                # Incremental sources can run more than the initial due count.
                total_now = max(progress.tasks[0].total or 0, progress.tasks[0].completed + 1)
                progress.update(task, advance=1, rows=rows, total=total_now)

            summary = asyncio.run(batch.run_due(settings, view, on_done=done))
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(summary.by_status.items()))
        self.stdout.write(
            f"{summary.runs} runs ({statuses or 'nothing due'}); "
            f"{summary.rows_in} rows loaded, {summary.rows_rejected} rejected"
        )
        for url, error in summary.failures[:20]:
            self.stdout.write(f"  failed {url}: {error}")
        if summary.failures:
            raise CommandError(f"{len(summary.failures)} source(s) failed")
