"""Real ``etl`` subprocesses for tests, pointed at the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """A URL for the database the tests use (pytest-django's test database)."""
    from django.db import connection

    from etl import database

    s = connection.settings_dict
    user = quote(s["USER"] or "postgres")
    password = quote(s["PASSWORD"] or "")
    host = s["HOST"] or "127.0.0.1"
    if s["ENGINE"] == "etl.embedded":
        host = database.embedded_socket_dir()
    if host.startswith("/"):
        return f"postgresql://{user}:{password}@/{s['NAME']}?host={host}"
    return f"postgresql://{user}:{password}@{host}:{s['PORT'] or 5432}/{s['NAME']}"


def etl(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[bytes]:
    """Start ``python -m etl ARGS`` against the test database."""
    full_env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_DEBUG": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "etl", *args], env=full_env, cwd=ROOT, **kwargs)  # type: ignore[call-overload,no-any-return]


def wait_for(predicate: Callable[[], T], *, timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 20) -> int:
    """SIGTERM and wait; kill and fail if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args!r} did not exit within {timeout}s of SIGTERM") from None


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces, so split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
