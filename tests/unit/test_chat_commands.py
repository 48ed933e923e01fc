"""The chat command handler against an in-memory store: parsing, replies, bounds, errors."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import OperationalError

from cluster.status import ClusterStatus, NodeStatus
from etl.chat import commands, queries
from etl.chat.commands import Commands

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _line(url: str, **fields: Any) -> queries.SourceLine:
    defaults: dict[str, Any] = {
        "enabled": True,
        "status": "ok",
        "error": "",
        "failures": 0,
        "fetched_at": NOW,
    }
    return queries.SourceLine(url=url, **{**defaults, **fields})


@dataclass
class FakeStore:
    """A store with canned answers that records what it was asked."""

    counts_: queries.Counts = field(
        default_factory=lambda: queries.Counts(items=600, observations=400, quests=50, trades=450)
    )
    page: queries.SourcePage = field(default_factory=lambda: queries.SourcePage(total=0, rows=[]))
    fetched: queries.Fetched = field(
        default_factory=lambda: queries.Fetched(found=True, enabled=True)
    )
    fail: BaseException | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def _check(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        if self.fail is not None:
            raise self.fail

    async def counts(self) -> queries.Counts:
        self._check("counts", None)
        return self.counts_

    async def status(self, *, ttl: float) -> queries.Status:
        self._check("status", ttl)
        nodes = [
            NodeStatus(
                name="node-a",
                mode="static",
                slot=0,
                node_count=2,
                heartbeat_age=0.5,
                alive=True,
                runs_last_minute=7,
                rows_last_minute=1234,
                errors_last_minute=1,
            ),
            NodeStatus(
                name="node-b", mode="static", slot=1, node_count=2, heartbeat_age=99.0, alive=False
            ),
        ]
        cluster = ClusterStatus(
            now=NOW,
            node_count=2,
            nodes=nodes,
            shard_sizes={1: 9, 0: 11},
            sources=20,
            due=3,
            overdue=1,
            failing=[],
        )
        return queries.Status(cluster=cluster, failing=2)

    async def sources(self, *, failing: bool, limit: int) -> queries.SourcePage:
        self._check("sources", (failing, limit))
        return self.page

    async def fetch_now(self, url: str) -> queries.Fetched:
        self._check("fetch_now", url)
        return self.fetched


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def chat(store: FakeStore) -> Commands:
    return Commands(store=store, node="node-a", node_ttl=12.0)


async def test_help_lists_every_command(chat: Commands) -> None:
    reply = await chat.handle("help")
    for usage in ("help", "count", "status", "sources [failing]", "fetch <url>"):
        assert f"  {usage} " in reply
    assert reply == chat.help()
    assert await chat.handle("") == chat.help()  # nothing typed: the help


async def test_help_spells_the_transport_prefix_and_extra_commands(store: FakeStore) -> None:
    bang = Commands(store=store, prefix="!", extra_help=(("exit", "leave"),))
    reply = await bang.handle("HELP")
    assert "  !count " in reply
    assert "  !fetch <url> " in reply
    assert reply.splitlines()[-1].split() == ["!exit", "leave"]


async def test_count_reports_each_table(chat: Commands, store: FakeStore) -> None:
    reply = await chat.handle("count")
    assert reply == "There are 600 items, 400 observations, 50 quests and 450 trades."
    assert await chat.handle("  COUNT  ") == reply  # case and spaces do not matter
    assert store.calls == [("counts", None), ("counts", None)]


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("frobnicate", "unknown command 'frobnicate'"),
        ("count now", "count takes no arguments"),
        ("status please", "status takes no arguments"),
        ("sources broken", "usage: sources [failing]"),
        ("sources failing twice", "usage: sources [failing]"),
        ("fetch", "usage: fetch <url>"),
        ("fetch http://a/ http://b/", "usage: fetch <url>"),
    ],
)
async def test_bad_input_gets_the_help_and_touches_nothing(
    chat: Commands, store: FakeStore, line: str, usage: str
) -> None:
    reply = await chat.handle(line)
    assert reply.startswith(usage + "\n")
    assert reply.endswith(chat.help())
    assert "Traceback" not in reply
    assert store.calls == []


async def test_status_shows_nodes_shards_and_source_counts(
    chat: Commands, store: FakeStore
) -> None:
    reply = await chat.handle("status")
    assert store.calls == [("status", 12.0)]  # the node's TTL decides who is alive
    lines = reply.splitlines()
    assert lines[0] == "N=2, 1 of 2 nodes alive"
    assert "slot 0 node-a (static): heartbeat 0.5s ago, 7 runs, 1234 rows, 1 errors" in lines[1]
    assert lines[2].endswith("heartbeat 99.0s ago, DEAD")
    assert "shards (slot: sources): 0: 11, 1: 9" in reply
    assert "sources: 20 registered, 3 due, 1 overdue (> 5 min), 2 failing (sources failing)" in (
        reply
    )


async def test_sources_lists_status_and_a_truncated_error(chat: Commands, store: FakeStore) -> None:
    store.page = queries.SourcePage(
        total=40,
        rows=[
            _line("http://up/a.json", status="failed", failures=3, error="HTTP 500\n" + "x" * 500),
            _line("http://up/b.json"),
            _line("http://up/c.json", status="", fetched_at=None),
            _line("http://up/d.json", enabled=False),
        ],
    )
    reply = await chat.handle("sources")
    assert store.calls == [("sources", (False, commands.LIST_LIMIT))]
    lines = reply.splitlines()
    assert lines[0] == "4 of 40 sources (by URL):"
    assert lines[1].startswith("http://up/a.json — failed x3: HTTP 500 xxx")
    assert len(lines[1]) < len("http://up/a.json — failed x3: ") + commands.ERROR_CHARS + 1
    assert lines[1].endswith("…")
    assert lines[2] == "http://up/b.json — ok, fetched 2024-05-01 12:00:00 UTC"
    assert lines[3] == "http://up/c.json — never fetched"
    assert lines[4] == "http://up/d.json — disabled"
    assert lines[5] == "… and 36 more; sources failing lists the failing ones"


async def test_sources_failing_asks_for_failing_ones(chat: Commands, store: FakeStore) -> None:
    assert await chat.handle("sources failing") == "no failing sources"
    assert store.calls == [("sources", (True, commands.LIST_LIMIT))]
    store.page = queries.SourcePage(
        total=1, rows=[_line("http://up/x", status="failed", failures=1, error="boom")]
    )
    reply = await chat.handle("sources FAILING")
    assert reply.splitlines() == [
        "1 of 1 failing sources (most failures first):",
        "http://up/x — failed x1: boom",
    ]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (queries.Fetched(found=True, enabled=True), "http://up/a is due now"),
        (queries.Fetched(found=False), "no source is registered with the URL http://up/a"),
        (queries.Fetched(found=True, enabled=False), "http://up/a is disabled"),
        (
            queries.Fetched(found=True, enabled=True, running_on="node-b"),
            "http://up/a is being fetched right now by node-b",
        ),
    ],
)
async def test_fetch_reports_what_happened(
    chat: Commands, store: FakeStore, outcome: queries.Fetched, expected: str
) -> None:
    store.fetched = outcome
    reply = await chat.handle("fetch http://up/a")
    assert reply.startswith(expected)
    assert store.calls == [("fetch_now", "http://up/a")]  # the URL keeps its case


async def test_fetch_accepts_a_url_in_angle_brackets(chat: Commands, store: FakeStore) -> None:
    reply = await chat.handle("fetch <http://up/a?x=1>")  # how Discord users stop previews
    assert reply.startswith("http://up/a?x=1 is due now")
    assert store.calls == [("fetch_now", "http://up/a?x=1")]


SECRET_URL = "https://ops:hunter2@up.test/feed?page=2&api_key=s3cr3t&access_token=t0k3n"
MASKED_URL = "https://***@up.test/feed?page=2&api_key=***&access_token=***"


async def test_source_urls_and_errors_are_masked_in_replies(
    chat: Commands, store: FakeStore
) -> None:
    store.page = queries.SourcePage(
        total=1,
        rows=[
            _line(SECRET_URL, status="failed", failures=2, error=f"HTTP 403 fetching {SECRET_URL}")
        ],
    )
    listed = await chat.handle("sources failing")
    assert listed.splitlines()[1] == f"{MASKED_URL} — failed x2: HTTP 403 fetching {MASKED_URL}"
    for fetched in (queries.Fetched(found=True, enabled=True), queries.Fetched(found=False)):
        store.fetched = fetched
        assert MASKED_URL in await chat.handle(f"fetch {SECRET_URL}")
    assert store.calls[-1] == ("fetch_now", SECRET_URL)  # the store gets the real URL
    for secret in ("hunter2", "s3cr3t", "t0k3n"):
        assert secret not in listed


async def test_an_error_is_masked_before_it_is_cut(chat: Commands, store: FakeStore) -> None:
    # Cut first, the "@" that marks the password would fall off and the password show.
    error = "x" * (commands.ERROR_CHARS - 30) + " https://ops:hunter2hunter2hunter2@up.test/"
    store.page = queries.SourcePage(
        total=1, rows=[_line("http://up/x", status="failed", error=error)]
    )
    reply = await chat.handle("sources")
    assert "hunter2" not in reply
    assert "https://***@" in reply


async def test_a_database_error_is_one_short_line_and_logged(
    chat: Commands, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.fail = OperationalError("connection refused\nis the server running?")
    with caplog.at_level(logging.ERROR, logger="etl.chat.commands"):
        reply = await chat.handle("count")
    assert reply == "error: database error (OperationalError); the node's log has the details"
    assert "connection refused" in caplog.text  # the details are in the log, not the chat


async def test_an_unexpected_error_is_caught_and_logged(
    chat: Commands, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.fail = RuntimeError("bug")
    with caplog.at_level(logging.ERROR, logger="etl.chat.commands"):
        reply = await chat.handle("sources")
    assert reply == "error: the command failed; the node's log has the details"
    assert "RuntimeError: bug" in caplog.text


async def test_replies_are_bounded(store: FakeStore) -> None:
    store.page = queries.SourcePage(
        total=15,
        rows=[
            _line(f"http://up/{i}/" + "p" * 250, status="failed", error="e" * 300)
            for i in range(15)
        ],
    )
    for limit in (2000, 300):
        reply = await Commands(store=store, limit=limit).handle("sources")
        assert len(reply) <= limit
        assert reply.endswith(commands.TRUNCATED)
        body = reply.removesuffix(commands.TRUNCATED)
        assert all(line.startswith(("15 of 15", "http://up/")) for line in body.splitlines())


async def test_control_characters_from_upstream_text_are_neutralised(
    chat: Commands, store: FakeStore
) -> None:
    store.page = queries.SourcePage(
        total=1,
        rows=[_line("http://up/x", status="failed", failures=1, error="bad \x1b[2J\x07body\ttab")],
    )
    reply = await chat.handle("sources")
    assert "\x1b" not in reply
    assert "\x07" not in reply
    assert reply.endswith("failed x1: bad ?[2J?body tab")


def test_clip_cuts_at_a_line_end() -> None:
    text = "\n".join(f"line {i}" for i in range(100))
    clipped = commands.clip(text, 50)
    assert len(clipped) <= 50
    assert clipped.startswith("line 0\nline 1\n")
    assert clipped.endswith("line 4" + commands.TRUNCATED)
    assert commands.clip("short", 50) == "short"
    assert commands.clip("x" * 100, 30) == "x" * (30 - len(commands.TRUNCATED)) + commands.TRUNCATED
