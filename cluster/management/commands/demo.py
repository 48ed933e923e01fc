"""``etl demo``: embedded Postgres, the sample upstream, 3 local nodes, sources imported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from typing import IO, Any, cast

import httpx
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from aggregates.models import ItemStats
from cluster import status
from etl import config, database
from ingest import sources
from ingest.models import Item, Observation, Quest, Trade


def _wait_http(url: str, deadline: float, proc: subprocess.Popen[bytes]) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling a child's readiness, bounded by the deadline
    raise CommandError(f"{url} did not answer in time")


def _view(node_urls: list[str], ttl: float) -> Group:
    snapshot = status.collect(ttl=ttl, runs=0, failing=3)
    nodes = Table(title=f"shardetl demo — {len(node_urls)} nodes, N={snapshot.node_count}")
    for column in ("node", "slot", "sources owned", "fetches/s", "rows/min", "errors/min", "alive"):
        nodes.add_column(column, justify="right")
    for node in snapshot.nodes:
        owned = snapshot.shard_sizes.get(node.slot, 0) if node.slot is not None else 0
        nodes.add_row(
            node.name,
            "-" if node.slot is None else str(node.slot),
            str(owned),
            f"{node.runs_last_minute / 60:.1f}",
            str(node.rows_last_minute),
            str(node.errors_last_minute),
            "yes" if node.alive else "NO",
        )
    totals = Table(title="loaded")
    totals.add_column("what")
    totals.add_column("rows", justify="right")
    for model in (Item, Quest, Trade, Observation, ItemStats):
        totals.add_row(str(model._meta.verbose_name_plural), str(model.objects.count()))
    lines = [
        f"sources: {snapshot.sources} registered, {snapshot.due} due, "
        f"{snapshot.failing_total} failing",
        f"GraphQL: {node_urls[0]}/graphql — any node answers: {', '.join(node_urls)}",
        "Ctrl-C stops everything",
    ]
    return Group(nodes, totals, *lines)


class Command(BaseCommand):
    help = "Run a local demo: sample upstream + 3 nodes (dynamic membership) + a live view."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="the first node's port")
        parser.add_argument("--nodes", type=int, default=3, help="local nodes to start")
        parser.add_argument("--upstream-port", type=int, default=8800)
        parser.add_argument("--items", type=int, default=2000)
        parser.add_argument("--shops", type=int, default=40)
        parser.add_argument("--seconds", type=float, default=0, help="stop after this long")

    def handle(self, *args: Any, **options: Any) -> None:
        console = Console(file=cast(IO[str], self.stdout))
        call_command("migrate", verbosity=0)
        where = (
            "embedded PostgreSQL in " + str(database.var_dir())
            if not os.environ.get("DATABASE_URL")
            else "DATABASE_URL"
        )
        console.print(f"database: {where}")
        env = {**os.environ, "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "1")}
        up_url = f"http://127.0.0.1:{options['upstream_port']}"
        cmd = [sys.executable, "-m", "etl"]
        procs: list[subprocess.Popen[bytes]] = []
        log_path = database.var_dir() / "demo.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        console.print(f"logs: {log_path}")
        try:
            upstream = subprocess.Popen(
                [
                    *cmd,
                    "upstream",
                    "--port",
                    str(options["upstream_port"]),
                    "--items",
                    str(options["items"]),
                    "--shops",
                    str(options["shops"]),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Ctrl-C reaches the demo only; it stops the nodes, then the upstream.
                start_new_session=True,
            )
            procs.append(upstream)
            _wait_http(f"{up_url}/api/meta", time.monotonic() + 30, upstream)
            text = httpx.get(f"{up_url}/sources.jsonl", timeout=10).text
            created, updated = sources.register(sources.parse_specs(text, name="sources.jsonl"))
            console.print(f"upstream: {up_url} — {created} sources registered, {updated} updated")
            node_urls = []
            nodes = []
            for i in range(options["nodes"]):
                port = options["port"] + i
                node = subprocess.Popen(
                    [*cmd, "node", "--port", str(port), "--log-level", "warning"],
                    env={**env, "ETL_NODE_NAME": f"demo-{i + 1}", "ETL_MEMBERSHIP": "dynamic"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                procs.append(node)
                nodes.append((node, f"http://127.0.0.1:{port}"))
            for node, url in nodes:
                _wait_http(f"{url}/healthz", time.monotonic() + 90, node)
                node_urls.append(url)
            console.print(
                f"nodes: {', '.join(node_urls)}  (status page /, GraphQL /graphql, /metrics)"
            )
            ttl = config.settings().node_ttl
            stop_at = time.monotonic() + options["seconds"] if options["seconds"] else None
            with Live(_view(node_urls, ttl), console=console, refresh_per_second=1) as live:
                while stop_at is None or time.monotonic() < stop_at:
                    for proc in procs:
                        if proc.poll() is not None:
                            raise CommandError(f"{proc.args!r} exited with {proc.returncode}")
                    time.sleep(1)  # the live view's refresh period
                    live.update(_view(node_urls, ttl))
        except KeyboardInterrupt:
            console.print("stopping…")
        finally:
            # Nodes first (they drain against a live upstream), then the upstream.
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()
