from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from croniter import croniter

from cluster import scheduler
from ingest import schedule


def test_next_run_spreads_h_by_name() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    minutes = {schedule.next_run("H * * * *", now, f"http://h/{i}").minute for i in range(200)}
    assert len(minutes) > 30  # H spreads sources over the hour
    assert schedule.next_run("H * * * *", now, "x") == schedule.next_run("H * * * *", now, "x")
    assert schedule.next_run("*/5 * * * *", now, "x") == now + timedelta(minutes=5)


def test_next_run_with_parsed_specs_kept_equals_a_fresh_croniter() -> None:
    specs = ["H * * * *", "H/15 H * * *", "*/5 * * * *", "0 3 * * THU", "@hourly", "@daily",
             "30 H(0-5) * * MON-FRI", "0 0 1 1 *"]  # fmt: skip
    rng = random.Random(5)
    for _ in range(300):
        spec, name = rng.choice(specs), f"http://h/{rng.randrange(50)}"
        now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**8))
        fresh = croniter(spec, now, hash_id=name.encode()).get_next(datetime)
        assert schedule.next_run(spec, now, name) == fresh, (spec, name, now)


def test_next_run_is_safe_across_threads() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def run(offset: int) -> list[datetime]:
        return [
            schedule.next_run("*/5 * * * *", start + timedelta(minutes=offset + i), "x")
            for i in range(0, 2000, 7)
        ]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(8)))
    for offset, got in enumerate(results):
        assert got == run(offset)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_jobs_never_overlap_and_failures_do_not_stop_the_loop() -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    calls: list[str] = []
    recorded: list[tuple[str, BaseException | None]] = []

    async def slow() -> None:
        calls.append("slow")
        await gate.wait()

    async def broken() -> None:
        calls.append("broken")
        raise RuntimeError("boom")

    async def record(
        job: scheduler.Job, started: datetime, result: object, error: BaseException | None
    ) -> None:
        recorded.append((job.name, error))

    jobs = [
        scheduler.Job(name="slow", spec="* * * * *", fn=slow),
        scheduler.Job(name="broken", spec="* * * * *", fn=broken),
    ]
    sched = scheduler.Scheduler(jobs=jobs, clock=clock, record=record)
    assert sched.step(clock()) == []  # first sight only schedules
    clock.now += timedelta(minutes=1)
    assert {j.name for j in sched.step(clock())} == {"slow", "broken"}
    await asyncio.sleep(0)  # let the started tasks run to their first await
    for _ in range(100):
        if recorded:
            break
        await asyncio.sleep(0)
    clock.now += timedelta(minutes=5)
    # "slow" is still running: it must not start again; "broken" is due again.
    assert [j.name for j in sched.step(clock())] == ["broken"]
    gate.set()
    stop = asyncio.Event()
    stop.set()
    await sched.run(stop)  # waits for running jobs
    assert calls.count("slow") == 1
    assert calls.count("broken") == 2
    names = [name for name, _ in recorded]
    assert names.count("broken") == 2
    assert names.count("slow") == 1
    assert all(isinstance(err, RuntimeError) for name, err in recorded if name == "broken")
    assert jobs[1].failures == 2


async def test_cluster_wide_jobs_run_only_where_the_tick_was_claimed() -> None:
    clock = FakeClock()
    ran: list[str] = []
    claimed: list[tuple[str, datetime]] = []

    async def job() -> str:
        ran.append("job")
        return "result"

    async def claim_every_other(j: scheduler.Job, tick: datetime) -> bool:
        claimed.append((j.name, tick))
        return len(claimed) % 2 == 1

    results: list[object] = []

    async def record(j: scheduler.Job, started: datetime, result: object, error: object) -> None:
        results.append(result)

    jobs = [scheduler.Job(name="agg", spec="* * * * *", fn=job, cluster_wide=True)]
    sched = scheduler.Scheduler(jobs=jobs, clock=clock, claim=claim_every_other, record=record)
    sched.step(clock())
    for _ in range(2):
        clock.now += timedelta(minutes=1)
        sched.step(clock())
        stop = asyncio.Event()
        stop.set()
        await sched.run(stop)
    assert [tick for _, tick in claimed] == [
        datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 2, tzinfo=UTC),
    ]  # the scheduled tick, the same on every node, not the local clock
    assert ran == ["job"]  # the second tick was claimed elsewhere
    assert results == ["result"]  # skipped ticks are not recorded here
