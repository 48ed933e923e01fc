"""Cluster scaling: sources/s with 1, 2 and 3 real nodes against a 50 ms upstream.

    python bench/cluster.py [--shops 600] [--latency-ms 50] [--concurrency 8] [--quick]

For each N the same shop pages are registered (disabled), N ``etl node`` processes
start in static mode (slot i of N) and become ready, then every source is enabled at
once and the time until all are loaded is measured. The baseline for N nodes is N × the
1-node rate, so the ratio is the scaling efficiency (target ≥ 0.85 for this I/O-bound
case). The upstream runs as its own process (``etl upstream --latency-ms``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = _common.Deadline(seconds, what)
    while not predicate():  # type: ignore[operator]
        deadline.check()
        time.sleep(0.05)  # polling a subprocess's state, bounded by the deadline


def _get(url: str) -> int:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _register(base: str, shops: int) -> int:
    from cluster import sharding
    from ingest.models import Source

    _common.execute(
        "TRUNCATE ingest_observation, ingest_item, ingest_source, cluster_taskrun, cluster_node,"
        " aggregates_itemstats, aggregates_statdelta RESTART IDENTITY CASCADE"
    )
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


def _run(n: int, base: str, shops: int, concurrency: int) -> float:
    from ingest.models import Source

    total = _register(base, shops)
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "ETL_NODE_COUNT": str(n),
        "ETL_HTTP_CONCURRENCY": str(concurrency),
        "ETL_PER_HOST_CONCURRENCY": str(concurrency),
        "ETL_PARSE_WORKERS": "1",
        "ETL_LOG_LEVEL": "WARNING",
    }
    nodes = []
    try:
        for slot in range(n):
            port = _free_port()
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
            _wait(
                lambda port=port: _get(f"http://127.0.0.1:{port}/readyz") == 200, 120, "node start"
            )
        started = time.perf_counter()
        Source.objects.update(enabled=True)
        _wait(
            lambda: Source.objects.filter(last_status="ok").count() == total,
            600,
            f"{total} sources on {n} node(s)",
        )
        return total / (time.perf_counter() - started)
    finally:
        for proc, _ in nodes:
            proc.terminate()
        for proc, _ in nodes:
            proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", type=int, default=600)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8, help="ETL_HTTP_CONCURRENCY")
    parser.add_argument("--quick", action="store_true", help="200 shops")
    opts = parser.parse_args()
    if opts.quick:
        opts.shops = 200
    db = _common.bench_database()
    _common.setup_django(db)
    port = _free_port()
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "etl",
            "upstream",
            "--port",
            str(port),
            "--items",
            "2000",
            "--shops",
            str(opts.shops),
            "--latency-ms",
            str(opts.latency_ms),
        ],
        cwd=_common.ROOT,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _get(f"{base}/api/meta") == 200, 60, "the upstream")
        rates = {n: _run(n, base, opts.shops, opts.concurrency) for n in (1, 2, 3)}
    finally:
        upstream.terminate()
        upstream.wait(timeout=30)
    rows: list[_common.Row | str] = [
        f"{opts.shops} shop pages, upstream latency {opts.latency_ms} ms, "
        f"{opts.concurrency} requests in flight per node",
        *(
            _common.Row(
                what=f"{n} node{'s' if n > 1 else ''}",
                ours=rates[n],
                baseline=n * rates[1],
                unit="sources/s",
                note="baseline: N × the 1-node rate; ratio = scaling efficiency",
            )
            for n in (1, 2, 3)
        ),
    ]
    _common.print_report(
        "bench/cluster.py",
        [
            f"$ {_common.command_line()}",
            f"{_common.server_version()} ({db.label}); {_common.machine()}",
        ],
        rows,
        ["target: efficiency ≥ 0.85 with 3 nodes (I/O-bound: the upstream's latency dominates)"],
    )


if __name__ == "__main__":
    main()
