"""The chat command handler: one line of text in, one bounded plain-text reply out.

Transport-independent: the SSH console and the Discord bot both call
:meth:`Commands.handle`. It never raises: unknown input or bad arguments get the help
text, a database error gets a short line (the details go to the log). Replies are
single messages of at most ``limit`` characters (Discord's cap is 2,000) with control
characters replaced, so text from an upstream (an error message) cannot drive a terminal,
and URLs and error texts masked as the status page masks them (:func:`etl.text.redact`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.db import Error as DatabaseError

from cluster import status as cluster_status
from etl.chat import queries
from etl.text import one_line, redact

log = logging.getLogger(__name__)

MAX_REPLY = 2000
LIST_LIMIT = 15  # sources per reply
MAX_NODES = 20  # nodes per status reply
ERROR_CHARS = 120
URL_CHARS = 300
TRUNCATED = "\n… (truncated)"

_HELP = (
    ("help", "this text"),
    ("count", "rows loaded: items, observations, quests, trades"),
    ("status", "nodes, slots, shard sizes, due / overdue / failing sources"),
    ("sources [failing]", "registered (or only failing) sources with last status and error"),
    ("fetch <url>", "make a registered source due now (ends a failure backoff)"),
)


class _Usage(Exception):
    """The input is not a command, or the arguments do not fit it."""


def clean(text: str) -> str:
    """``text`` with every control character but the newline replaced."""
    return "".join(
        ch if ch == "\n" or ch.isprintable() else " " if ch == "\t" else "?" for ch in text
    )


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a line end where possible, marked as cut."""
    if len(text) <= limit:
        return text
    room = max(0, limit - len(TRUNCATED))
    cut = text.rfind("\n", 0, room + 1)
    return text[: cut if cut > 0 else room] + TRUNCATED


def _line(outside: str, chars: int) -> str:
    """Outside text (a URL, an error) on one line, at most ``chars``, secrets masked.

    Masked before it is cut: a cut could leave a password without the ``@`` that marks it.
    """
    return one_line(redact(outside), chars)


@dataclass(frozen=True, slots=True, kw_only=True)
class Commands:
    """The commands, bound to a store and to how the transport spells them."""

    store: queries.Store
    node: str = ""
    node_ttl: float = 15.0
    prefix: str = ""  # "!" on Discord
    limit: int = MAX_REPLY
    extra_help: tuple[tuple[str, str], ...] = ()  # a transport's own commands (ssh: exit)

    def help(self) -> str:
        rows = [(f"{self.prefix}{usage}", text) for usage, text in (*_HELP, *self.extra_help)]
        width = max(len(usage) for usage, _ in rows)
        return "shardetl commands:\n" + "\n".join(
            f"  {usage.ljust(width)}  {text}" for usage, text in rows
        )

    async def handle(self, line: str, *, who: str = "") -> str:
        """The reply to ``line`` (a command without the transport's prefix)."""
        words = line.split()
        name = words[0].lower() if words else "help"
        # The URL a command is about goes to the log as its source, as in ingest's lines.
        extra = {"source": words[1]} if name == "fetch" and len(words) == 2 else {}
        try:
            reply = await self._run(name, words[1:])
        except _Usage as exc:
            reply = f"{exc}\n{self.help()}"
        except DatabaseError as exc:
            log.exception("chat command %r from %s failed", name, who, extra=extra)
            reply = f"error: database error ({type(exc).__name__}); the node's log has the details"
        except Exception:
            log.exception("chat command %r from %s crashed", name, who, extra=extra)
            reply = "error: the command failed; the node's log has the details"
        else:
            log.info("chat command %r from %s", name, who, extra=extra)
        return clip(clean(reply), self.limit)

    async def _run(self, name: str, args: list[str]) -> str:
        handlers: dict[str, Callable[[list[str]], Awaitable[str]]] = {
            "help": self._help,
            "count": self._count,
            "status": self._status,
            "sources": self._sources,
            "fetch": self._fetch,
        }
        handler = handlers.get(name)
        if handler is None:
            raise _Usage(f"unknown command {_line(name, 40)!r}")
        return await handler(args)

    def _no_args(self, name: str, args: list[str]) -> None:
        if args:
            raise _Usage(f"{self.prefix}{name} takes no arguments")

    async def _help(self, args: list[str]) -> str:
        return self.help()

    async def _count(self, args: list[str]) -> str:
        self._no_args("count", args)
        c = await self.store.counts()
        return (
            f"There are {c.items} items, {c.observations} observations, "
            f"{c.quests} quests and {c.trades} trades."
        )

    async def _status(self, args: list[str]) -> str:
        self._no_args("status", args)
        return _format_status(await self.store.status(ttl=self.node_ttl), prefix=self.prefix)

    async def _sources(self, args: list[str]) -> str:
        if [arg.lower() for arg in args] not in ([], ["failing"]):
            raise _Usage(f"usage: {self.prefix}sources [failing]")
        failing = bool(args)
        page = await self.store.sources(failing=failing, limit=LIST_LIMIT)
        return _format_sources(page, failing=failing, prefix=self.prefix)

    async def _fetch(self, args: list[str]) -> str:
        if len(args) != 1:
            raise _Usage(f"usage: {self.prefix}fetch <url>")
        url = args[0]
        if url.startswith("<") and url.endswith(">"):  # Discord's "no preview" spelling
            url = url[1:-1]
        shown = _line(url, URL_CHARS)
        outcome = await self.store.fetch_now(url)
        if not outcome.found:
            return f"no source is registered with the URL {shown} ({self.prefix}sources lists them)"
        if not outcome.enabled:
            return f"{shown} is disabled: enable it to fetch it"
        if outcome.running_on:
            return (
                f"{shown} is being fetched right now by {outcome.running_on}; "
                f"{self.prefix}sources shows the outcome when the run ends"
            )
        return f"{shown} is due now: the node that owns it fetches it within seconds"


