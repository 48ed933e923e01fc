"""What ``/metrics`` shows beyond the pipeline's counters: this node and its cluster.

Gauges are computed when Prometheus scrapes, never kept up to date in between: slot, N
and in-flight runs from the node runtime's view, and the source gauges from one query
(:func:`sample`) over ``ingest_source``, counted by the rules ``etl status`` and the
leases use (``due_q``, ``status.overdue_q``, ``sharding.shard_q``, ``leases.held_q``).

Shard gauges (``shardetl_sources_due`` …) count this node's shard as its view has it,
so ``sum()`` over the nodes is the cluster; ``shardetl_cluster_*`` count every source
and are the same on every node (``max()`` them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

import etl
from cluster import leases, sharding, status
from etl import db
from ingest.models import Source, due_q

if TYPE_CHECKING:
    from cluster.runtime import NodeRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """Source figures at one moment (enabled sources only)."""

    sources: int
    due: int
    overdue: int
    shard_due: int
    shard_overdue: int
    leases_held: int


def sample(*, node: str, slot: int | None, count: int) -> Sample:
    """One aggregate query over the enabled sources (sync; call through ``etl.db``)."""
    due, overdue = due_q(), status.overdue_q()
    counts = {
        "sources": Count("pk"),
        "due": Count("pk", filter=due),
        "overdue": Count("pk", filter=overdue),
        "leases_held": Count("pk", filter=leases.held_q(node)),
    }
    if slot is not None and count >= 1:  # not placed yet: no shard (and no mod(…, 0))
        mine = sharding.shard_q(slot, count)
        counts["shard_due"] = Count("pk", filter=mine & due)
        counts["shard_overdue"] = Count("pk", filter=mine & overdue)
    row = Source.objects.filter(enabled=True).aggregate(**counts)
    return Sample(**{"shard_due": 0, "shard_overdue": 0, **row})


def _gauge(name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


@dataclass(frozen=True, slots=True, kw_only=True)
class Scrape:
    """A collector for one scrape: the process registry plus this moment's gauges."""

    node: NodeRuntime | None
    sample: Sample | None
    registry: Collector = REGISTRY

    def collect(self) -> Iterable[Metric]:
        yield from self.registry.collect()
        yield from self._node()
        yield from self._sources()

    def _node(self) -> Iterator[Metric]:
        node = self.node
        if node is None:  # no runtime in this process (a management command, a test)
            return
        yield _gauge(
            "shardetl_node_info",
            "This node: name, identity mode and version (always 1)",
            1,
            node=node.name,
            mode=node.ident.mode,
            version=etl.__version__,
        )
        if node.view.slot is not None:
            yield _gauge("shardetl_node_slot", "This node's slot", node.view.slot)
        yield _gauge(
            "shardetl_node_count", "N: slots in the cluster, as this node sees it", node.view.count
        )
        yield _gauge(
            "shardetl_node_ready",
            "1 when started, placed and in agreement with the cluster (/readyz)",
            int(node.ready),
        )
        yield _gauge(
            "shardetl_runs_in_flight", "Source runs in progress on this node", len(node.inflight)
        )

    def _sources(self) -> Iterator[Metric]:
        yield _gauge(
            "shardetl_database_up",
            "1 when this scrape's source query succeeded",
            int(self.sample is not None),
        )
        s = self.sample
        if s is None:
            return
        late = f"Sources due for more than {status.OVERDUE_AFTER.total_seconds():.0f} s"
        yield _gauge("shardetl_cluster_sources", "Enabled sources in the cluster", s.sources)
        yield _gauge("shardetl_cluster_sources_due", "Enabled sources due now, cluster-wide", s.due)
        yield _gauge(
            "shardetl_cluster_sources_overdue",
            f"{late}, cluster-wide",
            s.overdue,
        )
        if self.node is None:
            return
        yield _gauge("shardetl_leases_held", "Source leases this node holds", s.leases_held)
        if self.node.view.slot is None:
            return
        yield _gauge("shardetl_sources_due", "Sources due now in this node's shard", s.shard_due)
        yield _gauge(
            "shardetl_sources_overdue",
            f"{late} in this node's shard",
            s.shard_overdue,
        )


async def scrape(node: NodeRuntime | None) -> Scrape:
    """Take this scrape's sample; a database that does not answer zeroes ``database_up``."""
    view = node.view if node is not None else None
    try:
        taken: Sample | None = await db.probe(
            sample,
            node=node.name if node is not None else "",
            slot=view.slot if view is not None else None,
            count=view.count if view is not None else 0,
        )
    except Exception:
        log.warning("metrics: the source query failed", exc_info=True)
        taken = None
    return Scrape(node=node, sample=taken)
