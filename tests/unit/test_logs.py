"""Log records carry node and source as fields, in the plain and the JSON format."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from etl import logs
from etl.exceptions import ConfigError


def _record(message: str = "ok rows_in=%d", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("ingest.pipeline", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    assert logs.ContextFilter().filter(record)
    return record


@pytest.fixture(autouse=True)
def _no_process_node() -> None:
    logs.set_node("")


def test_context_fields_reach_both_formats() -> None:
    with logs.context(node="n1", source="http://up/a"):
        record = _record("ok rows_in=%d", 3)
    plain = logs.PlainFormatter("%(levelname)s %(name)s %(message)s").format(record)
    assert plain == "INFO ingest.pipeline node=n1 source=http://up/a ok rows_in=3"
    line = json.loads(logs.json_formatter().format(record))
    assert line["node"] == "n1"
    assert line["source"] == "http://up/a"
    assert line["message"] == "ok rows_in=3"
    assert line["level"] == "INFO"
    assert line["logger"] == "ingest.pipeline"
    assert line["time"].endswith("+00:00")


def test_outside_a_context_there_are_no_fields_and_the_plain_line_is_unchanged() -> None:
    record = _record("hello")
    assert not hasattr(record, "node")
    assert not hasattr(record, "source")
    assert logs.PlainFormatter("%(name)s %(message)s").format(record) == "ingest.pipeline hello"
    assert set(json.loads(logs.json_formatter().format(record))) == {
        "time",
        "level",
        "logger",
        "message",
    }


def test_process_node_context_and_extra_in_order_of_precedence() -> None:
    logs.set_node("process")
    assert _record().node == "process"  # type: ignore[attr-defined]
    with logs.context(node="task"):
        assert _record().node == "task"  # type: ignore[attr-defined]
        assert _record(node="extra").node == "extra"  # type: ignore[attr-defined]
    assert _record().node == "process"  # type: ignore[attr-defined]


async def test_concurrent_tasks_each_log_their_own_source() -> None:
    async def run(url: str) -> str:
        with logs.context(source=url):
            await asyncio.sleep(0)  # let the other task set its own source meanwhile
            return str(_record().source)  # type: ignore[attr-defined]

    assert await asyncio.gather(run("http://a"), run("http://b")) == ["http://a", "http://b"]


def test_json_exceptions_are_one_line_and_uvicorn_colour_copies_dropped() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    record.color_message = "\x1b[31mfailed\x1b[0m"
    text = logs.json_formatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert "ValueError: boom" in line["exc_info"]
    assert "color_message" not in line


@pytest.mark.parametrize(
    ("env", "name"),
    [({}, "plain"), ({"ETL_LOG_FORMAT": ""}, "plain"), ({"ETL_LOG_FORMAT": " JSON "}, "json")],
)
def test_format_name(env: dict[str, str], name: str) -> None:
    assert logs.format_name(env) == name


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="ETL_LOG_FORMAT must be plain or json, got 'xml'"):
        logs.format_name({"ETL_LOG_FORMAT": "xml"})
