"""The composition root: one node, with the surfaces plugged into its runtime.

The runtime (``cluster.runtime``) knows nothing of notifications or chat; this is the
one place that builds a node and connects them, through the runtime's hooks. Both the
ASGI lifespan (``etl.asgi``) and ``etl aggregate`` (for its notifications) come here.
"""

from __future__ import annotations

from aggregates import aggregation
from cluster import identity, jobs, runtime
from etl import config, notify
from etl.chat import service as chat
from ingest import runs


def notify_source(report: runs.SourceReport) -> None:
    """Tell the running notifier, if any, how a source run ended."""
    notify.source_run(
        url=report.url, status=report.status, error=report.error, streak=report.streak
    )


def notify_job(report: jobs.JobReport) -> None:
    """Tell the running notifier, if any, how a job run ended."""
    if report.status == "failed":
        notify.job_failed(job=report.job, error=report.error)
    result = report.result
    if isinstance(result, aggregation.PassResult) and result.ran:
        notify.batch_complete(
            mode=result.mode,
            items=result.items,
            changed=result.changed,
            removed=result.removed,
            seconds=result.seconds,
        )


def notifications(hooks: runtime.Hooks, *, node: str) -> None:
    """Send notifications for what ``hooks`` report, if ``ETL_NOTIFY_*`` configures any.

    Raises ``ConfigError`` for a bad ``ETL_NOTIFY_*`` value, so a node fails to start.
    """
    notifier = notify.from_env(node=node)
    if notifier is None:
        return
    hooks.source_finished.append(notify_source)
    hooks.job_finished.append(notify_job)

    async def start() -> None:
        notifier.start()

    hooks.started.append(start)
    hooks.stopped.append(notifier.stop)  # after the drain: the last runs' failures go out


def chat_transports(hooks: runtime.Hooks, *, node: str, node_ttl: float) -> None:
    """Start the SSH console and the Discord bot with the node, if configured."""
    running: list[chat.Chat] = []

    async def start() -> None:  # ETL_SSH_*, DISCORD_*: a bad value stops the start
        running.append(await chat.start(node=node, node_ttl=node_ttl))

    async def stop() -> None:  # chat sessions end first: no commands while draining
        while running:
            await running.pop().close()

    hooks.starting.append(start)
    hooks.stopping.append(stop)


def build() -> runtime.NodeRuntime:
    """This process's node, with notifications and chat wired in."""
    settings = config.settings()
    node = runtime.NodeRuntime(settings=settings, ident=identity.resolve(settings))
    notifications(node.hooks, node=node.name)
    chat_transports(node.hooks, node=node.name, node_ttl=settings.node_ttl)
    return node
