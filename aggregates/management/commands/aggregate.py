"""``etl aggregate [--full]``: one aggregation pass, the same job a node's cron runs."""

from __future__ import annotations

import asyncio
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from aggregates import aggregation
from cluster import jobs, runtime
from etl import config, node


async def _run(name: str) -> jobs.JobReport:
    # Recorded, counted and notified as the in-node job is.
    hooks = runtime.Hooks()
    node.notifications(hooks, node=config.settings().node_name)
    for service in hooks.started:
        await service()
    try:
        return await jobs.run(name, node=config.settings().node_name, hooks=hooks.job_finished)
    finally:
        for service in hooks.stopped:
            await service()


class Command(BaseCommand):
    help = "Recompute ItemStats: the items whose observations changed, or all with --full."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--full", action="store_true", help="recompute every item")

    def handle(self, *args: Any, **options: Any) -> None:
        report = asyncio.run(_run(jobs.AGGREGATE_FULL if options["full"] else jobs.AGGREGATE))
        result = report.result
        assert isinstance(result, aggregation.PassResult)
        if not result.ran:
            self.stdout.write(result.reason)
            return
        self.stdout.write(
            f"{result.mode} pass: {result.items} items recomputed, {result.changed} stats "
            f"written, {result.removed} removed in {result.seconds * 1000:.0f} ms"
        )
