"""A cluster of real ``etl node`` subprocesses against the test database."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ingest import sources
from ingest.models import Source
from tests.support import processes, servers

YEARLY = "0 0 1 1 *"  # far away: within a test, a source is due once, when it is new


@dataclass
class Cluster:
    """Starts nodes, remembers them, stops them all at the end of the test."""

    nodes: dict[str, tuple[subprocess.Popen[bytes], int]] = field(default_factory=dict)

    def start(self, name: str, **env: str) -> str:
        port = servers.free_port()
        proc = processes.etl(
            "node",
            "--port",
            str(port),
            "--log-level",
            "warning",
            env={"ETL_NODE_NAME": name, "ETL_HTTP_CONCURRENCY": "4", **env},
        )
        self.nodes[name] = (proc, port)
        return f"http://127.0.0.1:{port}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.nodes[name][1]}"

    def readyz(self, name: str) -> tuple[int, dict[str, Any]]:
        try:
            response = httpx.get(f"{self.url(name)}/readyz", timeout=2)
        except httpx.HTTPError:
            return 0, {}
        return response.status_code, response.json()

    def wait_started(self, name: str, *, ready: bool = True) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            proc = self.nodes[name][0]
            assert proc.poll() is None, f"{name} exited with {proc.returncode}"
            status, body = self.readyz(name)
            placed = body.get("runtime") and body.get("slot") is not None
            return body if placed and (not ready or status == 200) else None

        return processes.wait_for(check, timeout=60, what=f"{name} to start")

    def stop(self, name: str) -> int:
        proc, _ = self.nodes.pop(name)
        return processes.stop(proc, timeout=20)

    def stop_all(self) -> dict[str, int]:
        return {name: self.stop(name) for name in list(self.nodes)}


@pytest.fixture
def cluster(transactional_db: None) -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        for proc, _ in c.nodes.values():
            proc.kill()
            proc.wait()


def register(upstream: str, *, schedule: str = YEARLY) -> int:
    """Import the upstream's sources, each due once (yearly schedule)."""
    text = httpx.get(f"{upstream}/sources.jsonl").text
    created, _ = sources.register(sources.parse_specs(text))
    Source.objects.update(schedule=schedule)
    return created


def fetch_counts(upstream: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{upstream}/_upstream/requests").json()
    return {p: n for p, n in counts.items() if p not in ("/sources.jsonl", "/api/meta")}


def all_done(total: int) -> Callable[[], bool]:
    return lambda: Source.objects.filter(last_status__in=("ok", "unchanged")).count() == total
