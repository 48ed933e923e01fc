"""The webhook channel against httpx.MockTransport; the mail the email channel composes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from etl.notify import events
from etl.notify.config import EmailConfig, NotifyConfig, WebhookConfig
from etl.notify.exceptions import DeliveryError
from etl.notify.notifier import Notifier
from etl.notify.smtp import WIRE, EmailChannel
from etl.notify.webhook import WebhookChannel
from tests.support.fakeclock import Clock

URL = "https://hooks.example.com/services/T000/B000/sekrit-token"
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _message(error: str = "HTTPStatusFailure: HTTP 404") -> events.Message:
    event = events.RunFailed(url="http://up.test/a.json", error=error, failures=2, at=AT)
    return events.render(event, node="node-a")


def _channel(handler: Callable[[httpx.Request], httpx.Response]) -> WebhookChannel:
    return WebhookChannel(config=WebhookConfig(url=URL), transport=httpx.MockTransport(handler))


async def test_the_body_suits_slack_and_discord_and_carries_the_facts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)  # Discord's answer; Slack says 200 "ok"

    channel = _channel(handler)
    await channel.send(_message())
    await channel.aclose()
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("shardetl/")
    body = orjson.loads(request.content)
    text = (
        "[shardetl] run failed: http://up.test/a.json\nnode: node-a\nsource: http://up.test/a.json"
    )
    assert body["text"].startswith(text)  # Slack
    assert body["content"] == body["text"]  # Discord
    assert "error: HTTPStatusFailure: HTTP 404" in body["text"]
    assert body["allowed_mentions"] == {"parse": []}
    assert body["shardetl"] == {
        "event": "run_failed",
        "subject": "[shardetl] run failed: http://up.test/a.json",
        "node": "node-a",
        "at": "2026-01-02T03:04:05+00:00",
        "fields": {
            "node": "node-a",
            "source": "http://up.test/a.json",
            "consecutive_failures": 2,
            "error": "HTTPStatusFailure: HTTP 404",
        },
    }


async def test_discord_content_is_clipped_to_its_limit() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(orjson.loads(request.content))
        return httpx.Response(200, text="ok")

    await _channel(handler).send(_message(error="x" * 5000))
    content, text = bodies[0]["content"], bodies[0]["text"]
    assert isinstance(content, str)
    assert isinstance(text, str)
    assert len(content) == 2000
    assert content.endswith("…")
    assert len(text) > 5000


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (500, {}, True, None),
        (503, {}, True, None),
        (429, {"retry-after": "3"}, True, 3.0),
        (400, {}, False, None),
        (404, {}, False, None),
    ],
)
async def test_statuses_map_to_retryable_or_permanent(
    status: int, headers: dict[str, str], retryable: bool, retry_after: float | None
) -> None:
    channel = _channel(lambda request: httpx.Response(status, headers=headers, text="nope"))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_message())
    assert caught.value.retryable is retryable
    assert caught.value.retry_after == retry_after
    assert str(caught.value) == f"HTTP {status}: nope"


async def test_a_transport_error_is_retryable_and_never_shows_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(DeliveryError) as caught:
        await _channel(handler).send(_message())
    assert caught.value.retryable
    assert "sekrit" not in str(caught.value)


async def test_the_notifier_retries_a_webhook_until_it_answers() -> None:
    answers = [httpx.Response(502), httpx.Response(429, headers={"retry-after": "5"})]
    answers.append(httpx.Response(200, text="ok"))
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answers.pop(0)

    clock = Clock()
    notifier = Notifier(
        config=NotifyConfig(attempts=4, backoff_seconds=1.0),
        channels=[_channel(handler)],
        node="node-a",
        clock=clock,
        sleep=clock.sleep,
    )
    assert await notifier.deliver(_message()) == {"webhook": None}
    assert len(calls) == 3
    assert clock.slept == [1.0, 5.0]  # doubling, then the server's Retry-After


def test_the_mail_is_plain_text_with_the_subject_and_facts() -> None:
    config = EmailConfig(
        to=("ops@example.com", "Oncall <oncall@example.org>"),
        sender="etl@example.com",
        host="smtp.example.com",
        port=587,
    )
    mail = EmailChannel(config=config).compose(_message())
    assert mail["Subject"] == "[shardetl] run failed: http://up.test/a.json"
    assert mail["From"] == "etl@example.com"
    assert mail["To"] == "ops@example.com, Oncall <oncall@example.org>"
    assert mail["Message-ID"].endswith("@example.com>")
    assert mail["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"
    assert mail["X-Shardetl-Event"] == "run_failed"
    assert mail.get_content_type() == "text/plain"
    body = mail.get_content()
    assert "source: http://up.test/a.json\n" in body
    assert "consecutive failures: 2\n" in body
    assert "error: HTTPStatusFailure: HTTP 404\n" in body


def test_on_the_wire_the_subject_stays_one_plain_line() -> None:
    config = EmailConfig(to=("ops@example.com",), sender="etl@example.com", host="h", port=25)
    url = "http://127.0.0.1:49823/api/" + "a" * 120 + ".json"
    event = events.RunFailed(url=url, error="HTTP 404", at=AT)
    wire = EmailChannel(config=config).compose(events.render(event, node="n")).as_bytes(policy=WIRE)
    assert f"\r\nSubject: [shardetl] run failed: {url}\r\n".encode() in wire
