"""Which events a run or a pass raises: "failing" once per streak, "recovered" after it."""

from __future__ import annotations

from etl.notify import events, rules
from etl.notify.config import NotifyConfig

ALL = NotifyConfig(failing_after=3)
URL = "http://upstream.test/a.json"


def _kinds(raised: list[events.Event]) -> list[str]:
    return [event.kind for event in raised]


def test_failing_fires_once_when_the_streak_reaches_the_threshold() -> None:
    seen = []
    for before in range(6):
        raised = rules.for_run(
            ALL, url=URL, status="failed", error="HTTP 404", streak=(before, before + 1)
        )
        seen.append(_kinds(raised))
    assert seen == [
        ["run_failed"],
        ["run_failed"],
        ["run_failed", "failing"],  # the third failure in a row
        ["run_failed"],
        ["run_failed"],
        ["run_failed"],
    ]
    failing = rules.for_run(ALL, url=URL, status="failed", error="HTTP 404", streak=(2, 3))[1]
    assert isinstance(failing, events.SourceFailing)
    assert failing.failures == 3


def test_recovered_only_ends_a_reported_streak() -> None:
    assert _kinds(rules.for_run(ALL, url=URL, status="ok", error="", streak=(2, 0))) == []
    raised = rules.for_run(ALL, url=URL, status="unchanged", error="", streak=(4, 0))
    assert _kinds(raised) == ["recovered"]
    assert isinstance(raised[0], events.SourceRecovered)
    assert (raised[0].failures, raised[0].status) == (4, "unchanged")
    assert _kinds(rules.for_run(ALL, url=URL, status="ok", error="", streak=(0, 0))) == []


def test_switched_off_kinds_are_not_raised() -> None:
    only_failing = NotifyConfig(on=frozenset({"failing"}), failing_after=1)
    raised = rules.for_run(only_failing, url=URL, status="failed", error="x", streak=(0, 1))
    assert _kinds(raised) == ["failing"]
    assert rules.for_run(only_failing, url=URL, status="ok", error="", streak=(5, 0)) == []
    assert rules.for_job_failure(only_failing, job="aggregate", error="boom") == []
    assert (
        rules.for_pass(only_failing, mode="full", items=3, changed=3, removed=0, seconds=0.1) == []
    )


def test_a_run_whose_source_was_taken_over_reports_only_its_own_failure() -> None:
    raised = rules.for_run(ALL, url=URL, status="failed", error="boom", streak=None)
    assert _kinds(raised) == ["run_failed"]
    assert isinstance(raised[0], events.RunFailed)
    assert raised[0].failures is None


def test_a_pass_with_nothing_to_do_is_not_a_batch() -> None:
    assert rules.for_pass(ALL, mode="incremental", items=0, changed=0, removed=0, seconds=0) == []
    (batch,) = rules.for_pass(ALL, mode="incremental", items=7, changed=5, removed=1, seconds=0.25)
    message = events.render(batch, node="n1")
    assert message.subject == "[shardetl] Batch complete: 7 items recomputed, 5 changed in 0.25 s"
    assert "items recomputed: 7\n" in message.body
    assert "stats removed: 1\n" in message.body
    assert "duration seconds: 0.25\n" in message.body
    assert message.fields["node"] == "n1"


def test_a_job_failure_names_the_job() -> None:
    (failed,) = rules.for_job_failure(ALL, job="aggregate", error="OperationalError: gone")
    message = events.render(failed, node="n1")
    assert message.subject == "[shardetl] job failed: aggregate"
    assert "error: OperationalError: gone" in message.body


def test_subjects_stay_on_one_line() -> None:
    event = events.RunFailed(url="http://x.test/a\r\nBcc: victim@example.com", error="e")
    subject = events.render(event, node="n").subject
    assert "\n" not in subject
    assert "\r" not in subject
    long = events.render(events.RunFailed(url="http://x.test/" + "a" * 500, error="e"), node="n")
    assert len(long.subject) < 220
