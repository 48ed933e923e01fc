"""Cluster scaling: sources/s with 1, 2 and 3 real nodes against a 50 ms upstream.

    python bench/cluster.py [--shops 1200] [--latency-ms 50] [--concurrency 2 4 8] [--quick]

For each N the same shop pages are registered (disabled), N ``etl node`` processes
start in static mode (slot i of N) and become ready, then every source is enabled at
once. The rate is the sources loaded over the window from the first claim to the last
finished run, both on the database's clock (so a node noticing the work up to one tick
late is not counted against it). The baseline for N nodes is N × the 1-node rate, so the
ratio is the scaling efficiency (target ≥ 0.85 for this I/O-bound case). It runs once
per ``--concurrency`` (requests in flight per node): by default 2, where this case stays
I/O-bound on a 2-core machine with three nodes, then 4 and 8, where three nodes (with
the upstream and PostgreSQL) use up its cores and the ratio shows that instead.

Every process here (the upstream, PostgreSQL, N nodes and their parse workers) shares
this machine's cores, so each row also prints how busy the machine was and the CPU the
nodes spent per source: when the machine is near 100 % the case has stopped being
I/O-bound and the ratio measures the cores, not the cluster.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common


def _register(base: str, shops: int) -> int:
    from cluster import sharding
    from ingest.models import Source

    _common.reset_tables()
    Source.objects.bulk_create(
        Source(
            url=url,
            parser="shop-html",
            schedule="0 0 1 1 *",
            shard_hash=sharding.stable_hash(url),
            enabled=False,
        )
        for url in (f"{base}/shops/{n}.html" for n in range(1, shops + 1))
    )
    return shops


def _run(n: int, base: str, shops: int, concurrency: int) -> Measured:
    from django.db.models import Max, Min

    from ingest.models import Source, TaskRun
    from tests.support import servers

    total = _register(base, shops)
    env = {
        **os.environ,
        # As in production: DEBUG off (with it on, Django keeps every query it runs).
        "DJANGO_DEBUG": "",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "ETL_NODE_COUNT": str(n),
        "ETL_HTTP_CONCURRENCY": str(concurrency),
        "ETL_PER_HOST_CONCURRENCY": str(concurrency),
        "ETL_PARSE_WORKERS": "1",
        "ETL_LOG_LEVEL": "WARNING",
    }
    nodes = []
    try:
        for slot in range(n):
            port = servers.free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "etl",
                    "node",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env={**env, "ETL_SERVER_ID": str(slot), "ETL_NODE_NAME": f"bench-{slot}"},
                cwd=_common.ROOT,
            )
            nodes.append((proc, port))
        for _proc, port in nodes:
            _common.wait_until(
                lambda port=port: _common.answers(f"http://127.0.0.1:{port}/readyz"),
                _common.Deadline(120, "node start"),
            )
        pids = [proc.pid for proc, _ in nodes]
        busy, cpu_before = _Busy(), _tree_cpu(pids)
        Source.objects.update(enabled=True)
        _common.wait_until(
            lambda: Source.objects.filter(last_status="ok").count() == total,
            _common.Deadline(600, f"{total} sources on {n} node(s)"),
        )
        machine, node_cpu = busy.share(), _tree_cpu(pids) - cpu_before
    finally:
        for proc, _ in nodes:
            proc.terminate()
        for proc, _ in nodes:
            proc.wait(timeout=60)
    window = TaskRun.objects.filter(job__startswith="source:").aggregate(
        first=Min("started_at"), last=Max("finished_at")
    )
    seconds = (window["last"] - window["first"]).total_seconds()
    return Measured(rate=total / seconds, machine=machine, node_ms=1000 * node_cpu / total)


@dataclass(frozen=True, slots=True)
class Measured:
    rate: float  # sources/s over the window from the first claim to the last finish
    machine: float  # share of all cores busy (every process) while the nodes worked
    node_ms: float  # CPU of the nodes and their parse workers per source


def _tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by ``roots`` and their live descendants (Linux /proc)."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, seconds)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, frontier = set(roots), list(roots)
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(stats[pid][1] for pid in tree if pid in stats)


class _Busy:
    """Share of the machine's CPU time spent busy since creation (Linux /proc/stat)."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    def share(self) -> float:
        busy, total = self._read()
        return (busy - self.start[0]) / max(1, total - self.start[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", type=int, default=1200)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[2, 4, 8],
        help="ETL_HTTP_CONCURRENCY (requests in flight per node); one table part each",
    )
    parser.add_argument("--quick", action="store_true", help="300 shops")
    opts = parser.parse_args()
    if opts.quick:
        opts.shops = 300
    db = _common.bench_database()
    _common.setup_django(db)
    from upstream import UpstreamConfig

    config = UpstreamConfig(items=2000, shops=opts.shops, latency_ms=opts.latency_ms)
    with _common.upstream(config, startup=60) as base:
        runs = {
            concurrency: {n: _run(n, base, opts.shops, concurrency) for n in (1, 2, 3)}
            for concurrency in opts.concurrency
        }
    rows: list[_common.Row | str] = []
    for concurrency, rates in runs.items():
        rows.append(
            f"{opts.shops} shop pages, upstream latency {opts.latency_ms} ms, "
            f"{concurrency} requests in flight per node"
        )
        rows.extend(
            _common.Row(
                what=f"{n} node{'s' if n > 1 else ''}",
                ours=rates[n].rate,
                baseline=n * rates[1].rate,
                unit="sources/s",
                note=f"machine {rates[n].machine:.0%} busy; nodes {rates[n].node_ms:.1f} ms"
                " CPU/source",
            )
            for n in (1, 2, 3)
        )
    _common.print_report(
        "bench/cluster.py",
        [
            f"$ {_common.command_line()}",
            f"{_common.server_version()} ({db.label}); {_common.machine()}",
        ],
        rows,
        [
            "baseline: N × the 1-node rate, so the ratio is the scaling efficiency; target ≥ 0.85"
            " with 3 nodes while the case is I/O-bound (the upstream's latency dominates)",
            "machine: busy share of all cores, every process included (upstream, PostgreSQL,"
            " nodes); nodes: CPU of the node processes and their parse workers per source",
        ],
    )


if __name__ == "__main__":
    main()
