"""``etl status``: nodes, slots, shard sizes, due/overdue sources and the last runs."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import IO, Any, cast

from django.core.management.base import BaseCommand
from rich.console import Console
from rich.table import Table

from cluster import status
from etl import config


def _nodes(snapshot: status.ClusterStatus) -> Table:
    table = Table(title=f"nodes (N={snapshot.node_count})")
    for column in (
        "name",
        "mode",
        "slot",
        "N",
        "heartbeat",
        "alive",
        "runs/min",
        "rows/min",
        "errors/min",
    ):
        table.add_column(column)
    for node in snapshot.nodes:
        table.add_row(
            node.name,
            node.mode,
            "-" if node.slot is None else str(node.slot),
            "-" if node.node_count is None else str(node.node_count),
            f"{node.heartbeat_age:.1f}s ago",
            "yes" if node.alive else "NO",
            str(node.runs_last_minute),
            str(node.rows_last_minute),
            str(node.errors_last_minute),
        )
    return table


def _runs(snapshot: status.ClusterStatus) -> Table:
    table = Table(title="last runs")
    for column in ("started", "node", "job / source", "status", "rows", "error"):
        table.add_column(column)
    for run in snapshot.last_runs:
        table.add_row(
            run.started_at.strftime("%H:%M:%S"),
            run.node,
            run.source.url if run.source else run.job,
            run.status,
            str(run.rows_in),
            run.error[:60],
        )
    return table


class Command(BaseCommand):
    help = "Nodes, slots, shard sizes, due/overdue sources and the last runs."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--runs", type=int, default=10)

    def handle(self, *args: Any, **options: Any) -> None:
        snapshot = status.collect(ttl=config.settings().node_ttl, runs=options["runs"])
        console = Console(file=cast(IO[str], self.stdout), width=160)
        console.print(_nodes(snapshot))
        sizes = ", ".join(f"{slot}: {size}" for slot, size in snapshot.shard_sizes.items())
        console.print(f"shard sizes (slot: sources) — {sizes or 'no sources'}")
        console.print(
            f"sources: {snapshot.sources} registered, {snapshot.due} due, "
            f"{snapshot.overdue} overdue (> {status.OVERDUE_AFTER}), "
            f"{snapshot.failing_total} failing"
        )
        for url, error, times in snapshot.failing:
            console.print(f"  failing x{times}: {url} — {error[:100]}")
        console.print(_runs(snapshot))
