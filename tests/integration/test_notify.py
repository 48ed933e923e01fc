"""Notifications end to end: real runs and passes, a real SMTP server, a real webhook.

The node tests start ``etl node`` as a subprocess configured only by ``ETL_NOTIFY_*``,
against the sample upstream plus one source that answers 404, with the aggregation pass
every second: the failure and the talk's "Batch complete" arrive by mail (aiosmtpd on
127.0.0.1) and by webhook (uvicorn on 127.0.0.1). With nothing listening on the SMTP
port, ingest still loads everything and the failure to notify is logged and counted.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from prometheus_client.parser import text_string_to_metric_families

from aggregates.models import ItemStats
from cluster import batch, membership, sharding
from etl import node
from etl.config import Settings
from etl.notify import channels
from etl.notify.config import NotifyConfig, WebhookConfig
from etl.notify.notifier import Notifier
from ingest import fetch, sources
from ingest.models import Item, Observation, Source
from ingest.pool import ParsePool
from tests.support import mailbox, processes, servers

pytestmark = pytest.mark.django_db(transaction=True)

MISSING = "/api/no-such-thing.json"  # the sample upstream answers 404
HOOK_PATH = "/services/T000/B000/sekrit"
BATCH = re.compile(
    r"\[shardetl\] Batch complete: (\d+) items recomputed, (\d+) changed in [\d.]+ s"
)


@pytest.fixture
def inbox() -> Iterator[mailbox.Inbox]:
    with mailbox.smtp_server() as box:
        yield box


@pytest.fixture
def hook() -> Iterator[tuple[str, mailbox.Hook]]:
    with mailbox.webhook_server() as served:
        yield served


def _register(upstream: str) -> tuple[int, str]:
    """The upstream's own sources plus one that fails; return (how many good, bad URL)."""
    created, _ = sources.register(sources.parse_specs(httpx.get(f"{upstream}/sources.jsonl").text))
    bad = upstream + MISSING
    Source.objects.create(
        url=bad, parser="json", options={"key": "id"}, shard_hash=sharding.stable_hash(bad)
    )
    return created, bad


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _notifications(port: int) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.labels["channel"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "shardetl_notifications_total"
    }


def _ingested(good: int, bad: str) -> bool:
    return (
        Source.objects.filter(last_status="ok").count() == good
        and Source.objects.filter(url=bad, last_status="failed").exists()
    )


def _stats_complete() -> bool:
    with_observations = Item.objects.filter(observations__isnull=False).distinct().count()
    return with_observations > 0 and ItemStats.objects.count() == with_observations


def _mail_env(port: int) -> dict[str, str]:
    return {
        "ETL_NOTIFY_EMAIL_TO": "ops@example.com",
        "ETL_NOTIFY_EMAIL_FROM": "etl@example.com",
        "ETL_NOTIFY_SMTP_HOST": "127.0.0.1",
        "ETL_NOTIFY_SMTP_PORT": str(port),
    }


