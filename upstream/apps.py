from __future__ import annotations

from django.apps import AppConfig


class UpstreamConfig(AppConfig):
    """The sample upstream: a deterministic fake market for the demo, tests and benches.

    Not part of the product's data path; nothing in ingest, aggregates or cluster
    imports it.
    """

    name = "upstream"
