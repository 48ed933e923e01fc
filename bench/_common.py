"""Shared helpers for the benchmarks in ``bench/``: a dedicated database, timing, output.

Every benchmark prints our figure beside a baseline measured in the same process and
run, as a ratio; absolute numbers from another day or machine are never compared.

Benchmarks never touch a database that may hold user data: they create (if missing) and
use ``shardetl_bench`` on the ``DATABASE_URL`` server, or on the project's embedded
PostgreSQL when ``DATABASE_URL`` is unset. Benchmarks sharing it take turns (a session
advisory lock held until exit), since each truncates its tables.

A benchmark script starts with ``sys.path.insert(0, <repository root>)``: running
``python bench/ingest.py`` puts ``bench/`` first on ``sys.path``, where ``bench/ingest.py``
would shadow the ``ingest`` package (and ``tests.support`` would not be importable).
Project modules are imported inside functions, after :func:`setup_django`: the parse
pool's children re-import the script as ``__mp_main__`` and must not need Django.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "shardetl_bench"


@dataclass(frozen=True, slots=True, kw_only=True)
class Database:
    url: str  # the bench database, as given to Django
    label: str  # where it is, without credentials, for the header
    embedded: bool


def _with_path(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _label(url: str) -> str:
    parts = urlsplit(url)
    if parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.hostname}{port}{parts.path}"
    socket_dir = parse_qs(parts.query).get("host", ["?"])[0]
    return f"{parts.path.lstrip('/')} via the unix socket in {socket_dir}"


def _create_if_missing(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    candidates = [server_url, _with_path(server_url, "postgres")]
    last: Exception | None = None
    for url in candidates:
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:  # e.g. the URL's own database is missing
            last = exc
            continue
        with conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if row is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return
    raise RuntimeError(f"cannot reach the PostgreSQL server of {_label(server_url)}: {last}")


# Held for the life of the process: two benchmarks sharing the database would truncate each
# other's tables (and skew each other's figures), so they take turns.
_LOCK_KEY = 0x5348_4152_4442  # "SHARDB"
_lock_holder: list[Any] = []


def _take_turn(url: str, wait: float) -> None:
    import psycopg

    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    deadline = Deadline(wait, "waiting for another benchmark to release the bench database")
    told = False
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY]).fetchone()
        if row and row[0]:
            _lock_holder.append(conn)  # closing it (at exit) releases the lock
            return
        if not told:
            print("another benchmark is using the bench database; waiting…", file=sys.stderr)
            told = True
        deadline.check()
        time.sleep(0.5)


def bench_database(name: str = BENCH_DB, *, wait: float = 900.0) -> Database:
    """Create ``name`` on the configured server if missing and return its URL.

    Also waits (up to ``wait`` seconds) until no other benchmark uses it, and keeps it
    to this process until exit.
    """
    server_url = os.environ.get("DATABASE_URL", "")
    embedded = not server_url
    if embedded:
        # The project's own embedded server, wherever the benchmark is started from.
        os.environ.setdefault("ETL_VAR_DIR", str(ROOT / "var"))
        from etl import database

        # Starts the server (or joins it) and registers this process with pgserver, which
        # keeps it up until we exit; Django then reaches it as a plain DATABASE_URL.
        socket_dir = database.embedded_socket_dir()
        server_url = f"postgresql://postgres@/postgres?{urlencode({'host': socket_dir})}"
    _create_if_missing(server_url, name)
    url = _with_path(server_url, name)
    _take_turn(url, wait)
    label = f"embedded PostgreSQL: {_label(url)}" if embedded else _label(url)
    return Database(url=url, label=label, embedded=embedded)


def setup_django(db: Database) -> None:
    """Point Django at the bench database, set it up and migrate it."""
    os.environ["DATABASE_URL"] = db.url  # read by etl.settings; children inherit it
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etl.settings")
    # Per-source INFO lines would flood the output and cost time in the measured loops.
    os.environ.setdefault("ETL_LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def server_version() -> str:
    return f"PostgreSQL {setting('server_version')}"


def execute(*statements: str) -> None:
    """Run maintenance statements (TRUNCATE, VACUUM…) outside any transaction."""
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _scalar(statement: str) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement)
        row = cursor.fetchone()
    return row[0] if row else None


def count(table: str) -> int:
    """The rows in ``table``."""
    return int(_scalar(f"SELECT count(*) FROM {table}") or 0)


def setting(name: str) -> str:
    """A server setting as ``SHOW`` prints it ("?" if it says nothing)."""
    value = _scalar(f"SHOW {name}")
    return "?" if value is None else str(value)


def _tables(*apps: str) -> list[str]:
    from django.apps import apps as registry

    return [
        model._meta.db_table for app in apps for model in registry.get_app_config(app).get_models()
    ]


def reset_tables() -> None:
    """Empty every project table of the bench database (and restart its sequences)."""
    execute(
        f"TRUNCATE {', '.join(_tables('ingest', 'cluster', 'aggregates'))} RESTART IDENTITY CASCADE"
    )


def derived_tables() -> list[str]:
    """What the aggregation pass keeps (its delta log is filled by triggers on
    ``ingest_observation``)."""
    return _tables("aggregates")


def empty_derived() -> None:
    """As if the aggregation pass had run: no stats and an empty delta log."""
    execute(f"TRUNCATE {', '.join(derived_tables())}")


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    total = os.cpu_count()
    if usable is not None and usable != total:
        return f"{usable} usable of {total} cores"
    return f"{total} cores"


def command_line() -> str:
    return shlex.join(["python", *sys.argv])


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed wall time in seconds."""
    box = [0.0]
    started = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - started