def test_a_node_mails_and_posts_failures_and_batch_complete(
    upstream_url: str, inbox: mailbox.Inbox, hook: tuple[str, mailbox.Hook]
) -> None:
    hook_url, receiver = hook
    good, bad = _register(upstream_url)
    port = servers.free_port()
    env = {
        "ETL_NODE_NAME": "notify-a",
        "ETL_AGGREGATE_SCHEDULE": "* * * * * *",  # a pass every second
        "ETL_NOTIFY_ON": "run_failed,aggregate",
        "ETL_NOTIFY_WEBHOOK_URL": hook_url + HOOK_PATH,
        "ETL_NOTIFY_RATE_PER_MINUTE": "0",  # every pass gets its own message here
        **_mail_env(inbox.port),
    }
    node = processes.etl("node", "--port", str(port), env=env)
    try:
        processes.wait_for(lambda: _ready(port), timeout=60, what="readyz")
        processes.wait_for(lambda: _ingested(good, bad), timeout=90, what="ingest")
        failed_subject = f"[shardetl] run failed: {bad}"
        processes.wait_for(lambda: inbox.find(failed_subject), timeout=30, what="failure mail")
        processes.wait_for(_stats_complete, timeout=60, what="every item's stats")
        processes.wait_for(
            lambda: inbox.find("[shardetl] Batch complete:"), timeout=30, what="batch mail"
        )
        counted = _notifications(port)
    finally:
        code = processes.stop(node)
    assert code == 0

    # The failure mail: to the configured address, with the reason in the body.
    mail = inbox.find(failed_subject)[0]
    assert (mail["From"], mail["To"]) == ("etl@example.com", "ops@example.com")
    assert ("etl@example.com", ["ops@example.com"]) in inbox.envelopes
    body = mail.get_content()
    assert "node: notify-a\n" in body
    assert f"source: {bad}\n" in body
    assert "consecutive failures: 1\n" in body
    assert re.search(r"^error: HTTPStatusFailure: .*404", body, re.MULTILINE), body

    # "Batch complete" mails: the subject's figures are the body's.
    batches = inbox.find("[shardetl] Batch complete:")
    for mail in batches:
        match = BATCH.fullmatch(str(mail["Subject"]))
        assert match is not None, mail["Subject"]
        body = mail.get_content()
        assert f"items recomputed: {match[1]}\n" in body
        assert f"stats changed: {match[2]}\n" in body
        assert re.search(r"^duration seconds: [\d.]+$", body, re.MULTILINE)
    assert not [s for s in inbox.subjects() if "source failing" in s]  # not switched on

    # The webhook got the same events as JSON that Slack (text) and Discord (content) read.
    assert {path for path, _body in receiver.posts} == {HOOK_PATH}
    # The first: the source is retried 30 s later, which a slow run of this test may see.
    failure = next(
        p for p in receiver.events("run_failed") if p["shardetl"]["fields"]["source"] == bad
    )
    assert failure["text"] == failure["content"]
    assert failure["text"].startswith(f"{failed_subject}\nnode: notify-a\n")
    assert failure["shardetl"]["node"] == "notify-a"
    passes = receiver.events("aggregate")
    assert len(passes) == len(batches)
    # Every stats row was written by a pass that was reported: nothing went unannounced.
    reported = sum(p["shardetl"]["fields"]["stats_changed"] for p in passes)
    assert reported >= ItemStats.objects.count() > 0

    assert counted[("email", "sent")] >= 2
    assert counted[("webhook", "sent")] >= 2
    assert counted[("email", "failed")] == counted[("webhook", "failed")] == 0


def test_with_the_smtp_server_down_ingest_completes_and_the_failure_is_counted(
    upstream_url: str, tmp_path: Path
) -> None:
    meta = httpx.get(f"{upstream_url}/api/meta").json()
    good, bad = _register(upstream_url)
    dead = servers.free_port()  # nothing listens here
    port = servers.free_port()
    env = {
        "ETL_NODE_NAME": "notify-b",
        "ETL_NOTIFY_ON": "run_failed",
        "ETL_NOTIFY_ATTEMPTS": "2",
        "ETL_NOTIFY_BACKOFF_SECONDS": "0.05",
        **_mail_env(dead),
    }
    log_path = tmp_path / "node.log"
    with log_path.open("wb") as log:
        node = processes.etl("node", "--port", str(port), env=env, stderr=log)
        try:
            processes.wait_for(lambda: _ready(port), timeout=60, what="readyz")
            processes.wait_for(lambda: _ingested(good, bad), timeout=90, what="ingest")
            counted = processes.wait_for(
                lambda: (c := _notifications(port)).get(("email", "failed")) and c,
                timeout=30,
                what="the failed notification counted",
            )
        finally:
            code = processes.stop(node)
    assert code == 0
    assert Observation.objects.count() == meta["observations"]
    assert Item.objects.count() == meta["items"]
    assert counted[("email", "failed")] == 1
    assert counted[("email", "retried")] == 1
    assert counted[("email", "sent")] == 0
    logged = log_path.read_text()
    assert re.search(
        rf"notification failed: email via 127\.0\.0\.1:{dead} to ops@example\.com gave up "
        rf"after 2 attempt\(s\): SMTPConnectError: .*run failed: {re.escape(bad)}",
        logged,
    ), logged[-3000:]


