"""Where the database is: ``DATABASE_URL``, or an embedded PostgreSQL under ``var/``.

With ``DATABASE_URL`` unset the project runs a real PostgreSQL of its own (the
``pgserver`` wheel ships the binaries). Every process that uses it registers itself with
pgserver, which stops the server when the last of them exits, so a demo's nodes and a
one-off ``etl sources list`` can share it safely.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dj_database_url

from etl.exceptions import ConfigError

_SUPPORTED = {"postgres", "postgresql", "pgsql", "postgis"}


def var_dir() -> Path:
    """The folder for local state (embedded database, logs): ``ETL_VAR_DIR`` or ``./var``."""
    return Path(os.environ.get("ETL_VAR_DIR") or Path.cwd() / "var").resolve()


_socket_dir: str | None = None


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without deregistering from pgserver's list of users.

    pgserver stops the server when the last process on its list exits; one killed with
    SIGKILL never leaves the list, and the server would then outlive everyone.
    """
    import psutil
    from pgserver.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if not handles.exists():
            return
        pids = json.loads(handles.read_text() or "[]")
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def embedded_socket_dir() -> str:
    """Start (or reuse) the embedded PostgreSQL once per process; return its socket dir."""
    global _socket_dir
    if _socket_dir is None:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir at import; without
            # XDG_RUNTIME_DIR (containers, CI) that warns and falls back to /tmp.
            warnings.simplefilter("ignore")
            import pgserver  # lazily: starting it is the only reason to load it

        pgdata = var_dir() / "pgdata"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        socket_dir = server.get_postmaster_info().socket_dir
        _socket_dir = str(socket_dir) if socket_dir else str(pgdata)
    return _socket_dir


def config(url: str | None) -> dict[str, Any]:
    """Django ``DATABASES['default']`` for ``url`` (or the embedded server when None)."""
    if not url:
        return {
            "ENGINE": "etl.embedded",
            "NAME": "postgres",
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "embedded",  # replaced by the socket dir when the server is up
            "PORT": "",
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"NAME": os.environ.get("ETL_TEST_DB_NAME") or None},
        }
    scheme = urlsplit(url).scheme
    if scheme not in _SUPPORTED:
        raise ConfigError(f"DATABASE_URL must be a PostgreSQL URL, not {scheme!r}")
    parsed = urlsplit(url)
    socket_host = parse_qs(parsed.query).get("host", [None])[0]
    if not parsed.hostname and socket_host:
        # postgresql://user:@/db?host=/socket/dir — dj-database-url drops the query host
        db: dict[str, Any] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.path.lstrip("/") or "postgres",
            "USER": parsed.username or "postgres",
            "PASSWORD": parsed.password or "",
            "HOST": socket_host,
            "PORT": "",
        }
    else:
        db = dict(dj_database_url.parse(url))
        db["ENGINE"] = "django.db.backends.postgresql"
    db.setdefault("OPTIONS", {})
    # 0: under ASGI each request runs on a thread of its own, so a kept connection would
    # outlive its thread. The ingest threads keep theirs (etl.db).
    db["CONN_MAX_AGE"] = int(os.environ.get("ETL_CONN_MAX_AGE", "0"))
    db["CONN_HEALTH_CHECKS"] = True
    db["TEST"] = {"NAME": os.environ.get("ETL_TEST_DB_NAME") or None}
    return db
