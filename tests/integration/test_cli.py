"""The command line as a user runs it: real ``etl`` subprocesses, real upstream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ingest.models import (
    Item,
    Observation,
    Quest,
    QuestRequirement,
    QuestReward,
    Source,
    TaskRun,
    Trade,
)
from tests.support import processes, servers, tables

pytestmark = pytest.mark.django_db(transaction=True)


def _etl(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    proc = processes.etl(*args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=timeout)
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def _meta(url: str) -> dict[str, int]:
    try:
        return httpx.get(f"{url}/api/meta", timeout=2).json()  # type: ignore[no-any-return]
    except httpx.HTTPError:
        return {}


def test_import_then_run_once_loads_what_meta_declares() -> None:
    port = servers.free_port()
    upstream = processes.etl("upstream", "--port", str(port), "--items", "10000", "--shops", "200")
    base = f"http://127.0.0.1:{port}"
    try:
        meta = processes.wait_for(lambda: _meta(base), timeout=30, what="the upstream")
        out = _etl("sources", "import", f"{base}/sources.jsonl")
        assert "new" in out
        expected_sources = meta["pages"] + 2 + meta["shops"]
        assert Source.objects.count() == expected_sources

        out = _etl("run-once")
        assert f"{expected_sources} runs" in out, out
        assert Item.objects.count() == meta["items"]
        assert Quest.objects.count() == meta["quests"]
        assert QuestRequirement.objects.filter(item__isnull=False).count() == meta["required_links"]
        assert QuestReward.objects.filter(item__isnull=False).count() == meta["reward_links"]
        assert not QuestRequirement.objects.filter(item__isnull=True).exists()
        assert Trade.objects.count() == meta["trades"]
        assert Observation.objects.count() == meta["observations"]

        # Everything due again: ETags make the second pass change nothing, parse nothing.
        before = tables.snapshot()
        Source.objects.update(next_run_at=None)
        runs_before = TaskRun.objects.count()
        _etl("run-once")
        second = TaskRun.objects.order_by("id")[runs_before:]
        statuses = {(r.source.parser, r.status) for r in second}  # type: ignore[union-attr]
        assert statuses == {
            ("items-json", "unchanged"),
            ("quests-json", "unchanged"),
            ("shop-html", "unchanged"),
            ("trades-json", "ok"),  # incremental: asked for ids above the cursor, got none
        }
        assert sum(r.rows_in for r in second) == 0
        assert tables.snapshot() == before
    finally:
        processes.stop(upstream)


@pytest.mark.embedded
def test_embedded_postgres_path(tmp_path: Path, upstream_url: str) -> None:
    """With DATABASE_URL unset the CLI runs its own PostgreSQL under ETL_VAR_DIR."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["ETL_VAR_DIR"] = str(tmp_path / "var")

    def etl(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "etl", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    etl("migrate", "-v", "0")
    assert "imported" in etl("sources", "import", f"{upstream_url}/sources.jsonl")
    out = etl("run-once", "--all-shards")
    assert "failed" not in out
    listing = etl("sources", "list")
    assert "/api/quests/" in listing
    assert (tmp_path / "var" / "pgdata" / "PG_VERSION").exists()
    # The last process using the embedded server stopped it.
    assert not (tmp_path / "var" / "pgdata" / "postmaster.pid").exists()


def test_status_shows_nodes_shards_and_runs(upstream_url: str) -> None:
    _etl("sources", "import", f"{upstream_url}/sources.jsonl")
    _etl("run-once")
    out = _etl("status")
    assert "shard sizes (slot: sources) — 0:" in out
    assert "last runs" in out
    assert "/api/quests/" in out or "/shops/" in out or "/api/items/" in out


def _consecutive_free_ports(n: int) -> int:
    import socket

    for _ in range(50):
        base = servers.free_port()
        sockets = []
        try:
            for port in range(base, base + n):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sockets.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no run of free ports")


@pytest.mark.embedded
def test_demo_runs_three_nodes_on_the_embedded_database(tmp_path: Path) -> None:
    """The README's first command, bounded: ``etl demo --seconds N`` with DATABASE_URL unset."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["ETL_VAR_DIR"] = str(tmp_path / "var")
    base = _consecutive_free_ports(4)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "demo",
            "--seconds",
            "20",
            "--port",
            str(base),
            "--upstream-port",
            str(base + 3),
            "--items",
            "300",
            "--shops",
            "5",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "shardetl demo — 3 nodes, N=3" in out
    assert f"http://127.0.0.1:{base}/graphql" in out
    assert "registered" in out
    # Everything stopped: nodes, upstream and the embedded server.
    assert not (tmp_path / "var" / "pgdata" / "postmaster.pid").exists()
    assert "demo-1" in (tmp_path / "var" / "demo.log").read_text() or "demo-1" in out


@pytest.mark.embedded
def test_embedded_server_stops_even_after_a_killed_user(tmp_path: Path) -> None:
    """A process killed with SIGKILL never deregisters; the next users forget it."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["ETL_VAR_DIR"] = str(tmp_path / "var")
    command = [sys.executable, "-m", "etl", "migrate", "-v", "0"]
    subprocess.run(command, env=env, check=True, timeout=300)
    handles = tmp_path / "var" / "pgdata" / ".handle_pids.json"
    dead = subprocess.Popen(["true"])
    dead.wait()
    handles.write_text(f"[{dead.pid}]")  # as if that process had been killed mid-way
    subprocess.run(command, env=env, check=True, timeout=300)
    assert not (tmp_path / "var" / "pgdata" / "postmaster.pid").exists()