async def test_failing_is_announced_once_per_streak_and_recovery_ends_it(
    hook: tuple[str, mailbox.Hook],
) -> None:
    """Real runs through the pipeline and ``finish_source``, one at a time."""
    hook_url, receiver = hook
    answers = {"status": 500}

    async def flaky(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status = answers["status"]
        body = b'[{"id": "a", "price": 1}]' if status == 200 else b"down"
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    config = NotifyConfig(
        failing_after=3, webhook=WebhookConfig(url=hook_url + HOOK_PATH), rate_per_minute=0
    )
    limits = fetch.FetchLimits(retries=0, backoff_base=0.01, backoff_cap=0.01)
    pool = ParsePool(1)
    await pool.start()
    try:
        with servers.serve(flaky) as base:
            url = f"{base}/flaky.json"
            await Source.objects.acreate(
                url=url, parser="json", options={"key": "id"}, shard_hash=sharding.stable_hash(url)
            )
            kinds = []
            for run in range(6):
                answers["status"] = 200 if run == 4 else 500
                await Source.objects.aupdate(next_run_at=None)  # due now, backoff or not
                before = len(receiver.posts)
                notifier = Notifier(config=config, channels=channels.build(config), node="t")
                notifier.start()
                try:
                    summary = await batch.run_due(
                        Settings.from_env(),
                        membership.Everything(),
                        limits=limits,
                        pool=pool,
                        on_finished=node.notify_source,
                    )
                finally:
                    await notifier.stop()  # drains: this run's notifications are delivered
                assert summary.runs == 1
                kinds.append([body["shardetl"]["event"] for _path, body in receiver.posts[before:]])
    finally:
        await pool.close()
    assert kinds == [
        ["run_failed"],
        ["run_failed"],
        ["run_failed", "failing"],  # the third failure in a row, once
        ["run_failed"],
        ["recovered"],
        ["run_failed"],  # a new streak starts from one
    ]
    failing = receiver.events("failing")[0]
    assert failing["shardetl"]["subject"] == f"[shardetl] source failing 3 times in a row: {url}"
    assert failing["shardetl"]["fields"]["consecutive_failures"] == 3
    assert "HTTP 500" in failing["shardetl"]["fields"]["error"]
    recovered = receiver.events("recovered")[0]
    assert recovered["shardetl"]["fields"]["failed_runs_before"] == 4
    source = await Source.objects.aget(url=url)
    assert source.consecutive_failures == 1


def test_notify_test_reports_each_channel(
    inbox: mailbox.Inbox,
    hook: tuple[str, mailbox.Hook],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook_url, receiver = hook
    for name, value in _mail_env(inbox.port).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ETL_NOTIFY_WEBHOOK_URL", hook_url + HOOK_PATH)
    out = io.StringIO()
    call_command("notify_test", stdout=out)
    assert out.getvalue().splitlines() == [
        f"email (email via 127.0.0.1:{inbox.port} to ops@example.com): ok",
        f"webhook (webhook {hook_url}/…): ok",
    ]
    assert inbox.subjects() == ["[shardetl] test notification"]
    assert [body["shardetl"]["event"] for _path, body in receiver.posts] == ["test"]

    # The webhook down: reported per channel, and the command fails.
    monkeypatch.setenv("ETL_NOTIFY_WEBHOOK_URL", f"http://127.0.0.1:{servers.free_port()}/x")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 channel"):
        call_command("notify_test", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(": ok")
    assert lines[1].startswith("webhook (webhook http://127.0.0.1:")
    assert "FAILED: ConnectError" in lines[1]
    assert len(inbox.subjects()) == 2


def test_notify_test_without_channels_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CommandError, match="ETL_NOTIFY_EMAIL_TO"):
        call_command("notify_test", stdout=io.StringIO())
    monkeypatch.setenv("ETL_NOTIFY_FAILING_AFTER", "zero")
    with pytest.raises(CommandError, match="ETL_NOTIFY_FAILING_AFTER must be an integer"):
        call_command("notify_test", stdout=io.StringIO())


@pytest.mark.parametrize("bad", ["ETL_NOTIFY_ON=sometimes", "ETL_NOTIFY_SMTP_PORT=25"])
def test_a_node_with_bad_notification_settings_refuses_to_start(bad: str) -> None:
    name, value = bad.split("=")
    node = processes.etl(
        "node", "--port", str(servers.free_port()), env={name: value}, stderr=subprocess.PIPE
    )
    try:
        _out, err = node.communicate(timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert node.returncode != 0
    assert name.encode() in err
