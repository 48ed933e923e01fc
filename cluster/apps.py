from __future__ import annotations

from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "cluster"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cluster import sharding
        from ingest import sources

        # Ingest registers sources; where each belongs is this layer's rule.
        sources.set_placement(sharding.stable_hash)
