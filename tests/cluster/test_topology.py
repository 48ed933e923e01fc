"""Nodes started exactly as the StatefulSet and the compose file start them form one cluster.

Command lines and environments come from k8s/ and deploy/ (tests/deploy/specs.py reads
them as the kubelet and Compose do). Only what a laptop cannot be is substituted: the
database is the test database, a container's ``0.0.0.0:8000`` is ``127.0.0.1`` on a free
port, an emptyDir is a temporary directory, the pod IP is 127.0.0.1, and heartbeats and
leases are short so that the test does not wait on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cluster import sharding
from ingest.models import Source, TaskRun
from tests.cluster.conftest import Cluster, all_done, fetch_counts, register
from tests.deploy import specs
from tests.support import processes, servers

# As tests/cluster/test_cluster.py does: a short TTL and lease, nothing else changed.
TEST_ENV = {"ETL_NODE_TTL": "3", "ETL_LEASE_SECONDS": "6"}


class Launcher:
    """Runs the image's command lines as local processes, one scratch dir per container."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.image_env = specs.dockerfile_stages()[-1].env

    def env(self, name: str, container_env: dict[str, str], *, hostname: str) -> dict[str, str]:
        scratch = self.tmp / name
        scratch.mkdir()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(scratch),
            **self.image_env,
            "ETL_VAR_DIR": str(scratch),  # the emptyDir (k8s) or the image's own dir
            "HOSTNAME": hostname,
            **container_env,
            **TEST_ENV,
        }
        if "DATABASE_URL" in container_env:  # the sample upstream has none, needs none
            env["DATABASE_URL"] = processes.database_url()
        return env

    def argv(self, args: list[str], port: int | None = None) -> list[str]:
        argv = specs.image_argv(args)
        assert argv[0] == "etl"  # the console script is `python -m etl`
        argv = [sys.executable, "-m", "etl", *argv[1:]]
        if port is not None:
            argv = specs.with_option(argv, "--host", "127.0.0.1")
            argv = specs.with_option(argv, "--port", str(port))
        return argv

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def run(self, name: str, args: list[str], env: dict[str, str]) -> str:
        """A one-shot container (migrate, sources import): must exit 0."""
        result = subprocess.run(
            self.argv(args),
            env=env,
            cwd=env["HOME"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        return result.stdout

    def start(
        self, name: str, args: list[str], env: dict[str, str]
    ) -> tuple[subprocess.Popen[bytes], int]:
        port = servers.free_port()
        with self.log(name).open("wb") as log:
            proc = subprocess.Popen(
                self.argv(args, port),
                env=env,
                cwd=env["HOME"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return proc, port


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    yield Launcher(tmp_path)
    # pytest shows a test's captured output only when it fails: the nodes' last words.
    for log in sorted(tmp_path.glob("*.log")):
        sys.stderr.write(f"--- {log.name}\n" + "\n".join(_tail(log)) + "\n")


def _tail(path: Path, lines: int = 15) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:]


def _formed(cluster: Cluster, names: list[str], n: int) -> dict[str, dict[str, Any]]:
    """Wait until every node is ready, agrees on N = n, and the slots are 0..n-1."""

    def check() -> dict[str, dict[str, Any]]:
        answers = {}
        for name in names:
            proc = cluster.nodes[name][0]
            assert proc.poll() is None, f"{name} exited with {proc.returncode}"
            status, body = cluster.readyz(name)
            if status != 200 or body.get("node_count") != n:
                return {}
            answers[name] = body
        slots = sorted(body["slot"] for body in answers.values())
        return answers if slots == list(range(n)) else {}

    return processes.wait_for(check, timeout=90, what=f"{n} nodes to agree on N={n}")


def _graphql_counts(url: str) -> dict[str, int]:
    response = httpx.post(
        f"{url}/graphql", json={"query": "{ counts { items sources } }"}, timeout=30
    )
    assert response.status_code == 200, response.text  # plain HTTP, no redirect
    counts: dict[str, int] = response.json()["data"]["counts"]
    return counts


@pytest.mark.timeout(300)
def test_statefulset_pods_form_one_cluster(
    cluster: Cluster, launcher: Launcher, upstream_url: str
) -> None:
    sts = specs.k8s_find("StatefulSet", "shardetl")
    n = sts["spec"]["replicas"]
    pod = specs.pod_template(sts)["spec"]
    (init,) = pod["initContainers"]
    (node,) = pod["containers"]
    secret = {
        "DATABASE_URL": "(replaced by the test database)",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
    }

    def env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
        return launcher.env(
            f"{pod_name}-{container['name']}",
            specs.k8s_container_env(
                container,
                fields={
                    "metadata.name": pod_name,
                    "metadata.namespace": "default",
                    "status.podIP": "127.0.0.1",
                },
                config_maps=specs.k8s_config_maps(),
                secrets={"shardetl": secret},
            ),
            hostname=pod_name,
        )

    total = register(upstream_url)
    pods = [f"{sts['metadata']['name']}-{i}" for i in range(n)]
    # The init container: the schema is migrated, so `migrate --check` lets the pod start.
    launcher.run(f"{pods[0]}-init", init["args"], env(init, pods[0]))
    for name in pods:
        cluster.nodes[name] = launcher.start(name, node["args"], env(node, name))

    answers = _formed(cluster, pods, n)
    assert {name: body["slot"] for name, body in answers.items()} == {
        name: i for i, name in enumerate(pods)
    }  # the slot is the pod's ordinal
    for name in pods:  # the kubelet's probes, addressed to the pod IP as the kubelet does
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = node[probe]["httpGet"]["path"]
            assert httpx.get(cluster.url(name) + path, timeout=5).status_code == 200

    processes.wait_for(all_done(total), timeout=150, what="every source loaded")
    assert _graphql_counts(cluster.url(pods[-1]))["sources"] == total
    assert cluster.stop_all() == dict.fromkeys(pods, 0)  # SIGTERM: drained, exit 0
    counts = fetch_counts(upstream_url)

    assert len(counts) == total
    assert set(counts.values()) == {1}
    runs = TaskRun.objects.filter(source__isnull=False).select_related("source")
    # ETL_NODE_NAME = pod; each pod ran its shard (the URLs carry a random port, so with
    # this small upstream a shard can be empty: the set is computed, not assumed).
    owners = {
        pods[sharding.slot_of(sharding.stable_hash(url), n)]
        for url in Source.objects.values_list("url", flat=True)
    }
    assert Counter(run.node for run in runs).keys() == owners
    for run in runs:
        assert sharding.slot_of(sharding.stable_hash(run.source.url), n) == pods.index(run.node)  # type: ignore[union-attr]
    assert not Source.objects.exclude(lease_owner="").exists()


def _split(path: str) -> tuple[str, set[tuple[str, str]]]:
    parts = urllib.parse.urlsplit(path)
    return parts.path, set(urllib.parse.parse_qsl(parts.query))


def _healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, pointed at a local node's port."""
    healthcheck = specs.dockerfile_stages()[-1].last("HEALTHCHECK") or ""
    argv = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert argv[0] == "python"
    code = argv[2].replace("127.0.0.1:8000/", f"127.0.0.1:{port}/")
    assert code != argv[2]
    return subprocess.run(
        [sys.executable, argv[1], code], capture_output=True, text=True, timeout=10, check=False
    )


@contextlib.contextmanager
def _process(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(300)
def test_compose_services_form_one_cluster(cluster: Cluster, launcher: Launcher) -> None:
    variables = {
        **specs.dotenv(),  # deploy/.env.example, with its empty secrets filled in
        "POSTGRES_PASSWORD": secrets.token_hex(12),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
    }
    services = specs.compose(variables)["services"]
    n = services["node"]["deploy"]["replicas"]

    def env(service: str, name: str | None = None) -> dict[str, str]:
        # A container's hostname is its id: unique, meaningless.
        container = specs.compose_env(services[service])
        return launcher.env(name or service, container, hostname=secrets.token_hex(6))

    # The order `depends_on` imposes: migrate, then the nodes; the upstream, then sources.
    launcher.run("migrate", services["migrate"]["command"], env("migrate"))
    upstream, up_port = launcher.start("upstream", services["upstream"]["command"], env("upstream"))
    with _process(upstream):
        up_url = f"http://127.0.0.1:{up_port}"

        def upstream_answers() -> bool:
            assert upstream.poll() is None, f"upstream exited with {upstream.returncode}"
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{up_url}/api/meta", timeout=2).status_code == 200
            return False

        processes.wait_for(upstream_answers, timeout=30, what="the upstream")
        in_compose = f"http://upstream:{specs.option(services['upstream']['command'], '--port')}"
        command = [arg.replace(in_compose, up_url) for arg in services["sources"]["command"]]
        assert command != services["sources"]["command"]
        out = launcher.run("sources", command, env("sources"))
        total = Source.objects.count()
        assert f"imported {total} sources" in out
        assert total > 0

        names = [f"node-{i + 1}" for i in range(n)]  # as `docker compose` names replicas
        node_names = set()
        for name in names:
            node_env = env("node", name)
            cluster.nodes[name] = launcher.start(name, services["node"]["command"], node_env)
            # ETL_NODE_NAME is unset in compose: hostname-pid, unique per container.
            node_names.add(f"{node_env['HOSTNAME']}-{cluster.nodes[name][0].pid}")
        _formed(cluster, names, n)
        for name in names:
            result = _healthcheck(cluster.nodes[name][1])
            assert result.returncode == 0, result.stderr

        processes.wait_for(all_done(total), timeout=150, what="every source loaded")
        assert _graphql_counts(cluster.url(names[0]))["sources"] == total
        assert cluster.stop_all() == dict.fromkeys(names, 0)
        counts = fetch_counts(up_url)
        assert processes.stop(upstream) == 0

    # Every imported source was fetched from this upstream (trades-json adds ?since=).
    fetched = [_split(path) for path in counts]
    for url in Source.objects.values_list("url", flat=True):
        path, query = _split(url.removeprefix(up_url))
        assert any(path == p and query <= q for p, q in fetched), url
    by_node = set(TaskRun.objects.exclude(source=None).values_list("node", flat=True))
    assert by_node
    assert by_node <= node_names