def _format_status(s: queries.Status, *, prefix: str) -> str:
    c = s.cluster
    alive = sum(1 for node in c.nodes if node.alive)
    lines = [f"N={c.node_count}, {alive} of {len(c.nodes)} nodes alive"]
    for node in c.nodes[:MAX_NODES]:
        slot = "-" if node.slot is None else str(node.slot)
        health = (
            f"{node.runs_last_minute} runs, {node.rows_last_minute} rows, "
            f"{node.errors_last_minute} errors in the last minute"
            if node.alive
            else "DEAD"
        )
        lines.append(
            f"  slot {slot} {_line(node.name, 60)} ({node.mode}): "
            f"heartbeat {node.heartbeat_age:.1f}s ago, {health}"
        )
    if len(c.nodes) > MAX_NODES:
        lines.append(f"  … and {len(c.nodes) - MAX_NODES} more nodes")
    sizes = ", ".join(f"{slot}: {size}" for slot, size in sorted(c.shard_sizes.items()))
    lines.append(f"shards (slot: sources): {sizes or 'no sources'}")
    minutes = int(cluster_status.OVERDUE_AFTER.total_seconds() // 60)
    lines.append(
        f"sources: {c.sources} registered, {c.due} due, {c.overdue} overdue (> {minutes} min), "
        f"{s.failing} failing" + (f" ({prefix}sources failing)" if s.failing else "")
    )
    return "\n".join(lines)


def _describe(row: queries.SourceLine) -> str:
    if not row.enabled:
        state = "disabled"
    elif not row.status:
        state = "never fetched"
    elif row.status == "failed":
        state = f"failed x{row.failures}: {_line(row.error, ERROR_CHARS) or 'no error text'}"
    elif row.fetched_at is not None:
        state = f"{row.status}, fetched {row.fetched_at:%Y-%m-%d %H:%M:%S} UTC"
    else:
        state = row.status
    return f"{_line(row.url, URL_CHARS)} — {state}"


def _format_sources(page: queries.SourcePage, *, failing: bool, prefix: str) -> str:
    if page.total == 0:
        return "no failing sources" if failing else "no sources registered"
    what = "failing sources (most failures first)" if failing else "sources (by URL)"
    lines = [f"{len(page.rows)} of {page.total} {what}:"]
    lines.extend(_describe(row) for row in page.rows)
    if page.total > len(page.rows):
        hint = "" if failing else f"; {prefix}sources failing lists the failing ones"
        lines.append(f"… and {page.total - len(page.rows)} more{hint}")
    return "\n".join(lines)
