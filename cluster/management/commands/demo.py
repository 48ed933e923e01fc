"""``etl demo``: embedded Postgres, the sample upstream, a node, sources imported, live view."""

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
from django.db.models import Count, Sum
from rich.console import Console
from rich.live import Live
from rich.table import Table

from etl import database
from ingest import sources
from ingest.models import Item, Observation, Quest, Source, Trade


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


def _view(node_url: str) -> Table:
    runs = Source.objects.values("last_status").annotate(n=Count("id"))
    by_status = {r["last_status"] or "never run": r["n"] for r in runs}
    table = Table(title=f"shardetl demo — GraphQL at {node_url}/graphql (Ctrl-C to stop)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for status, n in sorted(by_status.items()):
        table.add_row(f"sources {status}", str(n))
    rows = Source.objects.aggregate(rows=Sum("rows_loaded"))["rows"] or 0
    table.add_row("rows in latest runs", str(rows))
    for model in (Item, Quest, Trade, Observation):
        table.add_row(str(model._meta.verbose_name_plural), str(model.objects.count()))
    return table


class Command(BaseCommand):
    help = "Run a local demo: sample upstream + a node + its sources, with a live view."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="the node's port")
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
        node_url = f"http://127.0.0.1:{options['port']}"
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
            )
            procs.append(upstream)
            _wait_http(f"{up_url}/api/meta", time.monotonic() + 30, upstream)
            text = httpx.get(f"{up_url}/sources.jsonl", timeout=10).text
            created, updated = sources.register(sources.parse_specs(text, name="sources.jsonl"))
            console.print(f"upstream: {up_url} — {created} sources registered, {updated} updated")
            node = subprocess.Popen(
                [*cmd, "node", "--port", str(options["port"]), "--log-level", "warning"],
                env={**env, "ETL_NODE_NAME": env.get("ETL_NODE_NAME", "demo-1")},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            procs.append(node)
            _wait_http(f"{node_url}/healthz", time.monotonic() + 60, node)
            console.print(f"node: {node_url}  (status page /, GraphQL /graphql, metrics /metrics)")
            stop_at = time.monotonic() + options["seconds"] if options["seconds"] else None
            with Live(_view(node_url), console=console, refresh_per_second=1) as live:
                while stop_at is None or time.monotonic() < stop_at:
                    for proc in procs:
                        if proc.poll() is not None:
                            raise CommandError(f"{proc.args!r} exited with {proc.returncode}")
                    time.sleep(1)  # the live view's refresh period
                    live.update(_view(node_url))
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
