"""Production defaults of a real node: refuses unsafe settings, guards /admin/, leaks nothing.

The node runs with ``DJANGO_DEBUG`` off and a ``DATABASE_URL`` holding a password (a
role made for the test), ingests (one source fails on purpose, so error paths log too),
and then none of its outputs — ``/metrics``, ``/readyz``, ``/healthz``, the status page,
its logs, ``etl status`` — may contain the password or the secret key.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.db import connection

from ingest import sources
from ingest.models import Source
from tests.support import processes, servers

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "shardetl.example"
HTTPS = {"Host": HOST, "X-Forwarded-Proto": "https"}  # as the TLS-ending proxy sends it


def _production_env(**overrides: str) -> dict[str, str]:
    env = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": HOST,
    }
    return {**env, **overrides}


@pytest.mark.parametrize(
    ("missing", "command"),
    [
        pytest.param("DJANGO_SECRET_KEY", ["node"], id="etl-node-without-secret-key"),
        pytest.param("DJANGO_ALLOWED_HOSTS", ["node"], id="etl-node-without-allowed-hosts"),
        pytest.param("DJANGO_SECRET_KEY", ["uvicorn"], id="uvicorn-without-secret-key"),
    ],
)
def test_debug_off_refuses_to_start_without(missing: str, command: list[str]) -> None:
    env = _production_env(**{missing: ""})
    port = str(servers.free_port())
    if command == ["uvicorn"]:  # the same ASGI app started the other documented way
        full_env = {**os.environ, "DATABASE_URL": processes.database_url(), **env}
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "etl.asgi:application", "--port", port],
            env=full_env,
            cwd=processes.ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    else:
        proc = processes.etl(
            *command, "--port", port, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        processes.stop(proc)
    assert proc.returncode != 0
    assert f"{missing} is required when DJANGO_DEBUG is off" in out.decode()


@pytest.fixture
def role_url() -> Iterator[tuple[str, str]]:
    """A login role with a password, and the test database's URL that uses it."""
    role = f"shardetl_secret_{secrets.token_hex(4)}"
    password = f"pw-{secrets.token_hex(16)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")  # hex
    parts = urlsplit(processes.database_url())
    host = parts.netloc.rsplit("@", 1)[1]
    url = parts._replace(netloc=f"{role}:{password}@{host}").geturl()
    try:
        yield url, password
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [role],
            )
            cursor.execute(f"DROP ROLE IF EXISTS {role}")


def _get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=10, follow_redirects=False)


def _ready(base: str) -> bool:
    try:
        return _get(f"{base}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def test_production_node_guards_admin_and_reveals_no_secrets(
    role_url: tuple[str, str], upstream_url: str, tmp_path: Path
) -> None:
    url, password = role_url
    env = _production_env(DATABASE_URL=url, ETL_NODE_NAME="secure-node")
    key = env["DJANGO_SECRET_KEY"]
    text = httpx.get(f"{upstream_url}/sources.jsonl").text
    missing = {"url": f"{upstream_url}/nowhere", "parser": "json", "options": {"key": "id"}}
    specs = sources.parse_specs(text + json.dumps(missing) + "\n")
    total, _ = sources.register(specs)

    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "node.log"
    outputs: dict[str, str] = {}
    with log_path.open("wb") as log_file:
        node = processes.etl(
            "node", "--port", str(port), env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            # Probes and scrapes come by IP (kubelet, Prometheus): answered despite the host
            # check, which still guards every other path.
            processes.wait_for(lambda: _ready(base), timeout=60, what="readyz by IP")
            processes.wait_for(
                lambda: Source.objects.exclude(last_status="").count() == total,
                timeout=60,
                what="every source run once",
            )
            assert Source.objects.get(url=f"{upstream_url}/nowhere").last_status == "failed"
            with connection.cursor() as cursor:  # the node really is connected with the URL
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                    [urlsplit(url).username],
                )
                assert cursor.fetchone()[0] >= 1

            for path in ("/healthz", "/readyz", "/metrics"):
                response = _get(f"{base}{path}")
                assert response.status_code == 200, path
                outputs[path] = response.text
            assert "shardetl_rows_loaded_total" in outputs["/metrics"]
            assert 'shardetl_fetches_total{status="404"}' in outputs["/metrics"]
            assert _get(f"{base}/admin/").status_code == 400  # Host 127.0.0.1 not allowed

            admin = _get(f"{base}/admin/", **HTTPS)
            assert admin.status_code == 302
            assert admin.headers["location"] == "/admin/login/?next=/admin/"
            sources_admin = _get(f"{base}/admin/ingest/source/", **HTTPS)
            assert sources_admin.status_code == 302
            assert sources_admin.headers["location"].startswith("/admin/login/")
            login = _get(f"{base}/admin/login/", **HTTPS)
            assert login.status_code == 200
            outputs["/admin/login/"] = login.text
            page = _get(f"{base}/", **HTTPS)
            assert page.status_code == 200
            outputs["/"] = page.text

            status = processes.etl(
                "status", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            out, _ = status.communicate(timeout=60)
            assert status.returncode == 0, out.decode()
            outputs["etl status"] = out.decode()
            assert "secure-node" in outputs["etl status"]
        finally:
            code = processes.stop(node)
    assert code == 0
    outputs["node log"] = log_path.read_text()
    assert "run failed" in outputs["node log"]  # the error path logged, too

    for where, output in outputs.items():
        assert password not in output, f"the database password leaks in {where}"
        assert key not in output, f"the secret key leaks in {where}"
