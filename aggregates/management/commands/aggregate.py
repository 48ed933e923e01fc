"""``etl aggregate [--full]``: one aggregation pass, recorded as a TaskRun."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from aggregates import aggregation, jobs
from etl.config import Settings
from ingest import runs


class Command(BaseCommand):
    help = "Recompute ItemStats: the items whose observations changed, or all with --full."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--full", action="store_true", help="recompute every item")

    def handle(self, *args: Any, **options: Any) -> None:
        node = Settings.from_env().node_name
        run_id = runs.start(node=node, job="aggregate")
        result = aggregation.run_pass(full=options["full"])
        runs.finish(run_id, jobs.tally(result))
        if not result.ran:
            self.stdout.write(result.reason)
            return
        self.stdout.write(
            f"{result.mode} pass: {result.items} items recomputed, {result.changed} stats "
            f"written, {result.removed} removed in {result.seconds * 1000:.0f} ms"
        )