class Deadline:
    """A wall-clock budget for a loop; ``check()`` raises once it is spent."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()

    def check(self) -> None:
        if time.monotonic() > self._end:
            raise TimeoutError(f"{self.what} took longer than {self.seconds:g} s; aborted")


def wait_until(predicate: Callable[[], object], deadline: Deadline) -> None:
    """Poll ``predicate`` until it is true; raise once ``deadline`` is spent."""
    while not predicate():
        deadline.check()
        time.sleep(0.05)  # polling another process's state, bounded by the deadline


def answers(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 now (False while nothing listens)."""
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One line of the result table: our figure, the baseline's, and the ratio."""

    what: str
    ours: float | None
    baseline: float | None
    unit: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def print_report(
    title: str, header: Sequence[str], rows: Sequence[Row | str], notes: Sequence[str]
) -> None:
    """The header lines, a table (a ``str`` in ``rows`` is a section title), the notes."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=False, width=max(110, Console().width))
    for line in header:
        console.print(line)
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("what", min_width=max((len(r) for r in rows if isinstance(r, str)), default=0))
    table.add_column("ours", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("note", max_width=44)
    for row in rows:
        if isinstance(row, str):
            table.add_section()
            table.add_row(f"[bold]{row}[/bold]", "", "", "", "")
            continue
        ratio = row.ratio
        table.add_row(
            row.what,
            _figure(row.ours, row.unit),
            _figure(row.baseline, row.unit),
            "—" if ratio is None else f"{ratio:.2f}×",
            row.note,
        )
    console.print(table)
    for note in notes:
        console.print(f"• {note}")


def machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {cores()}"


def load_average() -> str:
    """The 1-minute load average, flagged when other work competes for the cores."""
    try:
        one = os.getloadavg()[0]
    except OSError:
        return "load average unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = one > (usable or 1)
    return f"load average {one:.1f}" + (
        " (more than the cores: other work competed, figures are unreliable)" if busy else ""
    )


# -- the sample upstream ---------------------------------------------------------------


def _readline(stream: Any, timeout: float) -> str | None:
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True)
    reader.start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def _upstream_process(config: Any, startup: float) -> Iterator[str]:
    command = [
        *(sys.executable, "-m", "etl", "upstream", "--port", "0"),
        *("--seed", str(config.seed), "--items", str(config.items), "--shops", str(config.shops)),
        *("--items-per-shop", str(config.items_per_shop), "--page-size", str(config.page_size)),
        *("--latency-ms", str(config.latency_ms)),
    ]
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT)
        try:
            deadline = Deadline(startup, "starting the sample upstream")
            # `etl upstream --port 0` prints its real address once it listens.
            line = _readline(proc.stdout, timeout=deadline.left()) or ""
            if "sample upstream at " not in line:
                errors.seek(0)
                raise RuntimeError(f"the sample upstream did not start: {line}{errors.read()}")
            base = line.split("sample upstream at ", 1)[1].split()[0].rstrip("/")
            wait_until(lambda: answers(f"{base}/api/meta"), deadline)
            yield base
        finally:
            _stop(proc)


@contextlib.contextmanager
def upstream(config: Any, *, mode: str = "process", startup: float = 30.0) -> Iterator[str]:
    """Serve the sample upstream (an ``UpstreamConfig``) on 127.0.0.1; yield its base URL.

    ``mode="process"`` runs ``python -m etl upstream`` (its own interpreter, so it does not
    compete with the client for the GIL); ``"thread"`` runs it in this process with
    ``tests.support.servers.serve``, as the integration tests do.
    """
    if mode == "process":
        with _upstream_process(config, startup) as base:
            yield base
        return
    from tests.support import servers
    from upstream import build_app

    with servers.serve(build_app(config), startup_timeout=startup) as base:
        wait_until(
            lambda: answers(f"{base}/api/meta"), Deadline(startup, "starting the sample upstream")
        )
        yield base
