"""Log lines that carry the node and the source as fields, in plain text or JSON lines.

``ETL_LOG_FORMAT=plain`` (the default) prints ``time level logger node=… source=… message``
for a terminal; ``ETL_LOG_FORMAT=json`` prints one JSON object a line (``time``,
``level``, ``logger``, ``message``, ``node``, ``source``, ``exc_info``) for a log
collector. Code never formats the node or the URL into its messages: the node runtime
names the node once (:func:`set_node`) and a run names its source for its own task
(:func:`context`); :class:`ContextFilter` copies both onto every record, so a line
logged deep inside a fetch still says which node and which source it is about.
``extra={"node": …, "source": …}`` on one call wins over the context.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

from pythonjsonlogger import json as jsonlogger
from pythonjsonlogger.core import RESERVED_ATTRS

from etl.config import Env

FORMATS = ("plain", "json")
FIELDS = ("node", "source")

_node_default = ""
_vars: dict[str, ContextVar[str]] = {name: ContextVar(f"shardetl_{name}") for name in FIELDS}


def format_name(env: Mapping[str, str]) -> str:
    """The formatter ``ETL_LOG_FORMAT`` in ``env`` asks for; a typo fails loudly, at start."""
    return Env(env).choice("ETL_LOG_FORMAT", "plain", FORMATS)


def set_node(name: str) -> None:
    """Name the node on every record this process logs from now on."""
    global _node_default
    _node_default = name


@contextlib.contextmanager
def context(*, node: str | None = None, source: str | None = None) -> Iterator[None]:
    """Name the node and/or source on every record logged inside the block.

    Context variables follow asyncio tasks and ``sync_to_async`` threads, so concurrent
    runs of one node each log their own source.
    """
    tokens = [
        (_vars[name], _vars[name].set(value))
        for name, value in (("node", node), ("source", source))
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current(name: str) -> str:
    """The value of the field ``name`` (``node`` or ``source``) here, or ``""``."""
    value = _vars[name].get("")
    if not value and name == "node":
        return _node_default
    return value


class ContextFilter(logging.Filter):
    """Copy ``node`` and ``source`` onto each record that did not pass them in ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in FIELDS:
            if getattr(record, name, None) is None and (value := current(name)):
                setattr(record, name, value)
        return True


class PlainFormatter(logging.Formatter):
    """``time level logger node=… source=… message``: fields first, readable on a terminal."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        tags = " ".join(
            f"{name}={value}" for name in FIELDS if (value := getattr(record, name, ""))
        )
        if not tags:
            return super().formatMessage(record)
        tagged = logging.makeLogRecord(record.__dict__)
        tagged.message = f"{tags} {record.message}"
        return super().formatMessage(tagged)


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message and extras."""
    return jsonlogger.JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        # uvicorn adds an ANSI-coloured copy of each message; a collector wants one.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )
